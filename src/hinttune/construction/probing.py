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
from typing import Any

from hinttune.construction.attempts import problem_messages
from hinttune.construction.segmentation import prefix
from hinttune.construction.strategies import Linear, make_search
from hinttune.core.backends import BackendPool
from hinttune.core.backends.base import Request
from hinttune.core.config import ProbeConfig, RunConfig
from hinttune.core.generations import Job, JobStream, run_jobs
from hinttune.core.grading import GradeItem, Grader, Verdict
from hinttune.core.problems import Problem
from hinttune.core.reasoning import CLOSE, split_think
from hinttune.core.store import RunStore

log = logging.getLogger(__name__)
STAGE = "probe"


@dataclass
class ProbeTarget:
    problem: Problem
    episodes: list[str]
    first_k: int  # paper: 1 (k = 0 is the unaided attempt); official: 0
    last_k: int  # paper: N - 1 (success at N is Full-Hint anyway); official: N
    # around the prefix in the continued turn: the first-correct baseline has the think model
    # continue its own "<think>\n" + P_k + "\n</think>\n\n" (a forced answer)
    lead: str = ""
    close: str = ""


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
    ahead: int = 0  # continuations asked ahead past K* and not needed (rolling look-ahead)

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
    continuation = target.lead + prefix(target.episodes, k) + target.close
    return Request(messages=problem_messages(instruct, target.problem), sampling=sampling,
                   continuation=continuation or None,
                   template_kwargs=dict(instruct.chat_template_kwargs))


class _Prober:
    """What both schedules share: the searches, the requests they ask for, and settling a
    problem's asked k once all their verdicts are in (in the order asked, so K* is the same
    whichever schedule ran)."""

    def __init__(self, cfg: RunConfig, targets: list[ProbeTarget]):
        self.cfg, self.probe = cfg, cfg.probe
        self.spp = cfg.probe.samples_per_prefix
        self.outcomes = {t.problem.id: ProbeOutcome(t.problem.id, len(t.episodes)) for t in targets}
        self.searches = {t.problem.id: make_search(self.probe.strategy, t.first_k, t.last_k, self.probe.verify)
                         for t in targets}
        self.by_id = {t.problem.id: t for t in targets}
        self.tries: dict[tuple[str, int], int] = {}  # a re-checked k gets fresh sample indices

    def open(self) -> list[str]:
        return [pid for pid, s in self.searches.items() if not s.done]

    def look_ahead(self, pids: list[str], open_count: int) -> None:
        """Linear with fill_batch: ask several consecutive k per problem when few are open."""
        if self.probe.fill_batch and open_count:
            lookahead = max(1, -(-self.probe.fill_batch // (open_count * self.spp)))
            for pid in pids:
                search = self.searches[pid]
                if isinstance(search, Linear) and not search.asked:
                    search.lookahead = lookahead

    def ask(self, pid: str) -> tuple[list[Job], list[tuple[int, int]]]:
        """The jobs for a problem's pending k, and (k, first sample index) of each."""
        jobs, asked = [], []
        ks = self.searches[pid].pending() if not self.searches[pid].done else []
        if ks:
            self.outcomes[pid].rounds += 1
        for k in ks:
            k_jobs, base = self.ask_k(pid, k)
            jobs += k_jobs
            asked.append((k, base))
        return jobs, asked

    def ask_k(self, pid: str, k: int) -> tuple[list[Job], int]:
        """The samples_per_prefix jobs for one k, and their first sample index."""
        base = self.tries.get((pid, k), 0) * self.spp
        self.tries[(pid, k)] = self.tries.get((pid, k), 0) + 1
        request = probe_request(self.cfg, self.by_id[pid], k)
        # plan rows are per (problem, k); the sample index picks the seed. Under the
        # official policy k = 0 is the bare prompt, which must be sampled afresh.
        salt = "probe" if request.continuation is None else ""
        return [Job(f"{pid}#k{k}", base + j, request, salt=salt) for j in range(self.spp)], base

    def rolls(self, pid: str) -> bool:
        """Linear with fill_batch under the continuous schedule keeps a rolling window of k in
        flight per problem instead of a batch that waits for its slowest continuation."""
        return bool(self.probe.fill_batch) and isinstance(self.searches[pid], Linear)

    def window(self, open_count: int) -> int:
        return max(1, -(-self.probe.fill_batch // (max(open_count, 1) * self.spp)))

    def item(self, pid: str, rec: Any) -> GradeItem:
        p = self.by_id[pid].problem
        # the official scripts grade the whole continuation, reasoning included
        text = rec.text or ""
        return GradeItem(f"{rec.key}/{pid}", p.problem, p.gold_answer,
                         text if self.cfg.official else graded_part(text))

    def settle(self, pid: str, asked: list[tuple[int, int]], records: dict[tuple[str, int], Any],
               verdicts: dict[str, Verdict]) -> None:
        """Record the outcomes of a problem's asked k (their records and verdicts are in)."""
        outcome, search = self.outcomes[pid], self.searches[pid]
        for k, base in asked:
            if search.done:
                return
            round_verdicts: list[bool | None] = []
            for j in range(base, base + self.spp):
                rec = records.get((f"{pid}#k{k}", j))
                if rec is None or rec.status != "ok":
                    outcome.incomplete = (f"probe continuation k={k} "
                                          f"{rec.failure if rec else 'failed: no result'}")
                    search.done = True  # retried by the next run
                    return
                verdict = verdicts[f"{rec.key}/{pid}"]
                round_verdicts.append(verdict.correct)
                outcome.attempts.append(ProbeAttempt(k, rec.key, rec.text or "", verdict,
                                                     rec.completion_tokens, rec.prompt_tokens, j))
            success = decide(self.probe, round_verdicts)
            if success is None:  # an undecided grade that the success rule needs
                detail = next(a.verdict.detail for a in reversed(outcome.attempts)
                              if a.k == k and a.verdict.correct is None)
                outcome.incomplete = f"grade of probe continuation k={k} undecided ({detail[:120]})"
                search.done = True
                return
            search.record(k, success)

    def finish(self) -> dict[str, ProbeOutcome]:
        for pid, search in self.searches.items():
            if self.outcomes[pid].incomplete is None:
                self.outcomes[pid].k_star = search.k_star
        return self.outcomes


def run_probes(cfg: RunConfig, store: RunStore, grader: Grader, pool: BackendPool,
               targets: list[ProbeTarget], role: str = "instruct") -> dict[str, ProbeOutcome]:
    """Search every target's K* with ``cfg.instruct`` (stored and planned under ``role``)."""
    prober = _Prober(cfg, targets)
    backend = pool.get(cfg.instruct)
    if cfg.probe.schedule == "continuous" and backend.streams:
        rounds = _continuous(prober, store, grader, backend, role)
    else:
        rounds = _rounds(prober, store, grader, pool, role)
    outcomes = prober.finish()
    solved = sum(o.k_star is not None for o in outcomes.values())
    log.info("probing (%s, %s): %d problems, %d solved with a hint, %d rounds", cfg.probe.strategy,
             cfg.probe.schedule, len(targets), solved, rounds)
    return outcomes


def _rounds(prober: _Prober, store: RunStore, grader: Grader, pool: BackendPool, role: str) -> int:
    """Round by round: every open problem's pending k in one backend call, then grade."""
    cfg, round_no = prober.cfg, 0
    while True:
        open_pids = prober.open()
        prober.look_ahead(open_pids, len(open_pids))
        asked = {pid: prober.ask(pid) for pid in open_pids}
        asked = {pid: a for pid, a in asked.items() if a[0]}
        if not asked:
            return round_no
        round_no += 1
        jobs = [job for pid_jobs, _ in asked.values() for job in pid_jobs]
        label = f"probe round {round_no} ({len(asked)} problems, {len(jobs)} continuations)"
        records = run_jobs(store, pool.get(cfg.instruct), STAGE, role, jobs, cfg.seed,
                           label=label, grow_plan=True)
        items = [prober.item(job.problem_id.split("#k")[0], records[(job.problem_id, job.sample)])
                 for job in jobs if (job.problem_id, job.sample) in records
                 and records[(job.problem_id, job.sample)].status == "ok"]
        verdicts = grader.grade(items, label=f"probe round {round_no}")
        for pid, (_, ks) in asked.items():
            prober.settle(pid, ks, records, verdicts)


def _continuous(prober: _Prober, store: RunStore, grader: Grader, backend: Any, role: str) -> int:
    """Event-driven: each continuation is graded the moment it is stored, and as soon as all of
    a problem's asked k are in, its search decides and its next k joins the engine while the
    others run. With fill_batch, linear keeps a rolling window of consecutive k in flight per
    problem (ceil(fill_batch / open problems) of them, growing as problems close): each k is
    settled in order as soon as it and every k below it are graded, so K* is linear's, and a
    finished k is replaced at once; what was asked past K* is counted, not used."""
    cfg = prober.cfg
    stream = JobStream(store, backend, STAGE, role, cfg.seed,
                       label=f"probe ({cfg.probe.strategy}, continuous)")
    pending: dict[str, tuple[list[tuple[int, int]], dict[tuple[str, int], Any], int]] = {}
    flight: dict[str, dict[int, tuple[int, dict[tuple[str, int], Any]]]] = {}  # rolling: k -> (base, records)
    next_k: dict[str, int] = {}
    verdicts: dict[str, Verdict] = {}
    open_count = [len(prober.open())]

    def ask(pid: str) -> None:
        if prober.rolls(pid):
            roll(pid)
            return
        prober.look_ahead([pid], open_count[0])  # counted, not recounted per problem
        jobs, asked = prober.ask(pid)
        if jobs:
            pending[pid] = (asked, {}, len(jobs))
            for job in jobs:
                stream.put(job)

    def roll(pid: str) -> None:
        search = prober.searches[pid]
        inflight = flight.setdefault(pid, {})
        k = next_k.setdefault(pid, search.next)  # type: ignore[attr-defined]
        while not search.done and len(inflight) < prober.window(open_count[0]) and k <= search.last:
            jobs, base = prober.ask_k(pid, k)
            prober.outcomes[pid].rounds += 1
            inflight[k] = (base, {})
            next_k[pid] = k = k + 1
            for job in jobs:
                stream.put(job)

    def closed(pid: str) -> None:
        before = prober.window(open_count[0])
        open_count[0] -= 1
        still_open.discard(pid)
        if prober.window(open_count[0]) > before:  # the others' windows grew: fill them
            for other in list(still_open):
                roll(other)

    def on_rolling(pid: str, job: Job, rec: Any) -> None:
        search = prober.searches[pid]
        k = int(job.problem_id.rsplit("#k", 1)[1])
        if search.done:  # asked ahead past K* (or past a failure): not needed
            flight.get(pid, {}).pop(k, None)
            prober.outcomes[pid].ahead += 1
            return
        base, records = flight[pid][k]
        records[(job.problem_id, job.sample)] = rec
        # settle every complete k from the lowest unsettled one up, in order
        while not search.done and search.next in flight[pid]:  # type: ignore[attr-defined]
            low = search.next  # type: ignore[attr-defined]
            low_base, low_records = flight[pid][low]
            if len(low_records) < prober.spp:
                break
            del flight[pid][low]
            search.expect(low)  # type: ignore[attr-defined]
            prober.settle(pid, [(low, low_base)], low_records, verdicts)
        if search.done:  # what already came back above K* was generated for nothing
            prober.outcomes[pid].ahead += sum(len(r) for _, r in flight[pid].values())
            flight[pid].clear()
            closed(pid)
        else:
            roll(pid)

    def on_result(job: Job, rec: Any) -> None:
        pid = job.problem_id.split("#k")[0]
        if prober.rolls(pid):
            on_rolling(pid, job, rec)
            return
        asked, records, expected = pending[pid]
        records[(job.problem_id, job.sample)] = rec
        if len(records) == expected:
            del pending[pid]
            prober.settle(pid, asked, records, verdicts)
            if prober.searches[pid].done:
                open_count[0] -= 1
            ask(pid)

    def on_results(results: list[tuple[Job, Any]]) -> None:
        # one grading call for everything that came back together (the workers stay busy)
        items = []
        for job, rec in results:
            pid = job.problem_id.split("#k")[0]
            if rec.status == "ok" and not prober.searches[pid].done:  # else: asked past K*
                items.append(prober.item(pid, rec))
        verdicts.update(grader.grade(items, label="probe"))
        for job, rec in results:
            on_result(job, rec)

    still_open = {pid for pid in prober.open() if prober.rolls(pid)}
    for pid in prober.open():
        ask(pid)
    stream.run(on_results)
    return max((o.rounds for o in prober.outcomes.values()), default=0)


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
