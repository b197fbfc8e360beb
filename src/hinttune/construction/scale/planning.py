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

from hinttune.construction.policy import Policy
from hinttune.construction.probe.strategies import make_search
from hinttune.core.config import RunConfig
from hinttune.core.files import write_json
from hinttune.core.problems import load_problems

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
    from hinttune.core.store import RunStore

    with RunStore(Path(cfg.run_dir)) as store:
        rows = store.db.execute("SELECT role, text, completion_tokens FROM generations "
                                "WHERE stage='attempts' AND status='ok'").fetchall()
    out: dict[str, list[tuple[str, int | None]]] = {}
    for role, text, tokens in rows:
        out.setdefault(role, []).append((text or "", tokens))
    return out


CHARS_PER_TOKEN = 4  # for prompt sizes before any tokenizer is loaded
JUDGE_REPLY_TOKENS = 256  # the judge writes up to 512 tokens: a short reasoning, then Yes/No


def estimate(cfg: RunConfig, throughput: float, prefill_throughput: float | None = None) -> dict[str, Any]:
    """Generations, generated tokens, prompt (prefill) tokens, rounds and hours per stage:
    hours = (generated / throughput + prompt tokens / prefill_throughput) / engines, where the
    throughputs are one engine's (prefill default 10x) and engines is the data_parallel_size
    of the model the stage runs on."""
    from hinttune.core.errors import HinttuneError
    from hinttune.core.grading import is_short_gold

    if throughput <= 0 or (prefill_throughput is not None and prefill_throughput <= 0):
        raise HinttuneError("--throughput and --prefill-throughput must be positive (tokens per second)")
    prefill_throughput = prefill_throughput or 10 * throughput
    loaded = load_problems(cfg.problems).problems
    problems = len(loaded)
    samples = cfg.attempts.samples
    stored = _stored_attempts(cfg)
    problem_tokens = mean(len(p.problem) for p in loaded) / CHARS_PER_TOKEN
    gold_tokens = mean(len(p.gold_answer) for p in loaded) / CHARS_PER_TOKEN

    def mean_tokens(role: str, fallback: int) -> float:
        counts = [t for _, t in stored.get(role, []) if t]
        return mean(counts) if counts else fallback

    think_tokens = mean_tokens("think", cfg.think.sampling.max_tokens // 2)
    instruct_tokens = mean_tokens("instruct", cfg.instruct.sampling.max_tokens // 4)
    probe_budget = cfg.probe.max_tokens or cfg.instruct.sampling.max_tokens
    probe_tokens = min(instruct_tokens, probe_budget)
    if stored.get("think"):
        ns = [len(Policy.of(cfg).episodes(t, cfg.segment)) for t, _ in stored["think"]]
        source = f"episode counts of {len(ns)} stored think traces"
    else:
        ns = [cfg.segment.max_episodes] * problems
        source = f"assumed N = {cfg.segment.max_episodes} episodes (no attempts yet)"
    costs = [expected_probe_cost(cfg.probe.strategy, n, cfg.probe.verify) for n in ns]
    probed = problems * PROBED_SHARE
    gens_per_problem = mean(c[0] for c in costs) * cfg.probe.samples_per_prefix
    probe_gens = probed * gens_per_problem
    # a probe's prompt holds the problem and a prefix of the trace: on average half of it
    # (prefix caching makes repeated prefixes cheap; this counts them in full, an upper bound)
    stages = {
        "attempts": {"generations": problems * samples * 2,
                     "tokens": problems * samples * (think_tokens + instruct_tokens),
                     "prompt_tokens": problems * samples * 2 * problem_tokens, "rounds": 2},
        "probe": {"generations": probe_gens, "tokens": probe_gens * probe_tokens,
                  "prompt_tokens": probe_gens * (problem_tokens + think_tokens / 2),
                  "rounds": max((c[1] for c in costs), default=0)},
    }
    grader = cfg.grading.grader or ("judge" if cfg.official else "hybrid")
    if grader != "math":
        # hybrid sends long (worked-solution) golds to the judge; judge sends everything
        share = 1.0 if grader == "judge" else mean(
            not is_short_gold(p.gold_answer, cfg.grading.short_gold_chars) for p in loaded)
        calls = share * (problems * 2 + probe_gens)
        graded_tokens = (problems * (think_tokens + instruct_tokens) / 2 * 2 + probe_gens * probe_tokens) \
            / max(problems * 2 + probe_gens, 1)
        stages["judge"] = {"generations": calls, "tokens": calls * JUDGE_REPLY_TOKENS,
                           "prompt_tokens": calls * (problem_tokens + gold_tokens + graded_tokens + 200),
                           "rounds": 2 + stages["probe"]["rounds"]}
    # --throughput is one engine's: each stage runs on all engines of the model it uses
    # (data_parallel_size); the attempts' two models each take their share of the work
    think_dp, instruct_dp = cfg.think.data_parallel_size, cfg.instruct.data_parallel_size
    judge_dp = cfg.grading.judge.data_parallel_size if cfg.grading.judge is not None else instruct_dp
    think_share = think_tokens / max(think_tokens + instruct_tokens, 1)
    stages["attempts"]["engines"] = 1 / (think_share / think_dp + (1 - think_share) / instruct_dp)
    stages["probe"]["engines"] = instruct_dp
    if "judge" in stages:
        stages["judge"]["engines"] = judge_dp
    for stage in stages.values():
        stage["hours"] = (stage["tokens"] / throughput + stage["prompt_tokens"] / prefill_throughput) \
            / stage["engines"] / 3600
    return {"problems": problems, "strategy": cfg.probe.strategy, "throughput": throughput,
            "prefill_throughput": prefill_throughput, "grader": grader,
            "episodes": source, "mean_episodes": mean(ns) if ns else 0,
            "tokens_per_generation": {"think": think_tokens, "instruct": instruct_tokens,
                                      "probe": probe_tokens},
            "stages": stages}


def write_plan(cfg: RunConfig, plan: dict[str, Any]) -> Path | None:
    """plan.json in the run folder (the run's summary shows it beside the actual figures);
    a plan makes no run folder of its own: None when there is none yet."""
    path = Path(cfg.run_dir) / "plan.json"
    if not path.parent.is_dir():
        return None
    write_json(path, plan)
    return path


def read_plan(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "plan.json"
    return json.loads(path.read_text()) if path.exists() else None
