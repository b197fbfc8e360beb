"""Decontamination: construction problems that overlap the benchmarks a model will be
evaluated on, found before anything is generated for them. A problem is contaminated when it
shares a word n-gram (8 by default, as open-r1's and s1's decontamination do) with a benchmark
problem (``min_overlap``: at least that share of its n-grams; 0, any one, is open-r1's and
s1's rule); a problem shorter than n words, when it equals one. ``problems.decontaminate``:
``report`` lists them (``contamination.jsonl``, the summary) and keeps them; ``drop`` also
removes them from the run.

Benchmarks (``problems.benchmarks``): a name ``hinttune eval`` knows (loaded from the hub as it
loads it), ``NAME=PATH`` or a path (a .json/.jsonl/.csv/.parquet file or dataset folder with a
problem or question field); by default the six built-in benchmarks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hinttune.core.benchmarks import BENCHMARKS
from hinttune.core.config import ProblemsConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import Problem

log = logging.getLogger(__name__)
_WORD = re.compile(r"\w+")


@dataclass
class Match:
    problem_id: str
    index: int  # the problem's record in the source
    benchmark: str
    item: int  # the benchmark record it overlaps
    shared: int  # n-grams in common
    overlap: float  # the share of the problem's n-grams that the benchmark problem has
    ngram: str  # the first of them, for a reader to find
    benchmark_problem: str


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def benchmark_sources(cfg: ProblemsConfig) -> list[tuple[str, str, str]]:
    """(name, source, split) of each benchmark to check against."""
    out = []
    for spec in cfg.benchmarks or list(BENCHMARKS):
        name, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        if not path:
            raise HinttuneError(f"problems.benchmarks: {spec!r} names no file")
        if name == "" and spec in BENCHMARKS:
            bench = BENCHMARKS[spec]
            source = "openai/gsm8k:main" if bench.hub == "openai/gsm8k" else bench.hub
            out.append((spec, source, bench.split))
        else:
            out.append((name or Path(path).stem, path, "train" if name not in BENCHMARKS else BENCHMARKS[name].split))
    return out


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers at all (checked once per process): ``datasets``
    retries for about half a minute per dataset before it gives up on a machine without it."""
    global _HUB
    if _HUB is None:
        import os
        import socket
        from urllib.parse import urlparse

        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
                os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes"):
            _HUB = False
        else:
            host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
            try:
                socket.create_connection((host, 443), timeout=timeout).close()
                _HUB = True
            except OSError:
                _HUB = False
    return _HUB


_HUB: bool | None = None


def load_benchmark_problems(cfg: ProblemsConfig, unchecked: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each benchmark's problems. With ``unchecked`` (``report``), a hub benchmark is skipped
    when the hub cannot be reached and named there with the reason; otherwise (``drop``) that
    is an error: a drop must never quietly check less."""
    from hinttune.core.problems import load_problems

    found = {}
    for name, source, split in benchmark_sources(cfg):
        if unchecked is not None and name in BENCHMARKS and source.partition(":")[0] == BENCHMARKS[name].hub \
                and not Path(source).exists() and not hub_reachable():
            unchecked[name] = f"no hub access to load {source}"
            continue
        try:
            loaded = load_problems(ProblemsConfig(source=source, split=split, skip_invalid=True))
        except HinttuneError as exc:
            if unchecked is not None and name in BENCHMARKS and not Path(source).exists():
                unchecked[name] = str(exc)
                continue
            raise HinttuneError(f"decontamination: benchmark {name!r}: {exc}") from None
        # every record, repeats included: an index is a record of the benchmark
        found[name] = [p.problem for p in loaded.problems]
    return found


def find_contamination(problems: list[Problem], benchmarks: dict[str, list[str]], n: int,
                       min_overlap: float = 0.0) -> list[Match]:
    index: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    texts = {}
    for name, items in benchmarks.items():
        for i, text in enumerate(items):
            texts[(name, i)] = text
            for gram in ngrams(words(text), n):
                index.setdefault(gram, []).append((name, i))
    matches = []
    for p in problems:
        mine = ngrams(words(p.problem), n)
        shared: dict[tuple[str, int], list[tuple[str, ...]]] = {}
        for gram in mine:
            for where in index.get(gram, ()):
                shared.setdefault(where, []).append(gram)
        for (name, i), grams in sorted(shared.items(), key=lambda kv: -len(kv[1])):
            overlap = len(grams) / len(mine)
            if overlap >= min_overlap:
                matches.append(Match(p.id, p.index, name, i, len(grams), round(overlap, 4),
                                     " ".join(min(grams)), texts[(name, i)][:200]))
    return matches


def decontaminate(cfg: ProblemsConfig, problems: list[Problem], run_dir: Path) -> tuple[list[Problem], dict[str, Any]]:
    """The problems to build (all, or without the contaminated ones) and the report."""
    from hinttune.core.files import write_jsonl

    unchecked: dict[str, str] = {}
    benchmarks = load_benchmark_problems(cfg, unchecked if cfg.decontaminate == "report" else None)
    if unchecked:
        log.warning("decontamination: not checked against %s (no hub access): name local files in "
                    "problems.benchmarks (NAME=PATH) to check them", ", ".join(unchecked))
    matches = find_contamination(problems, benchmarks, cfg.ngram, cfg.min_overlap)
    write_jsonl(run_dir / "contamination.jsonl", (vars(m) for m in matches))
    hit = {m.problem_id for m in matches}
    by_benchmark: dict[str, int] = {}
    for name in benchmarks:
        by_benchmark[name] = len({m.problem_id for m in matches if m.benchmark == name})
    near = {m.problem_id for m in matches if m.overlap >= 0.5}
    report = {"ngram": cfg.ngram, "min_overlap": cfg.min_overlap, "action": cfg.decontaminate,
              "benchmarks": {name: len(items) for name, items in benchmarks.items()},
              "problems_matched": len(hit), "near_duplicates": len(near), "by_benchmark": by_benchmark,
              "dropped": len(hit) if cfg.decontaminate == "drop" else 0,
              "matches": [vars(m) for m in sorted(matches, key=lambda m: -m.overlap)[:50]],
              "file": "contamination.jsonl", "unchecked": unchecked}
    if hit:
        log.warning("%d problem(s) overlap benchmark problems in %d-grams (%s): %s", len(hit), cfg.ngram,
                    ", ".join(f"{k}: {v}" for k, v in by_benchmark.items() if v),
                    "dropped" if cfg.decontaminate == "drop" else "kept (problems.decontaminate=drop removes them)")
    kept = [p for p in problems if p.id not in hit] if cfg.decontaminate == "drop" else problems
    return kept, report
