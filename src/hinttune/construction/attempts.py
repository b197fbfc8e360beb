"""Stage 1, attempts: the think model and the instruct model each answer every problem
(``attempts.samples`` times), with no hint. The requests; ``per_problem.py`` runs them."""

from __future__ import annotations

from hinttune.core.backends.base import Request
from hinttune.core.config import ModelBase
from hinttune.core.generations import Job
from hinttune.core.problems import Problem

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


def attempt_jobs(model: ModelBase, problem: Problem, samples: int) -> list[Job]:
    """A model's ``samples`` attempts at one problem (sample 0 is what the states use)."""
    return [Job(problem.id, sample, attempt_request(model, problem), output_prefix=model.response_prefix)
            for sample in range(samples)]
