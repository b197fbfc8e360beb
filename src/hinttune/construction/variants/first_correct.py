"""The ``first-correct`` baseline: a self-probe, no instruct model. The think model continues
its own trace cut after episode k with ``</think>`` forced - ``<think>\\n`` + P_k +
``\\n</think>\\n\\n`` - and answers in at most ``assemble.first_correct_max_tokens``; the first
k (1..N) whose forced answer is graded correct is where the trace is cut, and the record is
P_k with that answer, no marker (truncation at the first correct answer, as in the
early-exit / "thought truncation" line of work).

The search is the probe stage's own (linear, batched or continuous, resumable, remembered), run
under the role ``think:first-correct``; grades go through the same grader.
"""

from __future__ import annotations

from typing import Any

from hinttune.construction.probe.search import ProbeOutcome, ProbeTarget, continuation_parts
from hinttune.construction.states import CUT_TRACE, INCOMPLETE, UNSOLVED, Assignment, incomplete_note
from hinttune.core.config import ProbeConfig, RunConfig
from hinttune.core.problems import Problem

ROLE = "think:first-correct"
CLOSE_AND_ANSWER = "\n</think>\n\n"


def self_probe_config(cfg: RunConfig) -> RunConfig:
    """The run's config with the think model in the prober's seat: its own system prompt and
    template, its turn already opened by the continuation, a short answer budget."""
    model = cfg.think.model_copy(update={"response_prefix": ""})
    probe = ProbeConfig(strategy="linear", max_tokens=cfg.assemble.first_correct_max_tokens,
                        fill_batch=cfg.probe.fill_batch)
    return cfg.model_copy(update={"instruct": model, "probes": [], "probe": probe})


def targets(cfg: RunConfig, problems: list[Problem], episodes: dict[str, list[str]]) -> list[ProbeTarget]:
    return [ProbeTarget(p, episodes[p.id], 1, len(episodes[p.id]), lead=cfg.think.response_prefix,
                        close=CLOSE_AND_ANSWER) for p in problems if episodes.get(p.id)]


def assignments(problems: list[Problem], episodes: dict[str, list[str]], outcomes: dict[str, ProbeOutcome],
                missing: dict[str, str | None]) -> list[Assignment]:
    out = []
    for p in problems:
        eps = episodes.get(p.id, [])
        base = Assignment(p.id, p.problem, UNSOLVED, None, len(eps))
        outcome = outcomes.get(p.id)
        cause = missing.get(p.id) or (outcome.incomplete if outcome is not None else None)
        if cause:
            base.state, base.note = INCOMPLETE, incomplete_note(cause)
        elif outcome is None or outcome.solution is None:
            base.note = "no cut of the think trace gave a correct forced answer"
        else:
            hit: Any = outcome.solution
            extra, answer = continuation_parts(hit.text)
            base.state, base.k_star = CUT_TRACE, hit.k
            base.hint = "".join(eps[:hit.k])
            base.thinking, base.answer = base.hint + extra, answer
        out.append(base)
    return out
