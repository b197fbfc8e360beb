"""Generate through a backend with the run store in between: compute each job's key, skip
what is already stored, send the rest in one backend call, store each result as it
completes. Every generating stage (attempts, probes, judge calls) goes through here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hinttune.core.backends.base import WAIT, Backend, Request, sampling_dict
from hinttune.core.backends.feed import Feed
from hinttune.core.progress import stage_progress
from hinttune.core.secrets import redact
from hinttune.core.store import GenerationRecord, RunStore, stable_hash

log = logging.getLogger(__name__)
COMMIT_GROUP = 256  # results held for one transaction at most (a kill loses at most these)


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
             run_seed: int, label: str | None = None,
             grow_plan: bool = False) -> dict[tuple[str, int], GenerationRecord]:
    """Run ``jobs`` (resuming), then return their records by (problem_id, sample).

    The jobs become the plan of (stage, role) - or are added to it with ``grow_plan``, for
    stages that plan round by round."""
    keys = plan_keys(backend, jobs, run_seed)
    rows = [(j.problem_id, j.sample, k) for j, k in zip(jobs, keys)]
    (store.add_plan if grow_plan else store.set_plan)(stage, role, rows)
    done = store.done_keys(keys)
    todo: dict[str, Job] = {}
    for job, key in zip(jobs, keys):
        if key not in done:
            todo.setdefault(key, job)  # identical requests are generated once
    if done:
        log.info("%s/%s: %d of %d already done", stage, role, len(set(keys) & done), len(set(keys)))
    if todo:
        todo_keys, todo_jobs = list(todo), list(todo.values())
        params = [sampling_dict(j.request.sampling) for j in todo_jobs]
        # growing plans run in many short rounds: their bars vanish when done
        requests = [j.request for j in todo_jobs]
        # a streaming backend says when it would wait: what came back until then is committed
        # together; from any other, each result is committed as it comes
        streams = getattr(backend, "streams", False)
        results = backend.stream(Feed(requests, closed=True)) if streams else backend.generate(requests)
        held: list[GenerationRecord] = []
        with stage_progress(label or f"{stage} · {role}", len(todo_jobs), transient=grow_plan) as bar:
            backend.token_hook = bar.live
            try:
                for item in results:
                    if item is not WAIT:
                        index, gens = item
                        held.append(generation_record(backend, stage, role, todo_keys[index],
                                                      todo_jobs[index], gens[0], params[index]))
                        _log_failure(stage, role, todo_jobs[index], gens[0])
                        bar.advance(1, gens[0].completion_tokens or 0)
                    if held and (item is WAIT or not streams or len(held) >= COMMIT_GROUP):
                        store.put_many(held)
                        held = []
            finally:
                if held:  # an error or a kill between results: what came back is kept
                    store.put_many(held)
                backend.token_hook = None
                _save_counts(store, backend, stage, role)
    found = store.records(keys)
    return {(j.problem_id, j.sample): found[k] for j, k in zip(jobs, keys) if k in found}


def _save_counts(store: RunStore, backend: Backend, stage: str, role: str) -> None:
    """Store and log the events (retries by cause) the backend counted during a call."""
    counts = backend.take_counts()
    if counts:
        store.add_counts(counts)
        log.warning("%s/%s: %s", stage, role, ", ".join(f"{n} {what}" for what, n in counts.items()))


def generation_record(backend: Backend, stage: str, role: str, key: str, job: Job, gen: Any,
                      params: dict[str, Any]) -> GenerationRecord:
    return GenerationRecord(
        key=key, stage=stage, role=role, problem_id=job.problem_id, sample=job.sample,
        model=backend.cfg.model, request=_request_summary(job.request), params=params,
        # a failure's raw output and message may echo what was sent: no key reaches the store
        text=job.output_prefix + (redact(gen.text) if gen.failed else gen.text),
        finish_reason=gen.finish_reason, prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens, status="failed" if gen.failed else "ok",
        error=redact(gen.error))


def _log_failure(stage: str, role: str, job: Job, gen: Any) -> None:
    if gen.failed:
        log.warning("%s/%s problem %s sample %d failed: %s", stage, role, job.problem_id,
                    job.sample, gen.error)


def store_generation(store: RunStore, backend: Backend, stage: str, role: str, key: str, job: Job,
                     gen: Any, params: dict[str, Any]) -> GenerationRecord:
    """Commit one finished generation (a failed one with its error and raw output)."""
    record = generation_record(backend, stage, role, key, job, gen, params)
    store.put(record)
    _log_failure(stage, role, job, gen)
    return record


class JobStream:
    """Jobs that keep arriving while others generate (continuous probing): ``put`` a job at
    any time - also from inside ``on_results`` - and ``run`` calls ``on_results([(job,
    record), ...])`` with the jobs whose generations were stored since the last call. Results
    are held back until the backend says it would wait (``WAIT``) or ``batch`` of them are in,
    then stored in one transaction and handed over together, so the caller can grade them in
    one call; a kill loses at most that uncommitted group, never a record that was handed
    over. A job whose generation is already in the store is answered from it without asking
    the backend; identical requests are generated once. ``run`` returns when nothing is
    queued or in flight after the last callback."""

    def __init__(self, store: RunStore, backend: Backend, stage: str, role: str, run_seed: int,
                 label: str, batch: int = COMMIT_GROUP):
        from collections import deque

        self.store, self.backend, self.stage, self.role = store, backend, stage, role
        self.run_seed, self.label, self.batch = run_seed, label, batch
        self.feed = Feed()
        self.waiting: dict[str, list[Job]] = {}  # key -> jobs waiting for its generation
        self.by_index: dict[int, tuple[str, Job]] = {}
        self.ready: Any = deque()  # (job, record) answered from the store
        self.bar: Any = None
        self.plan_rows: list[tuple[str, int, str]] = []

    def _flush_plan(self) -> None:
        if self.plan_rows:
            self.store.add_plan(self.stage, self.role, self.plan_rows)
            self.plan_rows = []

    def put(self, job: Job) -> None:
        (key,) = plan_keys(self.backend, [job], self.run_seed)
        # plan rows only feed `hinttune status`: written in batches, not one transaction each
        self.plan_rows.append((job.problem_id, job.sample, key))
        if key in self.waiting:  # the same request is already on its way
            self.waiting[key].append(job)
            return
        stored = self.store.get(key)
        if stored is not None and stored.done:
            self.ready.append((job, stored))
            return
        self.waiting[key] = [job]
        self.by_index[self.feed.put(job.request)] = (key, job)
        if self.bar is not None:
            self.bar.grow(1)

    def _store(self, held: list[tuple[str, Job, Any]]) -> list[tuple[Job, GenerationRecord]]:
        """Commit held generations in one transaction; their waiting jobs with the records."""
        records = [generation_record(self.backend, self.stage, self.role, key, job, gen,
                                     sampling_dict(job.request.sampling)) for key, job, gen in held]
        self.store.put_many(records)
        out = []
        for (key, job, gen), record in zip(held, records):
            _log_failure(self.stage, self.role, job, gen)
            out += [(waiting_job, record) for waiting_job in self.waiting.pop(key)]
        return out

    def run(self, on_results: Any) -> None:
        stream, held = None, []
        with stage_progress(self.label, len(self.feed), transient=False) as bar:
            self.bar = bar
            self.backend.token_hook = bar.live
            try:
                while True:
                    # hand over what is held when the backend would wait, a batch is full, or
                    # every request of ours has come back (nothing else can arrive)
                    if held and (len(held) >= self.batch or len(held) == len(self.waiting)):
                        self.ready.extend(self._store(held))
                        held = []
                    if self.ready:
                        results = list(self.ready)
                        self.ready.clear()
                        on_results(results)
                        continue
                    self._flush_plan()
                    if not self.waiting:
                        break  # nothing queued, nothing in flight: every search has settled
                    if stream is None:
                        stream = self.backend.stream(self.feed)
                    item = next(stream)
                    if item is WAIT:
                        if held:
                            self.ready.extend(self._store(held))
                            held = []
                        continue
                    index, gens = item
                    key, job = self.by_index.pop(index)
                    held.append((key, job, gens[0]))
                    bar.advance(1, gens[0].completion_tokens or 0)
            finally:
                if held:  # an error while handing over: what came back is kept
                    self._store(held)
                self._flush_plan()
                self.backend.token_hook = None
                self.bar = None
                self.feed.close()
                if stream is not None:
                    stream.close()  # nothing of ours stays in the engine
                _save_counts(self.store, self.backend, self.stage, self.role)
