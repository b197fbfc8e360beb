"""Generate through a backend with the run store in between: compute each job's key, skip
what is already stored, send the rest, store each result as it completes. Every generating
stage goes through one path, ``AsyncJobs``: jobs awaited one by one by the tasks that need
them (a problem's attempts, a probe search's next continuation, a judge verdict); ``run_jobs``
runs a list of jobs through it (evaluation samples)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from hinttune.core.backends.base import Backend, Request, sampling_dict
from hinttune.core.progress import stage_progress
from hinttune.core.secrets import MASKED_COUNTER, mask_reply, redact, take_masked
from hinttune.core.store import GenerationRecord, RunStore, stable_hash

log = logging.getLogger(__name__)


@dataclass
class Job:
    problem_id: str
    sample: int
    request: Request
    output_prefix: str = ""  # stored in front of the generated text (a response prefix)
    # makes an identical request a different generation (the official scripts' k = 0 probe is
    # a fresh sample, not the instruct attempt again); empty for every other job
    salt: str = ""


def plan_keys(backend: Backend, jobs: list[Job], run_seed: int) -> list[str]:
    """Key every job by model, rendered prompt, sampling and sample index, and give it a
    seed derived from the same things: the same generation always has the same seed, so a
    resumed run asks for exactly what an uninterrupted one would have."""
    identity = backend.identity()
    keys = []
    for job in jobs:
        prompt = backend.prompt_text(job.request)
        params = sampling_dict(job.request.sampling)
        key = stable_hash(identity, prompt, params, job.sample, run_seed, *([job.salt] if job.salt else []))
        job.request.seed = int(key[:8], 16)
        job.request.sample = job.sample
        keys.append(key)
    return keys


def _request_summary(request: Request) -> dict[str, Any]:
    # The continuation (a hint prefix) can be long and is derivable from the trace: keep its size.
    return {"messages": request.messages, "template_kwargs": request.template_kwargs,
            "continuation_chars": len(request.continuation or ""), "seed": request.seed}


def run_jobs(store: RunStore, backend: Backend, stage: str, role: str, jobs: list[Job],
             run_seed: int, label: str | None = None) -> dict[tuple[str, int], GenerationRecord]:
    """Run ``jobs`` (resuming), then return their records by (problem_id, sample): the jobs
    become the plan of (stage, role), and every one not stored yet goes through ``AsyncJobs``
    at once (the one request path), each result stored as it comes back."""
    keys = plan_keys(backend, jobs, run_seed)
    store.set_plan(stage, role, [(j.problem_id, j.sample, k) for j, k in zip(jobs, keys)])
    done = store.done_keys(keys)
    todo: dict[str, Job] = {}
    for job, key in zip(jobs, keys):
        if key not in done:
            todo.setdefault(key, job)  # identical requests are generated once
    if done:
        log.info("%s/%s: %d of %d already done", stage, role, len(set(keys) & done), len(set(keys)))
    if todo:
        with stage_progress(label or f"{stage} · {role}", 0, transient=False) as bar:
            running = AsyncJobs(store, backend, stage, role, run_seed, bar, planned=True)
            backend.token_hook = bar.live

            async def every() -> None:
                await asyncio.gather(*(running.run(job, job.problem_id) for job in todo.values()))

            try:
                asyncio.run(every())
            finally:
                backend.token_hook = None
                running.close()
    found = store.records(keys)
    return {(j.problem_id, j.sample): found[k] for j, k in zip(jobs, keys) if k in found}


def _save_counts(store: RunStore, backend: Backend, stage: str, role: str) -> None:
    """Store and log the events (retries by cause) the backend counted during a call."""
    counts = {**backend.take_counts(), MASKED_COUNTER: take_masked()}
    if any(counts.values()):
        store.add_counts(counts)
        log.warning("%s/%s: %s", stage, role, ", ".join(f"{n} {what}" for what, n in counts.items() if n))


def generation_record(backend: Backend, stage: str, role: str, key: str, job: Job, gen: Any,
                      params: dict[str, Any]) -> GenerationRecord:
    return GenerationRecord(
        key=key, stage=stage, role=role, problem_id=job.problem_id, sample=job.sample,
        model=backend.cfg.model, request=_request_summary(job.request), params=params,
        # a failure's raw output and message may echo what was sent: no key reaches the store
        text=job.output_prefix + (redact(gen.text) if gen.failed else mask_reply(gen.text)),
        finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens, status="failed" if gen.failed else "ok",
        error=redact(gen.error))


def _log_failure(stage: str, role: str, job: Job, gen: Any) -> None:
    if gen.failed:
        log.warning("%s/%s problem %s sample %d failed: %s", stage, role, job.problem_id,
                    job.sample, gen.error)


class AsyncJobs:
    """Jobs awaited one by one by the tasks that need them (a probe search awaits its next
    continuation, a grade its judge reply): ``await jobs.run(job, affinity)`` answers from the
    store when the generation is there, else sends the request (an identical one already on
    its way is awaited, not sent twice) and stores the result when it comes back. Records and
    plan rows are written behind, in one transaction per turn of the event loop, so what comes
    back together is committed together and a kill loses only what was in flight."""

    def __init__(self, store: RunStore, backend: Backend, stage: str, role: str, run_seed: int,
                 bar: Any = None, planned: bool = False):
        self.store, self.backend, self.stage, self.role = store, backend, stage, role
        self.run_seed, self.bar = run_seed, bar
        self.planned = planned  # the caller wrote every job's plan row (and knows its key)
        self.sending: dict[str, asyncio.Future] = {}  # key -> the generation on its way

    async def run(self, job: Job, affinity: str | None = None) -> GenerationRecord:
        (key,) = plan_keys(self.backend, [job], self.run_seed)
        if not self.planned:  # plan rows only feed `hinttune status`
            self.store.defer(plan=(self.stage, self.role, [(job.problem_id, job.sample, key)]))
        if key in self.sending:
            twin = self.sending[key]
            try:
                record = await asyncio.shield(twin)
                return record if record.problem_id == job.problem_id else _as_job(record, job)
            except asyncio.CancelledError:
                if not twin.cancelled():
                    raise  # this job was cancelled itself
                # the twin was abandoned by its own search: this one still needs it, send it
        stored = self.store.get(key)
        if stored is not None and stored.done:
            return stored
        mine = self.sending[key] = asyncio.get_running_loop().create_future()
        if self.bar is not None:
            self.bar.grow(1)
        try:
            gen = (await self.backend.ask(job.request, affinity))[0]
        except BaseException:  # cancelled, or the backend broke (the stage stops): the twins too
            mine.cancel()
            if self.bar is not None:
                self.bar.grow(-1)  # not coming: the bar's total says what will
            raise
        finally:
            self.sending.pop(key, None)
        record = generation_record(self.backend, self.stage, self.role, key, job, gen,
                                   sampling_dict(job.request.sampling))
        _log_failure(self.stage, self.role, job, gen)
        if self.bar is not None:
            self.bar.advance(1, gen.completion_tokens or 0)
        self.store.defer([record])
        mine.set_result(record)
        return record

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self.sending)

    def close(self) -> None:
        self.store.flush()
        _save_counts(self.store, self.backend, self.stage, self.role)


def _as_job(record: GenerationRecord, job: Job) -> GenerationRecord:
    """The record of an identical request, as it reads for another job's problem."""
    from dataclasses import replace

    return replace(record, problem_id=job.problem_id, sample=job.sample)
