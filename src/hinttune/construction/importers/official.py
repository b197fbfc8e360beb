"""Read the official scripts' intermediate files into a run: ``think_results.json``,
``instruct_results.json``, ``llm_grading_think.json`` and ``<model>/k_prefix.json`` (one per
instruct model, as their prefix step writes it under ``output/<model>/``). The problems,
attempts, the judge's verdicts on the think traces and the prefix searches become a
``RunResult``, which hinttune then assembles (with the official state rules), exports and
summarizes like any run of its own.

Every record is checked as it is read: a missing file, a missing or mistyped field, files of
different lengths or a prefix that is not the trace's own are errors naming the file, the
record and the field. Nothing is generated or graded again; what the files do not hold (the
instruct answers were never graded by the official scripts, the continuations of failed k
were not kept) stays unknown, never invented.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinttune.construction.probe.search import ProbeAttempt, ProbeOutcome
from hinttune.construction.segmentation import prefix, trace_episodes
from hinttune.core.config import OFFICIAL_KEYWORDS, SegmentConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.files import read_json
from hinttune.core.grading import Verdict
from hinttune.core.problems import Problem, problem_id
from hinttune.core.store import GenerationRecord

SOURCE = "official scripts"
GRADER = "judge (official scripts)"
log = logging.getLogger(__name__)
FILES = ("think_results.json", "instruct_results.json", "llm_grading_think.json")


@dataclass
class OfficialFiles:
    folder: Path
    think: list[dict[str, Any]]
    instruct: list[dict[str, Any]]
    grading: list[dict[str, Any]]
    k_prefix_path: Path
    k_prefix: dict[str, Any]


def _load(path: Path) -> Any:
    if not path.is_file():
        raise HinttuneError(f"{path}: not found (the official scripts write it under output/)")
    return read_json(path)


def _field(path: Path, where: str, record: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(record, dict):
        raise HinttuneError(f"{path}: {where}: expected an object, found {type(record).__name__}")
    if name not in record:
        raise HinttuneError(f"{path}: {where}: field {name!r} is missing")
    value = record[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HinttuneError(f"{path}: {where}: field {name!r} should be "
                            f"{getattr(kind, '__name__', kind)}, found {type(value).__name__}")
    lone = re.search("[\ud800-\udfff]", value) if isinstance(value, str) else None
    if lone:  # "\ud800" in JSON: half a UTF-16 pair, which no file can be written with
        raise HinttuneError(f"{path}: {where}: field {name!r} holds \\u{ord(lone.group()):04x}, half of a "
                            "UTF-16 surrogate pair with no other half: not text; fix the escape")
    return value


def _count(path: Path, where: str, record: Any, name: str) -> int | None:
    """An optional token count: a whole number (not true/false, not a string) or absent."""
    value = record.get(name) if isinstance(record, dict) else None
    if value is not None and (type(value) is not int or value < 0):
        raise HinttuneError(f"{path}: {where}: field {name!r} should be a token count (a whole "
                            f"number), found {type(value).__name__} {value!r}")
    return value


def _position(path: Path, where: str, value: Any, field: str, count: int, seen: dict[int, str]) -> int:
    """A record's index into think_results.json: an int (true is not 1) in range, used once."""
    if type(value) is not int or not 0 <= value < count:
        raise HinttuneError(f"{path}: {where}: field {field!r} is {value!r}, not a position in "
                            f"think_results.json (a whole number 0..{count - 1})")
    if value in seen:
        raise HinttuneError(f"{path}: {where}: field {field!r} is {value}, as in {seen[value]}: each "
                            "problem has one entry")
    seen[value] = where
    return value


def find_k_prefix(folder: Path, model: str | None) -> Path:
    """``<model>/k_prefix.json``; with no model named, the only one there (or a bare
    ``k_prefix.json`` beside the other files)."""
    if model:
        return folder / model / "k_prefix.json"
    found = sorted(folder.glob("*/k_prefix.json"))
    if (folder / "k_prefix.json").is_file():
        found.insert(0, folder / "k_prefix.json")
    if not found:
        raise HinttuneError(f"{folder}: no k_prefix.json, neither here nor in a model's folder "
                            "(the official prefix step writes output/<model>/k_prefix.json)")
    if len(found) > 1:
        names = ", ".join(p.parent.name for p in found)
        raise HinttuneError(f"{folder}: k_prefix.json of several instruct models ({names}): "
                            "choose one with --model NAME")
    return found[0]


def read_official(folder: Path, model: str | None = None) -> OfficialFiles:
    folder = Path(folder)
    think, instruct, grading = (_load(folder / name) for name in FILES)
    for name, data in zip(FILES, (think, instruct, grading)):
        if not isinstance(data, list):
            raise HinttuneError(f"{folder / name}: expected a list of records, found {type(data).__name__}")
    if len(think) != len(instruct):
        raise HinttuneError(f"{folder}: think_results.json has {len(think)} records and "
                            f"instruct_results.json {len(instruct)}: they must be the same problems")
    if len(grading) != len(think):
        raise HinttuneError(f"{folder}: llm_grading_think.json has {len(grading)} records and "
                            f"think_results.json {len(think)}: the grading step grades every think trace")
    k_path = find_k_prefix(folder, model)
    k_prefix = _load(k_path)
    if not isinstance(k_prefix, dict) or not isinstance(k_prefix.get("results"), list):
        raise HinttuneError(f"{k_path}: expected {{\"metadata\": ..., \"results\": [...]}}")
    return OfficialFiles(folder, think, instruct, grading, k_path, k_prefix)


def _record(path: Path, role: str, index: int, pid: str, text: str, metrics: Any) -> GenerationRecord:
    where = f"record {index}.metrics"
    return GenerationRecord(key=f"official:{role}:{index}", stage="import", role=role, problem_id=pid,
                            sample=0, model=SOURCE, request={}, params={}, text=text,
                            finish_reason=None, prompt_tokens=_count(path, where, metrics, "prompt_tokens"),
                            completion_tokens=_count(path, where, metrics, "solution_tokens"))


def _problems(files: OfficialFiles) -> list[Problem]:
    path = files.folder / FILES[0]
    problems, seen = [], set()
    for i, rec in enumerate(files.think):
        where = f"record {i}"
        text = _field(path, where, rec, "problem", str)
        gold = _field(path, where, rec, "gold_answer", str)
        pid = problem_id(text, gold)
        if pid in seen:  # the official files allow repeats; each keeps its own place
            pid = f"{pid}-{i}"
        seen.add(pid)
        problems.append(Problem(pid, text, gold, i))
    return problems


def _outcome(path: Path, i: int, entry: Any, episodes: list[str], pid: str) -> ProbeOutcome:
    where = f"results[{i}]"
    success = _field(path, where, entry, "success", bool)
    n = _field(path, where, entry, "total_parts", int)
    if n != len(episodes):
        raise HinttuneError(f"{path}: {where}: field 'total_parts' is {n}, but the think trace has "
                            f"{len(episodes)} episodes by the official segmentation (were other "
                            "reflection_keywords used? give them with --keywords)")
    outcome = ProbeOutcome(pid, n)
    for j, row in enumerate(_field(path, where, entry, "all_k_results", list)):
        k = _field(path, f"{where}.all_k_results[{j}]", row, "k", int)
        correct = _field(path, f"{where}.all_k_results[{j}]", row, "correct", bool)
        outcome.attempts.append(ProbeAttempt(k, f"official:probe:{i}:{k}", "",
                                             Verdict(correct, GRADER, "yes" if correct else "no"),
                                             _count(path, f"{where}.all_k_results[{j}]", row, "tokens")))
    outcome.rounds = len(outcome.attempts)
    if not success:
        return outcome
    k = _field(path, where, entry, "k_value", int)
    hint = _field(path, where, entry, "prefix", str)
    if hint != prefix(episodes, k):
        raise HinttuneError(f"{path}: {where}: field 'prefix' is not the first {k} episodes of the "
                            "think trace by the official segmentation (were other "
                            "reflection_keywords used? give them with --keywords)")
    text = _field(path, where, entry, "generated_text", str)
    hit = next((a for a in outcome.attempts if a.k == k), None)
    if hit is None:
        hit = ProbeAttempt(k, f"official:probe:{i}:{k}", "", Verdict(True, GRADER, "yes"), None)
        outcome.attempts.append(hit)
    hit.text, hit.verdict = text, Verdict(True, GRADER, "yes")
    hit.prompt_tokens = _count(path, where, entry, "prefix_tokens")
    hit.completion_tokens = _count(path, where, entry, "instruct_tokens")
    outcome.k_star = k
    return outcome


def official_result(files: OfficialFiles, keywords: list[str] | None = None) -> Any:
    """The files as a RunResult (problems, attempts, think verdicts, episodes, probes)."""
    from hinttune.construction.result import RunResult

    problems = _problems(files)
    # the official segmentation: raw substrings, up to 40 episodes, to the last </think>
    segment = SegmentConfig(keywords=keywords or list(OFFICIAL_KEYWORDS), whole_words=False)
    result = RunResult(problems, {"think": {}, "instruct": {}}, verdicts={"think": {}, "instruct": {}})
    for role, records, name in (("think", files.think, FILES[0]), ("instruct", files.instruct, FILES[1])):
        for i, (p, rec) in enumerate(zip(problems, records)):
            text = _field(files.folder / name, f"record {i}", rec, "model_response", str)
            result.attempts[role][(p.id, 0)] = _record(files.folder / name, role, i, p.id, text, rec.get("metrics"))
    grading_path = files.folder / FILES[2]
    graded: dict[int, str] = {}
    for i, rec in enumerate(files.grading):
        correct = _field(grading_path, f"record {i}", rec, "is_correct", bool)
        index = _position(grading_path, f"record {i}", rec.get("question_id", i), "question_id",
                          len(problems), graded)
        result.verdicts["think"][problems[index].id] = Verdict(correct, GRADER, "yes" if correct else "no")
    for p in problems:
        result.episodes[p.id] = trace_episodes(result.attempts["think"][(p.id, 0)].text or "", segment,
                                               official=True)
    searched: dict[int, str] = {}
    for i, entry in enumerate(files.k_prefix["results"]):
        index = entry.get("_original_idx", entry.get("index")) if isinstance(entry, dict) else None
        index = _position(files.k_prefix_path, f"results[{i}]", index, "_original_idx", len(problems), searched)
        pid = problems[index].id
        result.probes[pid] = _outcome(files.k_prefix_path, i, entry, result.episodes[pid], pid)
    return result


def import_official(folder: Path, run_dir: Path, model: str | None = None,
                    keywords: list[str] | None = None, seed: int = 0,
                    export_cfg: Any = None, tokenizer: str | None = None) -> Any:
    """Read the files, then assemble (official rules), export and summarize into ``run_dir``."""
    from types import SimpleNamespace

    from hinttune.construction.pipeline import assemble, export, summary
    from hinttune.construction.result import probe_statistics
    from hinttune.core.chat import TokenCounter
    from hinttune.core.config import AssembleConfig, ExportConfig, ProbeConfig
    from hinttune.core.files import write_json

    files = read_official(Path(folder), model)
    result = official_result(files, keywords)
    run_dir = Path(run_dir)
    assemble(result, AssembleConfig(policy="official", keep_unverified=True), seed)
    count = TokenCounter(SimpleNamespace(backend="fake") if tokenizer is None else
                         SimpleNamespace(backend="import", tokenizer=tokenizer, model=tokenizer, gguf_file=None))
    meta = export(result, export_cfg or ExportConfig(), run_dir, count)
    # the official scan: one k at a time from 0, stopped at the first success
    probe_stats = {**probe_statistics(ProbeConfig(), result.probes), "strategy": "official scan (imported)"}
    summary(result, meta, probe_stats, run_dir)
    skipped = [a.problem_id for a in result.assignments if a.problem_id not in result.probes
               and not getattr(result.verdicts["think"].get(a.problem_id), "correct", False)]
    if skipped:
        result.notes.append(f"{len(skipped)} problem{'s' * (len(skipped) != 1)} graded wrong with no "
                            "k_prefix.json entry (the search raised, or the prefix step did not "
                            "finish): left out, as merge.py skips them (export/excluded.jsonl)")
        log.warning(result.notes[-1])
    result.files["source"] = write_json(run_dir / "imported.json", {
        "source": SOURCE, "folder": str(Path(folder).resolve()), "k_prefix": str(files.k_prefix_path.resolve()),
        "instruct_model": files.k_prefix.get("metadata", {}).get("instruct_model"),
        "problems": len(result.problems), "seed": seed, "skipped_no_prefix_result": skipped})
    return result
