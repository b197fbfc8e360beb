"""Stage 4, probing: find the minimal effective hint K* for each problem - the smallest k whose
continuation of the think trace's prefix P_k, written by the instruct model, is graded correct.

Probing is batched across problems: each round sends the pending prefixes of every problem
still open in a single backend call, grades the round, and retires the solved ones (the
official scripts send one request at a time). Which prefixes are pending is the search
strategy's choice (``strategies.py``); with ``samples_per_prefix`` > 1 each prefix gets n
continuations and ``success_rule`` decides whether it solved the problem. Every attempt (k, continuation, verdict, tokens) is
stored, so a killed run resumes from the last finished generation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hinttune.attempts import problem_messages
from hinttune.backends import BackendPool
from hinttune.backends.base import Request
from hinttune.config import ProbeConfig, RunConfig
from hinttune.generations import Job, run_jobs
from hinttune.grading import GradeItem, Grader, Verdict
from hinttune.problems import Problem
from hinttune.reasoning import CLOSE, split_think
from hinttune.segmentation import prefix
from hinttune.strategies import Linear, make_search
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
    sample: int = 0


@dataclass
class ProbeOutcome:
    problem_id: str
    n: int
    k_star: int | None = None
    attempts: list[ProbeAttempt] = field(default_factory=list)
    incomplete: str | None = None  # why the search could not finish in this run
    rounds: int = 0

    @property
    def solution(self) -> ProbeAttempt | None:
        """A correct continuation at K* (the SFT answer)."""
        return next((a for a in self.attempts if a.k == self.k_star and a.verdict.correct), None)

    @property
    def single_sample_k_star(self) -> int | None:
        """K* as one sample per prefix would have found it: the smallest tried k whose first
        sample was correct (for reporting what samples_per_prefix changed)."""
        return min((a.k for a in self.attempts if a.sample == 0 and a.verdict.correct), default=None)


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
    probe = cfg.probe
    spp = probe.samples_per_prefix
    outcomes = {t.problem.id: ProbeOutcome(t.problem.id, len(t.episodes)) for t in targets}
    searches = {t.problem.id: make_search(probe.strategy, t.first_k, t.last_k, probe.verify)
                for t in targets}
    by_id = {t.problem.id: t for t in targets}
    tries: dict[tuple[str, int], int] = {}  # a re-checked k gets fresh sample indices
    round_no = 0
    while True:
        open_searches = [s for s in searches.values() if not s.done]
        if probe.fill_batch and open_searches:  # keep the batch full in the long tail
            lookahead = max(1, -(-probe.fill_batch // (len(open_searches) * spp)))
            for s in open_searches:
                if isinstance(s, Linear) and not s.asked:
                    s.lookahead = lookahead
        pending = {pid: s.pending() for pid, s in searches.items() if not s.done}
        pending = {pid: ks for pid, ks in pending.items() if ks}
        if not pending:
            break
        round_no += 1
        jobs, asked = [], []
        for pid, ks in pending.items():
            outcomes[pid].rounds += 1
            for k in ks:
                base = tries.get((pid, k), 0) * spp
                tries[(pid, k)] = tries.get((pid, k), 0) + 1
                request = probe_request(cfg, by_id[pid], k)
                # plan rows are per (problem, k); the sample index picks the seed
                jobs += [Job(f"{pid}#k{k}", base + j, request) for j in range(spp)]
                asked.append((pid, k, base))
        label = f"probe round {round_no} ({len(pending)} problems, {len(jobs)} continuations)"
        records = run_jobs(store, pool.get(cfg.instruct), STAGE, "instruct", jobs, cfg.seed,
                           label=label, grow_plan=True)
        items = []
        for pid, k, base in asked:
            p = by_id[pid].problem
            for j in range(base, base + spp):
                rec = records.get((f"{pid}#k{k}", j))
                if rec is not None and rec.status == "ok":
                    items.append(GradeItem(f"{rec.key}/{pid}", p.problem, p.gold_answer,
                                           graded_part(rec.text or "")))
        verdicts = grader.grade(items, label=f"probe round {round_no}")
        for pid, k, base in asked:
            if searches[pid].done:
                continue
            round_verdicts: list[bool | None] = []
            for j in range(base, base + spp):
                rec = records.get((f"{pid}#k{k}", j))
                if rec is None or rec.status != "ok":
                    outcomes[pid].incomplete = (f"probe continuation k={k} failed: "
                                                f"{rec.error if rec else 'no result'}")
                    searches[pid].done = True  # retried by the next run
                    break
                verdict = verdicts[f"{rec.key}/{pid}"]
                round_verdicts.append(verdict.correct)
                outcomes[pid].attempts.append(ProbeAttempt(k, rec.key, rec.text or "", verdict,
                                                           rec.completion_tokens, rec.prompt_tokens, j))
            else:
                success = decide(probe, round_verdicts)
                if success is None:  # an undecided grade that the success rule needs
                    detail = next(a.verdict.detail for a in reversed(outcomes[pid].attempts)
                                  if a.k == k and a.verdict.correct is None)
                    outcomes[pid].incomplete = (f"grade of probe continuation k={k} undecided "
                                                f"({detail[:120]})")
                    searches[pid].done = True
                else:
                    searches[pid].record(k, success)
    for pid, search in searches.items():
        if outcomes[pid].incomplete is None:
            outcomes[pid].k_star = search.k_star
    solved = sum(o.k_star is not None for o in outcomes.values())
    log.info("probing (%s): %d problems, %d solved with a hint, %d rounds", probe.strategy,
             len(targets), solved, round_no)
    return outcomes


def decide(probe: ProbeConfig, verdicts: list[bool | None]) -> bool | None:
    """Whether a prefix solved the problem by the success rule, or None when an undecided
    verdict could tip it either way."""
    low = probe.succeeded([v is True for v in verdicts])
    high = probe.succeeded([v is not False for v in verdicts])
    return low if low == high else None


def continuation_parts(continuation: str) -> tuple[str, str]:
    """(extra reasoning, answer) of a continuation: a continuation that closes the think block
    itself contributes the text before ``</think>`` to the reasoning."""
    if CLOSE in continuation:
        split = split_think(continuation)
        return split.reasoning, split.answer
    return "", continuation
