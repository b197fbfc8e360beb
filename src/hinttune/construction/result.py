"""What a construction run holds in memory - problems, attempts, verdicts, episodes, probes,
assignments - and what is read off it: each problem's facts for the state rules, each record's
meta row, probing statistics, and the causes of incomplete problems."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hinttune.construction.variants.baselines import ThinkSample
from hinttune.construction.probe.search import ProbeOutcome
from hinttune.construction.states import INCOMPLETE, Assignment, ProblemFacts, cause_of
from hinttune.core.chat import TokenCounter
from hinttune.core.config import ProbeConfig
from hinttune.core.grading import UNGRADED, Verdict
from hinttune.core.problems import Problem
from hinttune.core.reasoning import split_think


@dataclass
class RunResult:
    problems: list[Problem]
    attempts: dict[str, dict[tuple[str, int], Any]]
    verdicts: dict[str, dict[str, Verdict]] = field(default_factory=dict)
    episodes: dict[str, list[str]] = field(default_factory=dict)
    probes: dict[str, ProbeOutcome] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    # further instruct probes (instruct: [a, b, ...]): each one's result, by name
    others: dict[str, "RunResult"] = field(default_factory=dict)
    # what some baselines need beyond Hint Tuning's own inputs
    think_samples: dict[str, list[ThinkSample]] = field(default_factory=dict)
    self_probes: dict[str, ProbeOutcome] = field(default_factory=dict)
    baselines: dict[str, list[Assignment]] = field(default_factory=dict)  # as exported
    # what was graded, by problem id (the grading audit samples from it)
    graded: list[tuple[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)  # said after the stage's table


def attempt_text(result: RunResult, role: str, pid: str) -> str:
    rec = result.attempts[role].get((pid, 0))
    return (rec.text or "") if rec is not None and rec.status == "ok" else ""


def attempt_missing(result: RunResult, role: str, pid: str) -> str | None:
    """Why a model's attempt is not there to build from (None: it is)."""
    rec = result.attempts[role].get((pid, 0))
    if rec is None:
        return f"{role} attempt not generated"
    if rec.status != "ok":
        return f"{role} attempt {rec.failure}"
    return None


def _undecided(result: RunResult, role: str, pid: str) -> str | None:
    verdict = result.verdicts.get(role, {}).get(pid)
    if verdict is None:
        return f"{role} answer not graded"
    if verdict.correct is None:
        return f"grade of the {role} answer undecided ({verdict.grader}: {verdict.detail[:120]})"
    return None


def facts_of(result: RunResult, p: Problem) -> ProblemFacts:
    think_v = result.verdicts["think"].get(p.id, UNGRADED)
    instruct_v = result.verdicts["instruct"].get(p.id, UNGRADED)
    return ProblemFacts(p.id, p.problem, attempt_text(result, "think", p.id), think_v.correct,
                        attempt_text(result, "instruct", p.id), instruct_v.correct,
                        result.episodes.get(p.id, []), result.probes.get(p.id),
                        think_missing=attempt_missing(result, "think", p.id),
                        instruct_missing=attempt_missing(result, "instruct", p.id),
                        think_undecided=_undecided(result, "think", p.id),
                        instruct_undecided=_undecided(result, "instruct", p.id))


def failure_causes(result: RunResult) -> Counter:
    """Incomplete problems by cause (a cause's first clause, without per-request detail)."""
    causes: Counter = Counter()
    if result.assignments:
        for a in result.assignments:
            if a.state == INCOMPLETE:
                causes[_cause(a.note)] += 1
        for name, other in result.others.items():  # a further probe's failures fail the run too
            causes.update({f"probe {name}: {cause}": n for cause, n in failure_causes(other).items()})
        lost = {a.problem_id for a in result.assignments if a.state == INCOMPLETE}
        for name, assignments in result.baselines.items():  # and a baseline's own (not copied ones)
            causes.update(f"baseline {name}: {_cause(a.note)}" for a in assignments
                          if a.state == INCOMPLETE and a.problem_id not in lost)
        return causes
    for role, records in result.attempts.items():
        for rec in records.values():
            if rec.status != "ok":
                causes[_cause(f"{role} attempt {rec.failure}")] += 1
    return causes


def _cause(note: str) -> str:
    note = cause_of(note)
    head, _, rest = note.partition(": ")
    detail = re.sub(r"\bk=\d+", "k", head)  # one cause for every k
    if rest:
        # "HTTP 500 from URL: message" -> "HTTP 500 from URL"; long texts cut
        detail += ": " + rest.split(": ")[0][:100]
    return detail


def record_meta(a: Assignment, result: RunResult, count: TokenCounter) -> dict[str, Any]:
    think = split_think(attempt_text(result, "think", a.problem_id))
    probe = result.probes.get(a.problem_id)
    return {"id": a.problem_id, "state": a.state, "k_star": a.k_star, "n": a.n,
            "verified": a.verified,
            "trace_tokens": count(think.reasoning), "hint_tokens": count(a.hint),
            "answer_tokens": count(a.answer), "output_tokens": count(a.output),
            "token_unit": count.unit,
            "grader_think": result.verdicts["think"].get(a.problem_id, UNGRADED).grader,
            "grader_instruct": result.verdicts["instruct"].get(a.problem_id, UNGRADED).grader,
            "probe_attempts": len(probe.attempts) if probe else 0}


def probe_statistics(probe: ProbeConfig, probes: dict[str, ProbeOutcome]) -> dict[str, Any]:
    outcomes = list(probes.values())
    stats = {"strategy": probe.strategy, "problems": len(outcomes),
             "generations": sum(len(o.attempts) for o in outcomes),
             "tokens": sum(a.completion_tokens or 0 for o in outcomes for a in o.attempts),
             "rounds": max((o.rounds for o in outcomes), default=0),
             "solved": sum(o.k_star is not None for o in outcomes)}
    # generations a one-k-at-a-time linear search would not have asked (look-ahead past K*)
    stats["beyond_linear"] = sum(a.k > o.k_star for o in outcomes if o.k_star is not None
                                 for a in o.attempts) + sum(o.ahead for o in outcomes)
    if probe.samples_per_prefix > 1:  # what the success rule changed against one sample
        stats["k_star_changed_by_rule"] = sum(o.k_star != o.single_sample_k_star for o in outcomes)
    return stats
