"""Stages 1-4 as one pipeline per problem: each problem is a coroutine that asks for its think
and instruct attempts, grades them, segments the think trace and searches its K*, each step
the moment its own inputs exist - while every other problem's coroutine does the same on the
same engines. Both models are loaded at once (see ``BackendPool``), so the instruct model
probes the problems whose think traces are done while the think model still writes the
others': no stage waits for the slowest request of the stage before it.

Every generation and verdict is stored as it completes (``AsyncJobs``), so a kill loses only
what was in flight; the outcome of each problem depends only on its own stored results, so the
same results give the same dataset whatever order they came back in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from hinttune.construction.attempts import attempt_jobs
from hinttune.construction.policy import Policy
from hinttune.construction.probe import memo as probe_memo
from hinttune.construction.probe.search import ProbeOutcome, ProbeSetup, ProbeTarget, Probing
from hinttune.construction.result import RunResult
from hinttune.core.backends import Model
from hinttune.core.config import RunConfig, SegmentConfig
from hinttune.core.generations import AsyncJobs, Job, plan_keys
from hinttune.core.grading import UNGRADED, GradeItem, Grader, Verdict
from hinttune.core.problems import Problem
from hinttune.core.progress import StageProgress, stages_progress
from hinttune.core.store import GenerationRecord, RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """The parts of the run's config the pipeline reads."""
    samples: int  # attempts per model and problem
    seed: int
    segment: SegmentConfig
    policy: Policy

    @classmethod
    def of(cls, cfg: RunConfig) -> "Settings":
        return cls(cfg.attempts.samples, cfg.seed, cfg.segment, Policy.of(cfg))


@dataclass
class Side:
    """One instruct model's part of the run: its attempts, its grader, its probe search (the
    run's instruct model, and each further probe of ``instruct: [a, b, ...]``)."""
    name: str
    role: str  # attempts and probes are stored under it
    setup: ProbeSetup  # its model, its judge, the probe settings
    grader: Grader
    result: RunResult
    jobs: dict[str, list[Job]] = field(default_factory=dict)  # its attempts, planned, by problem
    attempts: AsyncJobs | None = None
    judge: dict[str, AsyncJobs] = field(default_factory=dict)  # judge calls by what they grade
    probing: Probing | None = None
    memo: probe_memo.Memo | None = None


STAGES = ("attempts", "grade", "segment", "probe")


class PerProblem:
    """The run's stages up to ``STAGES[stop]`` for every problem, one coroutine each."""

    def __init__(self, settings: Settings, think: Model, sides: list[Side], store: RunStore,
                 stop: int, tokenizer: Any):
        self.settings, self.think_model, self.sides = settings, think, sides
        self.store, self.stop, self.tokenizer = store, stop, tokenizer
        self.main = sides[0]
        self.segments: dict[str, asyncio.Future] = {}

    def run(self, problems: list[Problem]) -> None:
        asyncio.run(self._run(problems))
        self.store.flush()

    async def _run(self, problems: list[Problem]) -> None:
        labels = ["attempts · think model"] + [f"attempts · {s.name}" for s in self.sides]
        if self.upto("probe"):
            labels += [f"probe · {s.name}" for s in self.sides]
        think = self.think_model
        # every attempt's key up front: `hinttune status` knows the whole plan from the start
        self.think_jobs = self._planned(think, "think", problems)
        for side in self.sides:
            side.jobs = self._planned(side.setup.instruct, side.role, problems)
        with stages_progress(labels) as bars:
            self.think = AsyncJobs(self.store, think.backend, "attempts", "think", self.settings.seed,
                                   bars[labels[0]], planned=True)
            for side in self.sides:
                self._open(side, bars)
            try:
                # the think attempts, the longest requests of the run, reach the engines first
                thinks = {p.id: asyncio.ensure_future(self.attempts(
                    self.think, self.think_jobs[p.id], "think", self.main.result)) for p in problems}
                await asyncio.gather(*(self.problem(p, thinks[p.id]) for p in problems))
            finally:
                self._close()

    def _planned(self, model: Model, role: str, problems: list[Problem]) -> dict[str, list[Job]]:
        jobs = {p.id: attempt_jobs(model.cfg, p, self.settings.samples) for p in problems}
        every = [job for group in jobs.values() for job in group]
        keys = plan_keys(model.backend, every, self.settings.seed)
        self.store.set_plan("attempts", role, [(j.problem_id, j.sample, k) for j, k in zip(every, keys)])
        return jobs

    def _open(self, side: Side, bars: dict[str, StageProgress]) -> None:
        store, seed, setup = self.store, self.settings.seed, side.setup
        backend = setup.instruct.backend
        side.attempts = AsyncJobs(store, backend, "attempts", side.role, seed, bars[f"attempts · {side.name}"],
                                  planned=True)
        side.judge = {what: AsyncJobs(store, setup.judge.backend, "grade", f"judge:{what}", seed)
                      for what in ("attempts:think", "attempts:instruct")} if setup.judge else {}
        if self.upto("probe"):
            bar = bars[f"probe · {side.name}"]
            # what else runs on the instruct engines takes their slots: its attempts, and the
            # think model's where one engine plays both roles (the demo)
            same = self.think_model.backend is backend
            side.probing = Probing(setup, store, side.grader, side.role, bar,
                                   sharing=[side.attempts, *([self.think] if same else [])])
            side.memo = probe_memo.Memo(store, side.role, probe_memo.common(setup, side.grader))
        backend.token_hook = bars[f"attempts · {side.name}"].live
        self.think_model.backend.token_hook = bars["attempts · think model"].live

    def _close(self) -> None:
        self.think_model.backend.token_hook = None
        self.think.close()
        for side in self.sides:
            side.setup.instruct.backend.token_hook = None
            for jobs in [side.attempts, *side.judge.values()]:
                if jobs is not None:
                    jobs.close()
            if side.probing is not None:
                side.probing.close()

    # --- one problem ----------------------------------------------------------------------
    def upto(self, stage: str) -> bool:
        return STAGES.index(stage) <= self.stop

    async def problem(self, p: Problem, think: "asyncio.Future[GenerationRecord | None]") -> None:
        """attempts -> grade -> segment -> probe, for the think model and every instruct model
        (``think``: its think attempts, already asked)."""
        graded = asyncio.ensure_future(self.think_verdict(p, think)) if self.upto("grade") else None
        await asyncio.gather(think, *(self.instruct_side(side, p, think, graded) for side in self.sides))
        if graded is not None:
            await graded

    async def attempts(self, jobs: AsyncJobs, planned: list[Job], role: str,
                       result: RunResult) -> GenerationRecord | None:
        """Every sample of one model's attempt, recorded in ``result``; returns sample 0 (what
        the states are built from)."""
        records = await asyncio.gather(*(jobs.run(job, job.problem_id) for job in planned))
        for job, rec in zip(planned, records):
            result.attempts[role][(job.problem_id, job.sample)] = rec
        return records[0] if records else None

    async def think_verdict(self, p: Problem, think: "asyncio.Future") -> Verdict:
        """The think attempt is graded once, by the run's grader, for every instruct model."""
        verdict = await self.grade(self.main, p, await think, "think")
        if verdict is not None:
            self.main.result.verdicts["think"][p.id] = verdict
        return verdict or UNGRADED

    async def instruct_side(self, side: Side, p: Problem, think: "asyncio.Future",
                            think_graded: "asyncio.Future | None") -> None:
        instruct = await self.attempts(side.attempts, side.jobs[p.id], "instruct", side.result)
        if think_graded is None:
            return
        # graded while the think model may still be writing
        verdict = await self.grade(side, p, instruct, "instruct")
        if verdict is not None:
            side.result.verdicts["instruct"][p.id] = verdict
        think_record, think_verdict = await think, await asyncio.shield(think_graded)
        if not self.upto("segment") or think_record is None or think_record.status != "ok":
            return
        episodes = side.result.episodes[p.id] = await self.segmented(p.id, think_record.text or "")
        if not self.upto("probe"):
            return
        target = probe_target(self.settings.policy, p, episodes, think_verdict, verdict or UNGRADED)
        if target is not None:
            side.result.probes[p.id] = await self.probe(side, target)

    async def grade(self, side: Side, p: Problem, rec: GenerationRecord | None, role: str) -> Verdict | None:
        """The verdict on sample 0 of a model's attempt (a failed or missing one has none)."""
        if rec is None or rec.status != "ok":
            return None
        text = self.settings.policy.attempt_answer(role, rec.text or "")
        if isinstance(text, Verdict):  # nothing to grade
            return text
        # keyed by generation and problem: twin problems can share one generation
        item = GradeItem(f"{rec.key}/{p.id}", p.problem, p.gold_answer, text)
        side.result.graded.append((p.id, item))
        found = await side.grader.agrade([item], f"attempts:{role}", side.judge.get(f"attempts:{role}"), p.id)
        return found[item.key]

    async def segmented(self, pid: str, text: str) -> list[str]:
        """The think trace's episodes, cut once for every instruct model (off the event loop:
        windows count tokens)."""
        if pid not in self.segments:
            self.segments[pid] = asyncio.ensure_future(asyncio.to_thread(
                self.settings.policy.episodes, text, self.settings.segment, self.tokenizer))
        return await asyncio.shield(self.segments[pid])

    async def probe(self, side: Side, target: ProbeTarget) -> ProbeOutcome:
        """The K* search, or its outcome as an earlier run with the same inputs found it."""
        assert side.memo is not None and side.probing is not None
        known = side.memo.recall(target)
        if known is not None:
            return known
        outcome = await side.probing.search(target)
        side.memo.remember(target, outcome)
        return outcome


def probe_target(policy: Policy, p: Problem, episodes: list[str], think: Verdict,
                 instruct: Verdict) -> ProbeTarget | None:
    """What the probe searches for this problem, or None when it is not probed."""
    found = policy.probe_range(episodes, think, instruct)
    return None if found is None else ProbeTarget(p, episodes, *found)
