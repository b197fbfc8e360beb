"""Stage 4, probing: find the minimal effective hint K* for each problem - the smallest k whose
continuation of the think trace's prefix P_k, written by the instruct model, is graded correct.

Probing is batched across problems: each round sends one request for every problem still
open in a single backend call, grades the round, and retires the solved ones (the official
scripts send one request at a time). Every attempt (k, continuation, verdict, tokens) is
stored, so a killed run resumes from the last finished generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hinttune.attempts import problem_messages
from hinttune.backends import BackendPool
from hinttune.backends.base import Request
from hinttune.config import RunConfig
from hinttune.generations import Job, run_jobs
from hinttune.grading import GradeItem, Grader, Verdict
from hinttune.problems import Problem
from hinttune.reasoning import CLOSE, split_think
from hinttune.segmentation import prefix
from hinttune.store import RunStore

log = logging.getLogger(__name__)
STAGE = "probe"


@dataclass
class ProbeTarget:
    problem: Problem
    episodes: list[str]
    first_k: int  # paper: 1 (k = 0 is the unaided attempt); official: 0
    last_k: int  # paper: N - 1 (success at N is Full-Hint anyway); official: N


@dataclass
class ProbeAttempt:
    k: int
    key: str
    text: str
    verdict: Verdict
    completion_tokens: int | None
    prompt_tokens: int | None = None


@dataclass
class ProbeOutcome:
    problem_id: str
    n: int
    k_star: int | None = None
    attempts: list[ProbeAttempt] = field(default_factory=list)
    incomplete: str | None = None  # why the search could not finish in this run

    @property
    def solution(self) -> ProbeAttempt | None:
        return next((a for a in self.attempts if a.k == self.k_star), None)


def graded_part(text: str) -> str:
    """The part of an output that holds the answer: after the last </think>, if any."""
    return text.rsplit(CLOSE, 1)[1] if CLOSE in text else text


def probe_request(cfg: RunConfig, target: ProbeTarget, k: int) -> Request:
    instruct = cfg.instruct
    sampling = instruct.sampling
    if cfg.probe.max_tokens is not None:
        sampling = sampling.model_copy(update={"max_tokens": cfg.probe.max_tokens})
    return Request(messages=problem_messages(instruct, target.problem), sampling=sampling,
                   continuation=prefix(target.episodes, k) or None,
                   template_kwargs=dict(instruct.chat_template_kwargs))


def run_probes(cfg: RunConfig, store: RunStore, grader: Grader, pool: BackendPool,
               targets: list[ProbeTarget]) -> dict[str, ProbeOutcome]:
    outcomes = {t.problem.id: ProbeOutcome(t.problem.id, len(t.episodes)) for t in targets}
    current = {t.problem.id: t.first_k for t in targets if t.first_k <= t.last_k}
    by_id = {t.problem.id: t for t in targets}
    round_no = 0
    while current:
        round_no += 1
        jobs = [Job(pid, k, probe_request(cfg, by_id[pid], k)) for pid, k in current.items()]
        ks = sorted(set(current.values()))
        label = f"probe round {round_no} (k={ks[0]}{'…' + str(ks[-1]) if len(ks) > 1 else ''}, {len(jobs)} open)"
        backend = pool.get(cfg.instruct)
        records = run_jobs(store, backend, STAGE, "instruct", jobs, cfg.seed, label=label, grow_plan=True)
        items, keyed = [], {}
        for pid, k in current.items():
            rec = records.get((pid, k))
            if rec is None or rec.status != "ok":
                outcomes[pid].incomplete = f"probe k={k} failed: {rec.error if rec else 'no result'}"
                continue
            keyed[pid] = rec
            p = by_id[pid].problem
            items.append(GradeItem(f"{rec.key}/{pid}", p.problem, p.gold_answer, graded_part(rec.text or "")))
        verdicts = grader.grade(items, label=f"probe k={ks[0]}" if len(ks) == 1 else "probe")
        following = {}
        for pid, rec in keyed.items():
            k = current[pid]
            verdict = verdicts[f"{rec.key}/{pid}"]
            outcomes[pid].attempts.append(ProbeAttempt(k, rec.key, rec.text or "", verdict,
                                                       rec.completion_tokens, rec.prompt_tokens))
            if verdict.correct:
                outcomes[pid].k_star = k
            elif k < by_id[pid].last_k:
                following[pid] = k + 1
        current = following
    solved = sum(o.k_star is not None for o in outcomes.values())
    log.info("probing: %d problems, %d solved with a hint, %d rounds", len(targets), solved, round_no)
    return outcomes


def continuation_parts(continuation: str) -> tuple[str, str]:
    """(extra reasoning, answer) of a continuation: a continuation that closes the think block
    itself contributes the text before ``</think>`` to the reasoning."""
    if CLOSE in continuation:
        split = split_think(continuation)
        return split.reasoning, split.answer
    return "", continuation
