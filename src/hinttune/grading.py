"""Stage 2, grading: is an answer correct against the gold answer?

Three graders behind one call (``Grader.grade``):
- ``math``: Math-Verify, gold parsed first. It runs in worker processes with a hard timeout,
  because its own timeouts use ``signal.alarm`` (main thread only) and one pathological
  expression must not stall the run. An unparseable gold answer is *undecided*, not wrong.
- ``judge``: an LLM judge with the s1 grading prompt, temperature 0, 512 tokens, thinking off;
  the verdict is read from the reply's last line (or, as the official scripts do, from whether
  the reply ends with "yes"); an unreadable reply is undecided, with the raw text kept.
- ``hybrid`` (default): ``math`` where the gold answer is a short final answer and Math-Verify
  is decisive, ``judge`` otherwise.
Every verdict is stored with the grader that gave it; judge calls are cached like generations.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from hinttune.backends import BackendPool
from hinttune.backends.base import Request
from hinttune.config import GradingConfig, ModelBase, RunConfig, Sampling
from hinttune.errors import missing_extra
from hinttune.generations import Job, run_jobs
from hinttune.store import RunStore, stable_hash

log = logging.getLogger(__name__)

JUDGE_SYSTEM = (
    "You are an AI assistant for grading a science problem. The user will provide you with the "
    "question itself, an attempt made by a student and the correct answer to the problem. Your "
    "job is to judge whether the attempt is correct by comparing it with the correct answer. If "
    "the expected solution concludes with a number or choice, there should be no ambiguity. If "
    "the expected solution involves going through the entire reasoning process, you should judge "
    "the attempt based on whether the reasoning process is correct with correct answer if helpful."
    "\n\nThe user will provide the attempt and the correct answer in the following format:\n\n"
    "# Problem\n{problem}\n\n## Attempt\n{attempt}\n\n## Correct answer\n{solution}\n\n"
    "Explain your reasoning, and end your response on a new line with only \"Yes\" or \"No\" "
    "(without quotes).")
JUDGE_USER = "# Problem\n{problem}\n\n## Attempt\n{attempt}\n\n## Correct answer\n{solution}"


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: undecided
    grader: str  # "math", "judge", "no answer" (nothing to grade) or "ungraded"
    detail: str = ""


UNGRADED = Verdict(None, "ungraded")


@dataclass
class GradeItem:
    key: str  # what is graded (a generation key); verdicts are cached by it
    problem: str
    gold: str
    answer: str


# --- math -------------------------------------------------------------------------------

def is_short_gold(gold: str, limit: int) -> bool:
    return len(gold.strip()) <= limit and "\n" not in gold.strip()


def _math_check(gold: str, answer: str, short: bool) -> tuple[str, str, str | None]:
    """Runs in a worker process. Returns (status, detail, extracted answer); status is one of
    correct, wrong, no_answer, bad_gold."""
    from math_verify import parse, verify

    # we enforce timeouts ourselves (see MathVerifier); silence its warning that we do
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    if "\\" not in gold and re.search(r"[A-Za-z]{3,}", gold):
        # plain words ("yellow", "2 apples"): sympy would read them as products of symbols;
        # LaTeX text (\text{Evelyn}) is fine, Math-Verify compares it as a string
        return "bad_gold", "gold answer is text, not a mathematical expression", None
    if short:
        gold_parsed = (parse(f"\\boxed{{{gold}}}", fallback_mode="no_fallback", parsing_timeout=None)
                       or parse(gold, fallback_mode="no_fallback", parsing_timeout=None))
    elif "\\boxed" in gold:
        gold_parsed = parse(gold, fallback_mode="no_fallback", parsing_timeout=None)
    else:
        return "bad_gold", "gold is a worked solution with no final answer", None
    if not gold_parsed:
        return "bad_gold", "gold answer could not be parsed", None
    answer_parsed = parse(answer, parsing_timeout=None)
    if not answer_parsed:
        return "no_answer", "no answer found in the output", None
    ok = verify(gold_parsed, answer_parsed, timeout_seconds=None)
    extracted = str(answer_parsed[-1])
    return ("correct" if ok else "wrong"), f"gold {gold_parsed[-1]!s:.40} vs {extracted:.40}", extracted


class MathVerifier:
    """Math-Verify in a pool of worker processes; a check that runs past ``timeout`` seconds
    is abandoned (its worker killed) and reported as ``timeout``."""

    def __init__(self, timeout: int = 5, workers: int = 2, check: Any = _math_check):
        try:
            import math_verify  # noqa: F401
        except ImportError:
            raise missing_extra("math-verify", "grade") from None
        self.timeout, self.workers, self.check = timeout, workers, check
        self.pool: Any = None

    def _pool(self) -> Any:
        if self.pool is None:
            # spawn: fresh interpreters, safe beside a loaded model's threads. It re-imports
            # the main script, so a script read from stdin (no file) falls back to fork.
            main_file = getattr(sys.modules.get("__main__"), "__file__", None)
            method = "spawn" if main_file is None or os.path.exists(main_file) else "fork"
            self.pool = multiprocessing.get_context(method).Pool(self.workers)
        return self.pool

    def check_many(self, items: list[tuple[str, str, bool]]) -> list[tuple[str, str, str | None]]:
        """(status, detail, extracted answer) for each (gold, answer, gold is short)."""
        results: list[tuple[str, str, str | None]] = []
        # Waves of one task per worker, so a deadline measures a task's own running time.
        for start in range(0, len(items), self.workers):
            wave = items[start:start + self.workers]
            pool = self._pool()
            pending = [pool.apply_async(self.check, item) for item in wave]
            timed_out = False
            for handle in pending:
                try:
                    results.append(handle.get(timeout=self.timeout))
                except multiprocessing.TimeoutError:
                    results.append(("timeout", f"Math-Verify took over {self.timeout}s", None))
                    timed_out = True
                except Exception as exc:  # a crash inside sympy: undecided, not fatal
                    results.append(("error", f"{type(exc).__name__}: {exc}"[:200], None))
            if timed_out:  # the stuck worker cannot be interrupted: replace the pool
                self.close()
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


# --- judge ------------------------------------------------------------------------------

_VERDICT_LINE = re.compile(r"^\W*(?:final\s+)?(?:answer|verdict|grade)?\W*(yes|no)\W*$", re.I)


def parse_judge_reply(reply: str, rule: str = "last_line") -> bool | None:
    """``last_line``: the last non-empty line must say only Yes or No (markdown and
    punctuation allowed); anything else is undecided. ``endswith``: the official scripts'
    rule, correct iff the reply ends with "yes"."""
    from hinttune.reasoning import split_think

    text = split_think(reply).answer if "</think>" in reply else reply
    if rule == "endswith":
        return text.strip().lower().endswith("yes")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _VERDICT_LINE.match(lines[-1].strip())
    return match.group(1).lower() == "yes" if match else None


JUDGE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=512)


def judge_model(cfg: RunConfig) -> ModelBase:
    """The configured judge, or the instruct model as a judge (the paper's setup). Either
    way it samples greedily with 512 tokens and thinking off unless the judge config says
    otherwise."""
    judge = cfg.grading.judge
    if judge is None:
        return cfg.instruct.model_copy(update={
            "system_prompt": None, "prompt_template": "{problem}", "response_prefix": "",
            "chat_template_kwargs": {**cfg.instruct.chat_template_kwargs, "enable_thinking": False},
            "sampling": JUDGE_SAMPLING})
    update: dict[str, Any] = {}
    if "sampling" not in judge.model_fields_set:
        update["sampling"] = JUDGE_SAMPLING
    if "chat_template_kwargs" not in judge.model_fields_set:
        update["chat_template_kwargs"] = {"enable_thinking": False}
    return judge.model_copy(update=update)


def judge_request(judge: ModelBase, item: GradeItem) -> Request:
    messages = [{"role": "system", "content": judge.system_prompt or JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.format(
                    problem=item.problem.strip(), attempt=item.answer.strip(), solution=item.gold.strip())}]
    return Request(messages=messages, sampling=judge.sampling,
                   template_kwargs=dict(judge.chat_template_kwargs))


# --- the grader ---------------------------------------------------------------------------

class Grader:
    def __init__(self, cfg: RunConfig, store: RunStore, pool: BackendPool):
        self.cfg, self.store, self.pool = cfg, store, pool
        g: GradingConfig = cfg.grading
        self.kind = g.grader or ("judge" if cfg.official else "hybrid")
        self.rule = g.judge_rule or ("endswith" if cfg.official else "last_line")
        self.judge = judge_model(cfg)
        self.math: MathVerifier | None = None
        self.settings = {"kind": self.kind, "rule": self.rule, "short": g.short_gold_chars,
                         "judge": self.judge.model_dump(mode="json") if self.kind != "math" else None}

    def close(self) -> None:
        if self.math is not None:
            self.math.close()

    def grade(self, items: list[GradeItem], label: str = "grade") -> dict[str, Verdict]:
        """Verdicts by item key; cached in the store, so re-grading costs nothing."""
        keys = {item.key: stable_hash(item.key, item.gold, self.settings) for item in items}
        verdicts = {k: Verdict(*v) for k, v in self.store.grades(list(keys.values())).items()}
        out = {item.key: verdicts[keys[item.key]] for item in items if keys[item.key] in verdicts}
        todo = [item for item in items if item.key not in out]
        if not todo:
            return out
        to_judge = todo
        if self.kind in ("math", "hybrid"):
            to_judge = []
            limit = self.cfg.grading.short_gold_chars
            if self.math is None:
                self.math = MathVerifier(self.cfg.grading.math_timeout, self.cfg.grading.math_workers)
            checks = self.math.check_many([(i.gold, i.answer, is_short_gold(i.gold, limit)) for i in todo])
            for item, (status, detail, _) in zip(todo, checks):
                decisive = status in ("correct", "wrong") or (status == "no_answer" and self.kind == "math")
                if self.kind == "hybrid" and not (decisive and is_short_gold(item.gold, limit)):
                    to_judge.append(item)
                    continue
                verdict = Verdict(True if status == "correct" else False if decisive else None,
                                  "math", f"{status}: {detail}")
                out[item.key] = verdict
                if status != "timeout":  # a timeout may pass on a less loaded machine
                    self.store.put_grade(keys[item.key], item.key, verdict.correct, verdict.grader, verdict.detail)
        if to_judge:
            out.update(self._judge(to_judge, keys, label))
        return out

    def _judge(self, items: list[GradeItem], keys: dict[str, str], label: str) -> dict[str, Verdict]:
        jobs = [Job(item.key, 0, judge_request(self.judge, item)) for item in items]
        backend = self.pool.get(self.judge)
        # The judge's plan is keyed by the graded item, so each item has one plan row.
        replies = run_jobs(self.store, backend, "grade", f"judge:{label}", jobs, self.cfg.seed,
                           label=f"grade · judge ({label})")
        out = {}
        for item in items:
            rec = replies.get((item.key, 0))
            if rec is None or rec.status != "ok":
                out[item.key] = Verdict(None, "judge", "judge request failed: "
                                        + ((rec.error or "") if rec else "no reply"))
                continue  # not stored: the next run asks again
            correct = parse_judge_reply(rec.text or "", self.rule)
            verdict = Verdict(correct, "judge", (rec.text or "")[-300:] if correct is None
                              else ("yes" if correct else "no"))
            out[item.key] = verdict
            self.store.put_grade(keys[item.key], item.key, verdict.correct, verdict.grader, verdict.detail)
        return out
