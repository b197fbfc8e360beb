"""Generate through a backend with the run store in between: compute each job's key, skip
what is already stored, send the rest in one backend call, store each result as it
completes. Every generating stage (attempts, probes, judge calls) goes through here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hinttune.backends.base import Backend, Request, sampling_dict
from hinttune.progress import stage_progress
from hinttune.store import GenerationRecord, RunStore, stable_hash

log = logging.getLogger(__name__)


@dataclass
class Job:
    problem_id: str
    sample: int
    request: Request
    output_prefix: str = ""  # stored in front of the generated text (a response prefix)


def plan_keys(backend: Backend, jobs: list[Job], run_seed: int) -> list[str]:
    """Key every job by model, rendered prompt, sampling and sample index, and give it a
    seed derived from the same things: the same generation always has the same seed, so a
    resumed run asks for exactly what an uninterrupted one would have."""
    identity = backend.identity()
    keys = []
    for job in jobs:
        prompt = backend.prompt_text(job.request)
        params = sampling_dict(job.request.sampling)
        key = stable_hash(identity, prompt, params, job.sample, run_seed)
        job.request.seed = int(key[:8], 16)
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
        with stage_progress(label or f"{stage} · {role}", len(todo_jobs), transient=grow_plan) as bar:
            backend.token_hook = bar.live
            try:
                _generate_into(store, backend, stage, role, todo_keys, todo_jobs, params, bar)
            finally:
                backend.token_hook = None
                counts = backend.take_counts()
                if counts:
                    store.add_counts(counts)
                    log.warning("%s/%s: %s", stage, role,
                                ", ".join(f"{n} {what}" for what, n in counts.items()))
    found = store.records(keys)
    return {(j.problem_id, j.sample): found[k] for j, k in zip(jobs, keys) if k in found}


def _generate_into(store: RunStore, backend: Backend, stage: str, role: str, todo_keys: list[str],
                   todo_jobs: list[Job], params: list[dict[str, Any]], bar: Any) -> None:
    model = backend.cfg.model
    for index, gens in backend.generate([j.request for j in todo_jobs]):
        job, gen = todo_jobs[index], gens[0]
        store.put(GenerationRecord(
            key=todo_keys[index], stage=stage, role=role, problem_id=job.problem_id,
            sample=job.sample, model=model, request=_request_summary(job.request),
            params=params[index], text=job.output_prefix + gen.text, finish_reason=gen.finish_reason,
            prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
            status="failed" if gen.failed else "ok", error=gen.error))
        if gen.failed:
            log.warning("%s/%s problem %s sample %d failed: %s", stage, role,
                        job.problem_id, job.sample, gen.error)
        bar.advance(1, gen.completion_tokens or 0)
