"""``hinttune plan``: before spending GPU hours, estimate the generations, tokens, engine
rounds and time of each stage for a config and a search strategy. With attempts already in
the run directory, the estimate uses the real think traces (their episode counts) and token
counts; otherwise it assumes the configured maxima. Probing outcomes are unknown in advance,
so they follow a prior: a share of probed problems that some hint solves (the paper's
released data: 278 Sparse-Hint of 678 probed), with K* uniform over 1..N-1, success monotone
in k. The estimate is written to ``plan.json``; the run's summary shows the actuals beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean
from typing import Any

from hinttune.config import RunConfig
from hinttune.problems import load_problems
from hinttune.segmentation import trace_episodes
from hinttune.strategies import make_search

SOLVABLE_SHARE = 278 / 678  # of the probed problems, solved by some hint (released 1K data)
PROBED_SHARE = 1 - 322 / 1000  # problems the instruct model does not solve unaided


def _search_cost(strategy: str, n: int, k_star: int | None, verify: bool) -> tuple[int, int]:
    """(generations, rounds) of one problem's search with monotone outcomes."""
    search, gens, rounds = make_search(strategy, 1, n - 1, verify), 0, 0
    while not search.done:
        ks = search.pending()
        rounds += 1
        gens += len(ks)
        for k in ks:
            search.record(k, k_star is not None and k >= k_star)
    return gens, rounds


def expected_probe_cost(strategy: str, n: int, verify: bool = False,
                        solvable: float = SOLVABLE_SHARE) -> tuple[float, int]:
    """Expected generations per probed problem and worst-case rounds, for N episodes."""
    if n < 2:
        return 0.0, 0
    solved = [_search_cost(strategy, n, k, verify) for k in range(1, n)]
    unsolved = _search_cost(strategy, n, None, verify)
    gens = solvable * mean(g for g, _ in solved) + (1 - solvable) * unsolved[0]
    return gens, max(r for _, r in solved + [unsolved])


def _stored_attempts(cfg: RunConfig) -> dict[str, list[tuple[str, int | None]]]:
    """(text, completion tokens) of stored attempts by role, if the run has any."""
    db = Path(cfg.run_dir) / "store.sqlite"
    if not db.exists():
        return {}
    from hinttune.store import RunStore

    with RunStore(Path(cfg.run_dir)) as store:
        rows = store.db.execute("SELECT role, text, completion_tokens FROM generations "
                                "WHERE stage='attempts' AND status='ok'").fetchall()
    out: dict[str, list[tuple[str, int | None]]] = {}
    for role, text, tokens in rows:
        out.setdefault(role, []).append((text or "", tokens))
    return out


def estimate(cfg: RunConfig, throughput: float) -> dict[str, Any]:
    problems = len(load_problems(cfg.problems).problems)
    samples = cfg.attempts.samples
    stored = _stored_attempts(cfg)

    def mean_tokens(role: str, fallback: int) -> float:
        counts = [t for _, t in stored.get(role, []) if t]
        return mean(counts) if counts else fallback

    think_tokens = mean_tokens("think", cfg.think.sampling.max_tokens // 2)
    instruct_tokens = mean_tokens("instruct", cfg.instruct.sampling.max_tokens // 4)
    probe_budget = cfg.probe.max_tokens or cfg.instruct.sampling.max_tokens
    probe_tokens = min(instruct_tokens, probe_budget)
    if stored.get("think"):
        ns = [len(trace_episodes(t, cfg.segment, cfg.official)) for t, _ in stored["think"]]
        source = f"episode counts of {len(ns)} stored think traces"
    else:
        ns = [cfg.segment.max_episodes] * problems
        source = f"assumed N = {cfg.segment.max_episodes} episodes (no attempts yet)"
    costs = [expected_probe_cost(cfg.probe.strategy, n, cfg.probe.verify) for n in ns]
    probed = problems * PROBED_SHARE
    gens_per_problem = mean(c[0] for c in costs) * cfg.probe.samples_per_prefix
    stages = {
        "attempts": {"generations": problems * samples * 2,
                     "tokens": problems * samples * (think_tokens + instruct_tokens), "rounds": 2},
        "probe": {"generations": probed * gens_per_problem,
                  "tokens": probed * gens_per_problem * probe_tokens,
                  "rounds": max((c[1] for c in costs), default=0)},
    }
    for stage in stages.values():
        stage["hours"] = stage["tokens"] / throughput / 3600
    return {"problems": problems, "strategy": cfg.probe.strategy, "throughput": throughput,
            "episodes": source, "mean_episodes": mean(ns) if ns else 0,
            "tokens_per_generation": {"think": think_tokens, "instruct": instruct_tokens,
                                      "probe": probe_tokens},
            "stages": stages}


def write_plan(cfg: RunConfig, plan: dict[str, Any]) -> Path:
    path = Path(cfg.run_dir) / "plan.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=2) + "\n", "utf-8")
    return path


def read_plan(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "plan.json"
    return json.loads(path.read_text()) if path.exists() else None
