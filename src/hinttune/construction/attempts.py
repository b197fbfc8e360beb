"""Stage 1, attempts: the think model and the instruct model each answer every problem
(``attempts.samples`` times), with no hint."""

from __future__ import annotations

from hinttune.core.backends import BackendPool
from hinttune.core.backends.base import Request
from hinttune.core.config import ModelBase, RunConfig
from hinttune.core.generations import Job, run_jobs
from hinttune.core.problems import Problem
from hinttune.core.store import GenerationRecord, RunStore

ROLES = ("think", "instruct")
STAGE = "attempts"


def problem_messages(model: ModelBase, problem: Problem) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": model.system_prompt}] if model.system_prompt else []
    user = model.prompt_template.replace("{problem}", problem.problem)
    return messages + [{"role": "user", "content": user}]


def attempt_request(model: ModelBase, problem: Problem) -> Request:
    return Request(messages=problem_messages(model, problem), sampling=model.sampling,
                   continuation=model.response_prefix or None,
                   template_kwargs=dict(model.chat_template_kwargs))


def run_attempts(cfg: RunConfig, store: RunStore, problems: list[Problem], pool: BackendPool,
                 roles: dict[str, ModelBase] | None = None) -> dict[str, dict[tuple[str, int], GenerationRecord]]:
    """Every role's attempts (default: the think and the instruct model), by role."""
    results = {}
    for role, model in (roles or {"think": cfg.think, "instruct": cfg.instruct}).items():
        jobs = [Job(p.id, sample, attempt_request(model, p), output_prefix=model.response_prefix)
                for p in problems for sample in range(cfg.attempts.samples)]
        results[role] = run_jobs(store, pool.get(model), STAGE, role, jobs, cfg.seed,
                                 label=f"attempts · {role} model")
    return results
