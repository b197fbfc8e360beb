"""Problems in: JSON list, JSONL, Parquet, a Hugging Face dataset (hub name or save_to_disk
folder), or the built-in demo set. Every record is checked; a bad one is a clear error naming
the file, the record index and the field (or, with ``skip_invalid``, a listed skip)."""

from __future__ import annotations

import re

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from hinttune.core.config import ProblemsConfig
from hinttune.core.errors import HinttuneError, missing_extra
from hinttune.core.files import jsonl_lines, read_json, read_jsonl, read_text

log = logging.getLogger(__name__)

PROBLEM_ALIASES = ("problem", "question")
ANSWER_ALIASES = ("gold_answer", "answer", "solution")
TAG_FIELDS = ("level", "subject", "type", "year")  # kept for per-group breakdowns


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    gold_answer: str
    index: int  # position in the source, for messages and stable ordering
    # a benchmark's breakdown fields where the record has them (MATH-500: level, subject)
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class LoadedProblems:
    problems: list[Problem]
    source: str
    skipped: list[str] = field(default_factory=list)  # one message per skipped record
    duplicates: list[str] = field(default_factory=list)  # one message per repeated problem
    shard: str | None = None  # "I/N" when only shard I of N was kept
    contamination: dict[str, Any] | None = None  # the decontamination report, when asked for


def problem_id(problem: str, gold_answer: str) -> str:
    """Stable id from content: whitespace-insensitive, so re-exports of the same data agree."""
    norm = " ".join(problem.split()) + "\x1f" + " ".join(gold_answer.split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def _read_json(path: Path) -> list[Any]:
    data = read_json(path)
    if isinstance(data, dict):  # {"data": [...]} and similar single-list wrappers
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise HinttuneError(f"{path}: expected a JSON list of records, got an object")
        data = lists[0]
    if not isinstance(data, list):
        raise HinttuneError(f"{path}: expected a JSON list of records")
    return data


def _read_jsonl(path: Path) -> tuple[list[Any], list[str]]:
    """Records and, for messages, where each is in the file (its line number)."""
    rows = list(read_jsonl(path))
    return [record for _, record in rows], [f"line {lineno}" for lineno, _ in rows]


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read as one (a CSV row with the wrong number of fields):
    reported like any invalid record, so ``skip_invalid`` skips it and only it."""

    why: str


# "1,000 + 2" cut at its comma leaves a field that starts with three digits and goes on with
# text ("000 + 2?"), or is a zero-led number ("000"), right after a text ending in a digit
_CUT_NUMBER = re.compile(r"\d{3}[^\d,.]|0\d\d$")


def _split_number(row: list[str]) -> int | None:
    """The 1-based field after which an unquoted comma seems to have split a number, or
    None. A plain number after a problem ("... 20 times 5,100") is a value, not a cut."""
    for i in range(1, len(row)):
        left = row[i - 1]
        if left[-1:].isdigit() and re.search(r"[^\W\d_]", left) and _CUT_NUMBER.match(row[i]):
            return i
    return None


def _read_csv(path: Path) -> tuple[list[Any], list[str]]:
    """Rows as records by the header's names. A row whose field count differs from the
    header's (an unquoted comma inside a problem) is a bad record naming its line, never
    re-aligned into other fields."""
    import csv
    import io

    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return [], []
        header = [name.strip() for name in header]
        for i, name in enumerate(header):
            if name in header[:i]:
                raise HinttuneError(f"{path}: the header names the column {name!r} twice (columns "
                                    f"{header.index(name) + 1} and {i + 1}); rename or drop one")
        records, places, start = [], [], reader.line_num + 1
        for number, row in enumerate(reader, 2):  # row 1 is the header
            # a quoted field may span lines: then the row's first line is named too
            place = f"row {number}" + (f" (line {start})" if start != number else "")
            start = reader.line_num + 1
            if not any(field.strip() for field in row):
                continue
            places.append(place)
            split = _split_number(row)
            if len(row) != len(header):
                records.append(BadRecord(
                    f"{len(row)} fields where the header has {len(header)} ({', '.join(header)}); "
                    "quote fields that contain commas"))
            elif split is not None:  # the field count matches only because a value is missing too
                records.append(BadRecord(
                    f"fields {split} and {split + 1} read as {row[split - 1][-12:]!r} and {row[split][:12]!r}: "
                    "a number cut at an unquoted comma (1,000); quote fields that contain commas"))
            else:
                records.append(dict(zip(header, row)))
    except csv.Error as exc:
        raise HinttuneError(f"{path}: line {reader.line_num}: not valid CSV: {exc}") from None
    return records, places


def _read_dataset(source: str, split: str, from_disk: bool) -> list[Any]:
    try:
        import datasets
    except ImportError:
        raise missing_extra("datasets", "datasets") from None
    try:
        if from_disk:
            ds = datasets.load_from_disk(source)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise HinttuneError(f"{source}: no split {split!r} (has {', '.join(ds)})")
                ds = ds[split]
        else:
            name, _, subset = source.partition(":")  # "openai/gsm8k:main" picks a config
            ds = datasets.load_dataset(name, subset or None, split=split)
    except HinttuneError:
        raise
    except Exception as exc:  # network, missing dataset, bad folder: say which source failed
        raise HinttuneError(f"{source}: could not load dataset: {type(exc).__name__}: {exc}") from None
    return list(ds)


BUILT_IN = {"demo": "demo_problems.jsonl", "demo-benchmark": "demo_benchmark.jsonl"}


def read_records(source: str, split: str = "train") -> tuple[list[Any], str, list[str]]:
    """Raw records, a display name, and where each record is in its file in the file's own
    numbering (JSONL lines, CSV rows, JSON and dataset record indices from 0)."""
    def indexed(records: list[Any], where: str) -> tuple[list[Any], str, list[str]]:
        return records, where, [f"record {i}" for i in range(len(records))]

    if source in BUILT_IN:  # shipped with hinttune: the demo's problems and its small benchmark
        text = (resources.files("hinttune") / "data" / BUILT_IN[source]).read_text("utf-8")
        return indexed([json.loads(line) for _, line in jsonl_lines(text)], f"{source} problems")
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        return indexed(_read_dataset(str(path), split, from_disk=True), str(path))
    if path.is_file():
        if suffix == ".json":
            return indexed(_read_json(path), str(path))
        if suffix == ".jsonl":
            return _with_where(_read_jsonl(path), str(path))
        if suffix == ".csv":
            return _with_where(_read_csv(path), str(path))
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise missing_extra("pyarrow", "datasets") from None
            try:
                return indexed(pq.read_table(path).to_pylist(), str(path))
            except Exception as exc:  # a truncated or corrupt file: pyarrow's own words, one line
                raise HinttuneError(f"{path}: could not read as Parquet: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        raise HinttuneError(f"{path}: unsupported file type {suffix!r} (use .json, .jsonl, .csv, .parquet)")
    looks_like_file = suffix in {".json", ".jsonl", ".csv", ".parquet"} or source.startswith((".", "/", "~"))
    if looks_like_file or source.count("/") != 1:
        raise HinttuneError(f"{source}: file not found")
    return indexed(_read_dataset(source, split, from_disk=False), source)


def _with_where(read: tuple[list[Any], list[str]], where: str) -> tuple[list[Any], str, list[str]]:
    return read[0], where, read[1]


def _pick_field(record: dict, wanted: str | None, aliases: Iterable[str]) -> str | None:
    if wanted is not None:
        return wanted
    return next((name for name in aliases if name in record), None)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN or Infinity (JSON allows them; no problem has such an answer)
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _unpaired_surrogate(text: str) -> int | None:
    """Where ``text`` holds a lone UTF-16 surrogate (JSON's "\\ud800" escape), which no UTF-8
    file, tokenizer or output can hold; None if it holds none."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start


def _check(record: Any, index: str, where: str, cfg: ProblemsConfig) -> tuple[str, str]:
    if isinstance(record, BadRecord):
        raise HinttuneError(f"{where}: {index}: {record.why}")
    if not isinstance(record, dict):
        raise HinttuneError(f"{where}: {index}: expected an object with problem and "
                            f"answer fields, got {type(record).__name__}")
    values = []
    for wanted, aliases, role, setting in (
            (cfg.problem_field, PROBLEM_ALIASES, "problem text", "problems.problem_field"),
            (cfg.answer_field, ANSWER_ALIASES, "gold answer", "problems.answer_field")):
        name = _pick_field(record, wanted, aliases)
        if name is None:
            raise HinttuneError(f"{where}: {index}: no {role} field (looked for "
                                f"{', '.join(aliases)}; set {setting})")
        if name not in record:
            raise HinttuneError(f"{where}: {index}: field {name!r} ({role}) is missing")
        text = _text(record[name])
        if text is None:
            value = record[name]
            what = ("NaN or Infinity" if isinstance(value, float) and not math.isfinite(value)
                    else "empty or not text")
            raise HinttuneError(f"{where}: {index}: field {name!r} ({role}) is {what}: {value!r:.60}")
        bad = _unpaired_surrogate(text)
        if bad is not None:
            raise HinttuneError(f"{where}: {index}: field {name!r} ({role}) holds an unpaired "
                                f"surrogate {text[bad]!r} at character {bad}, which is not text")
        values.append(text)
    return values[0], values[1]


def shard_of(problem_id: str, count: int) -> int:
    """The shard (1..count) a problem belongs to: a hash of its id, so shards are balanced and
    do not depend on the order of the file (nor on what else is in it)."""
    return int(hashlib.sha256(f"shard/{problem_id}".encode()).hexdigest()[:16], 16) % count + 1


def load_problems(cfg: ProblemsConfig) -> LoadedProblems:
    records, where, places = read_records(cfg.source, cfg.split)
    if not records:
        raise HinttuneError(f"{where}: contains no records")
    result = LoadedProblems([], where)
    seen: dict[str, int] = {}
    texts: dict[str, int] = {}
    for index, record in enumerate(records):
        try:
            text, gold = _check(record, places[index], where, cfg)
        except HinttuneError as exc:
            if not cfg.skip_invalid:
                raise
            result.skipped.append(str(exc))
            continue
        pid = problem_id(text, gold)
        if pid in seen:
            result.duplicates.append(f"{where}: {places[index]} repeats {places[seen[pid]]} "
                                     "(same problem and gold answer): kept once")
            continue
        norm = " ".join(text.split())
        if norm in texts:
            result.duplicates.append(f"{where}: {places[index]} has the same problem text as "
                                     f"{places[texts[norm]]} with a different gold answer: both kept")
        seen[pid] = index
        texts.setdefault(norm, index)
        tags = {name: str(record[name]) for name in TAG_FIELDS
                if isinstance(record.get(name), (str, int)) and not isinstance(record.get(name), bool)}
        result.problems.append(Problem(pid, text, gold, index, tags))
        if cfg.limit and len(result.problems) >= cfg.limit:
            break
    if not result.problems:
        raise HinttuneError(f"{where}: no valid records ({len(result.skipped)} skipped)")
    shard = cfg.shard_parts()
    if shard is not None:
        result.problems = [p for p in result.problems if shard_of(p.id, shard[1]) == shard[0]]
        result.shard = cfg.shard
    for message in result.skipped:
        log.warning("skipped %s", message)
    for message in result.duplicates:
        log.warning("duplicate: %s", message)
    return result
