"""Stage 4, probing: find the minimal effective hint K* for each problem - the smallest k whose
continuation of the think trace's prefix P_k, written by the instruct model, is graded correct.

Each problem's search is a task of its own (``Probing``): it asks its next k, awaits the
continuations and their verdicts (Math-Verify in the worker processes, judge calls on the
engine like any request) and decides, while every other problem's requests run beside it on
the same engines - so the engines stay full without rounds, and a problem's growing prefixes go
to one engine (its prefix cache). The official scripts send one request at a time. Which k to
ask is the search strategy's choice (``strategies.py``); linear also asks ahead into idle
slots (``probe.fill_batch``). With ``samples_per_prefix`` > 1 each prefix gets n continuations
and ``success_rule`` decides whether it solved the problem. Every attempt (k, continuation,
verdict, tokens) is stored as it completes, so a killed run resumes from there.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from itertools import count
from dataclasses import dataclass, field
from typing import Any

from hinttune.construction.attempts import problem_messages
from hinttune.construction.policy import Policy
from hinttune.construction.segmentation import prefix
from hinttune.construction.probe.strategies import Linear, make_search
from hinttune.core.backends import BackendPool, Model
from hinttune.core.backends.base import Request
from hinttune.core.config import ModelBase, ProbeConfig, RunConfig
from hinttune.core.generations import AsyncJobs, Job
from hinttune.core.grading import GradeItem, Grader, Verdict
from hinttune.core.progress import stage_progress
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


@dataclass(frozen=True)
class ProbeSetup:
    """What a probe search uses: the probe settings, the run's policy and seed, and its models
    (the instruct model that continues the prefixes, the judge when one grades)."""
    probe: ProbeConfig
    policy: Policy
    seed: int
    instruct: Model
    judge: Model | None = None

    @classmethod
    def of(cls, cfg: RunConfig, pool: BackendPool, grader: Grader) -> "ProbeSetup":
        judge = pool.model(grader.judge) if grader.kind != "math" else None
        return cls(cfg.probe, Policy.of(cfg), cfg.seed, pool.model(cfg.instruct), judge)


def probe_request(instruct: ModelBase, probe: ProbeConfig, target: ProbeTarget, k: int) -> Request:
    sampling = instruct.sampling
    if probe.max_tokens is not None:
        sampling = sampling.model_copy(update={"max_tokens": probe.max_tokens})
    continuation = target.lead + prefix(target.episodes, k) + target.close
    return Request(messages=problem_messages(instruct, target.problem), sampling=sampling,
                   continuation=continuation or None,
                   template_kwargs=dict(instruct.chat_template_kwargs))


@dataclass
class Tried:
    """What one k's continuations gave: their attempts, and whether k solved the problem
    (None with ``incomplete`` when a continuation failed or a verdict the rule needs is
    undecided)."""
    k: int
    attempts: list[ProbeAttempt]
    success: bool | None = None
    incomplete: str | None = None


def engine_count(backend: Any) -> int:
    """The engines behind a backend: data-parallel replicas, or one."""
    return len(getattr(backend, "replicas", None) or [backend])


class LookAhead:
    """Idle engine slots, handed to linear searches that may ask further k ahead of their
    lowest unsettled one: when a generation finishes and slots are free (up to ``limit`` in
    flight), that many waiting searches are woken, one slot each, those with the most k left
    first - the longest chains set the end of the stage, so they are started early and the
    engines do not drain to them. What is asked past K* is counted, not used.

    A slot is taken when it is granted, not when the request reaches the engine (a granted k
    is a task that sends its request on a later turn of the loop): counting only what the
    engine holds let every search woken in one turn see the same free slots, and bursts of
    thousands of requests queued on one engine while the others idled."""

    def __init__(self, backend: Any, per_engine: int | None, sharing: list[AsyncJobs] = ()):
        # ``per_engine`` slots on each engine (None: all its slots; 0: no look-ahead), and a
        # quarter more than the slots queued in the engines: a slot whose sequence finishes is
        # refilled in the same step, not after hinttune has heard of it (bench/engines.py: 78%
        # busy per engine on 4 x 256 with none queued, 82% with a quarter, 83% with half)
        slots = backend.slots
        wanted = slots if per_engine is None else min(per_engine * engine_count(backend), slots)
        self.backend, self.limit = backend, wanted * 5 // 4
        # other requests on the same engines take slots too: the instruct model's attempts,
        # and the judge's calls when the instruct model judges (the paper's setup)
        self.sharing = list(sharing)
        self.waiters: list[tuple[int, int, asyncio.Future]] = []  # (-k left, arrival, waiter)
        self.arrivals = count()
        self.open = 0  # searches not finished
        self.taken = 0  # probe requests granted and not yet generated
        self.promised = 0  # searches woken for a free slot that have not yet run

    def busy(self) -> int:
        return self.taken + sum(jobs.in_flight for jobs in self.sharing)

    def grant(self, running: int, n: int) -> "Slots | None":
        """Slots for one more k (``n`` requests) of a search with ``running`` k in flight, if
        any are idle: up to four times its even share of them (searches close at different
        times: an even share alone leaves the slots of those with fewer k left idle)."""
        return self.take(n) if self.wants(running) and self.busy() < self.limit else None

    def wants(self, running: int) -> bool:
        """Whether a search with ``running`` k in flight is under its window (and so waits
        for room: a slot handed to a search at its window would stay idle)."""
        return bool(self.limit) and running < max(4, -(-4 * self.limit // max(1, self.open)))

    def take(self, n: int) -> "Slots":
        self.taken += n
        return Slots(self, n)

    def room(self, left: int) -> asyncio.Future:
        """A future set when a slot is free for a search with ``left`` k still to ask."""
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, (-left, next(self.arrivals), waiter))
        return waiter

    def offer(self) -> None:
        """Wake a waiting search per free slot not already promised to one woken before it
        ran (several generations finishing in one turn of the loop would otherwise wake
        searches for the same slots, most of which find none and wait again)."""
        free = self.limit - self.busy() - self.promised
        while free > 0 and self.waiters:
            waiter = heapq.heappop(self.waiters)[2]
            if not waiter.done():
                waiter.set_result(None)
                self.promised += 1
                free -= 1

    def woken(self, room: asyncio.Future) -> None:
        """A search is done waiting on ``room``: a slot promised to it is its to take now."""
        if room.done() and not room.cancelled():
            self.promised -= 1
        else:
            room.cancel()


class Slots:
    """The slots one k's requests hold, freed once: when they are generated (their verdicts
    may still be on their way), or when the k is abandoned, before or after it started."""

    def __init__(self, ahead: LookAhead, n: int):
        self.ahead, self.n = ahead, n

    def free(self) -> None:
        if self.n:
            self.ahead.taken -= self.n
            self.n = 0
            self.ahead.offer()


class Probing:
    """The probe stage for one instruct model: ``search`` is one problem's search, a task of
    its own; it asks its search's next k, awaits the continuations and their verdicts,
    decides, and asks again, while the other problems' requests run beside it on the same
    engines. K* is each search strategy's own (the k are settled in the order the strategy
    asked them), whatever order results come back in and however many engines serve them.
    ``sharing``: other jobs on the instruct model's engines (its attempts)."""

    def __init__(self, setup: ProbeSetup, store: RunStore, grader: Grader, role: str,
                 bar: Any = None, sharing: list[AsyncJobs] = ()):
        self.setup, self.probe, self.store, self.grader, self.role = setup, setup.probe, store, grader, role
        self.spp = setup.probe.samples_per_prefix
        self.policy = setup.policy
        self.backend = setup.instruct.backend
        self.tries: dict[tuple[str, int], int] = {}  # a re-checked k gets fresh sample indices
        self.jobs = AsyncJobs(store, self.backend, STAGE, role, setup.seed, bar)
        judge = setup.judge
        self.judge_jobs = AsyncJobs(store, judge.backend, "grade", "judge:probe", setup.seed) if judge else None
        # the paper's judge is the instruct model: its calls share the probe engine's slots
        shares = judge is not None and judge.backend is self.backend
        self.ahead = LookAhead(self.backend, self.probe.fill_batch,
                               [*sharing, *([self.judge_jobs] if shares else [])])

    def close(self) -> None:
        self.jobs.close()
        if self.judge_jobs is not None:
            self.judge_jobs.close()

    async def search(self, target: ProbeTarget) -> ProbeOutcome:
        """One problem's search, from its first k to its K* (or to the end of its trace)."""
        outcome = ProbeOutcome(target.problem.id, len(target.episodes))
        search = make_search(self.probe.strategy, target.first_k, target.last_k, self.probe.verify)
        self.ahead.open += 1
        try:
            if isinstance(search, Linear) and self.ahead.limit:
                await self.linear(target, search, outcome)
            else:
                while not search.done:
                    ks = search.pending()
                    outcome.rounds += 1
                    for tried in await asyncio.gather(*(self.try_k(target, k) for k in ks)):
                        if not self.settle(search, outcome, tried):
                            break
        finally:
            self.ahead.open -= 1
        if outcome.incomplete is None:
            outcome.k_star = search.k_star
        return outcome

    async def linear(self, target: ProbeTarget, search: Linear, outcome: ProbeOutcome) -> None:
        """k = first, first+1, ... settled in order (linear's K*); while its lowest k runs, the
        search asks further k whenever the engines have idle slots."""
        running: dict[int, asyncio.Task] = {}
        next_k = search.first
        try:
            while True:
                while next_k <= search.last:
                    # a search's lowest k is always asked; further k only into idle slots
                    slots = self.ahead.grant(len(running), self.spp) if running else self.ahead.take(self.spp)
                    if slots is None:
                        break
                    task = running[next_k] = asyncio.ensure_future(self.try_k(target, next_k, slots))
                    task.add_done_callback(lambda _, slots=slots: slots.free())
                    outcome.rounds += 1
                    next_k += 1
                low = min(running)
                if next_k <= search.last and not running[low].done() and self.ahead.wants(len(running)):
                    # woken by room, or by k
                    room = self.ahead.room(search.last - next_k + 1)
                    try:
                        await asyncio.wait({running[low], room}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        self.ahead.woken(room)
                    if not running[low].done():
                        continue
                tried = await running.pop(low)
                search.expect(low)
                if not self.settle(search, outcome, tried) or search.done:
                    return
        finally:  # asked past K* (or past a failure): not needed
            outcome.ahead += len(running)
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def try_k(self, target: ProbeTarget, k: int, slots: Slots | None = None) -> Tried:
        """The samples_per_prefix continuations of P_k, generated and graded (``slots``: those
        the look-ahead granted them, freed when they are generated)."""
        pid = target.problem.id
        base = self.tries.get((pid, k), 0) * self.spp
        self.tries[(pid, k)] = self.tries.get((pid, k), 0) + 1
        request = probe_request(self.setup.instruct.cfg, self.probe, target, k)
        # plan rows are per (problem, k); the sample index picks the seed. Under the official
        # policy k = 0 is the bare prompt, which must be sampled afresh.
        salt = "probe" if request.continuation is None else ""
        jobs = [Job(f"{pid}#k{k}", base + j, request, salt=salt) for j in range(self.spp)]
        try:
            records = await asyncio.gather(*(self.jobs.run(job, pid) for job in jobs))
        finally:
            if slots is not None:
                slots.free()
        items = [self.item(target, rec) for rec in records if rec.status == "ok"]
        try:
            verdicts = await self.grader.agrade(items, "probe", self.judge_jobs, pid)
        finally:  # a judge call's slot
            if slots is not None:
                self.ahead.offer()
        tried = Tried(k, [])
        outcome_verdicts: list[bool | None] = []
        for j, rec in zip(range(base, base + self.spp), records):
            if rec.status != "ok":
                tried.incomplete = f"probe continuation k={k} {rec.failure}"
                return tried
            verdict = verdicts[f"{rec.key}/{pid}"]
            outcome_verdicts.append(verdict.correct)
            tried.attempts.append(ProbeAttempt(k, rec.key, rec.text or "", verdict,
                                               rec.completion_tokens, rec.prompt_tokens, j))
        tried.success = decide(self.probe, outcome_verdicts)
        if tried.success is None:  # an undecided grade that the success rule needs
            detail = next(a.verdict.detail for a in reversed(tried.attempts) if a.verdict.correct is None)
            tried.incomplete = f"grade of probe continuation k={k} undecided ({detail[:120]})"
        return tried

    def item(self, target: ProbeTarget, rec: Any) -> GradeItem:
        p = target.problem
        return GradeItem(f"{rec.key}/{p.id}", p.problem, p.gold_answer, self.policy.continuation_answer(rec.text or ""))

    @staticmethod
    def settle(search: Any, outcome: ProbeOutcome, tried: Tried) -> bool:
        """Record what k gave; False when the search cannot go on in this run (retried)."""
        outcome.attempts += tried.attempts
        if tried.incomplete is not None:
            outcome.incomplete = tried.incomplete
            search.done = True
            return False
        search.record(tried.k, bool(tried.success))
        return True


def run_probes(setup: ProbeSetup, store: RunStore, grader: Grader, targets: list[ProbeTarget],
               role: str = "instruct") -> dict[str, ProbeOutcome]:
    """Search every target's K* (stored and planned under ``role``): the dataset variants'
    searches (the first-correct self-probe); the run's own probes run in its per-problem
    pipeline."""
    if not targets:
        return {}

    async def every() -> list[ProbeOutcome]:
        with stage_progress(f"probe ({setup.probe.strategy}) · {role}", 0) as bar:
            probing = Probing(setup, store, grader, role, bar)
            probing.backend.token_hook = bar.live
            try:
                return await asyncio.gather(*(probing.search(t) for t in targets))
            finally:
                probing.backend.token_hook = None
                probing.close()

    outcomes = {o.problem_id: o for o in asyncio.run(every())}
    solved = sum(o.k_star is not None for o in outcomes.values())
    log.info("probing (%s, %s): %d problems, %d solved with a hint", setup.probe.strategy, role,
             len(targets), solved)
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
