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

import asyncio
import hashlib
import importlib.util
import logging
import multiprocessing
import os
import re
import queue
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from hinttune.core.grading.answers import choice_letter, is_choice, is_text, last_boxed, normalized_text, stated_answer
from hinttune.core.backends import BackendPool
from hinttune.core.backends.base import Request
from hinttune.core.config import JUDGE_SAMPLING, PLACEMENT, GradingConfig, ModelBase, RunConfig
from hinttune.core.errors import HinttuneError, missing_extra
from hinttune.core.generations import AsyncJobs, Job
from hinttune.core.store import RunStore, canonical_json, hash_of_json

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
# The official scripts' bytes of the same prompt: single newlines, the placeholders left in the
# system message, and the fields not stripped (``--policy official``).
OFFICIAL_JUDGE_SYSTEM = JUDGE_SYSTEM.replace("\n\n", "\n")
OFFICIAL_JUDGE_USER = JUDGE_USER.replace("\n\n", "\n")


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


# Part of every math verdict's cache key: bump it when the extraction rules change, so stored
# verdicts made by older rules are graded again instead of reused.
MATH_RULES = 4
# A verdict's detail starts with this when the answer was read from a reply with no clear final
# statement (answers.py): ``hybrid`` asks the judge about it instead.
UNSURE = "unsure"


def _math_check(gold: str, answer: str, short: bool) -> tuple[str, str, str | None]:
    """Runs in a worker process. Returns (status, detail, extracted answer); status is one of
    correct, wrong, no_answer, bad_gold. How the reply is read depends on the gold: a choice
    letter against a letter, a relation against an interval or a relation, words against
    words; everything else is Math-Verify's comparison of the stated (or boxed) answer."""
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
    boxed = last_boxed(answer)
    stated = None if boxed is not None else stated_answer(answer)
    final = boxed if boxed is not None else stated.sentence  # where a letter or words are read
    if short and is_choice(gold):
        letter, said = choice_letter(gold), choice_letter(final)
        if said:  # "(C)", "(C) 12", "choice C": the letter decides
            return ("correct" if said == letter else "wrong"), f"choice {letter} vs {said}", said
    answer_parsed, doubt, whole = None, "", None
    if stated is not None:  # a boxed answer is Math-Verify's own case
        doubt = stated.why if not stated.sure else ""
        # "x \geq 5" against [5, \infty); a plane's equation against an equation (not a point
        # "(-1,6)" that Math-Verify reads as an open interval)
        whole = stated.relation or (stated.equation if _is_equation(gold_parsed[0]) else None)
        if whole and _is_set_or_relation(gold_parsed[0]):
            answer_parsed = parse(whole, parsing_timeout=None)
        for candidate in [] if answer_parsed else stated.candidates:
            answer_parsed = parse(candidate, parsing_timeout=None)
            if answer_parsed:
                break
        if stated.relation and not _is_set_or_relation(gold_parsed[0]):
            doubt = doubt or "an inequality stated against a value"
        if not answer_parsed:
            doubt = doubt or "no stated answer Math-Verify can read"
    if not answer_parsed:
        answer_parsed = parse(answer, parsing_timeout=None)
    if stated is not None and len(stated.candidates) > 1 and _is_list(gold_parsed[0]):
        # "The terms are 21, 16, 11." against {21, 16, 11}: the values the sentence lists
        listed = parse("$" + ", ".join(c.strip("$") for c in stated.candidates[:len(gold_parsed[0].args)]) + "$",
                       parsing_timeout=None)
        if listed and verify(gold_parsed, listed, timeout_seconds=None):
            answer_parsed, doubt = listed, ""
    text_gold = short and is_text(gold)
    if text_gold:
        said = boxed if boxed is not None else (stated.candidates[0] if stated.candidates else "")
        words = normalized_text(gold)
        if said and normalized_text(said) == words:
            return "correct", f"text {words!r}", said
        if not said and words and f" {words} " in f" {normalized_text(final)} ":
            return "correct", f"{UNSURE} (the text gold is in the final sentence): {words!r}", said
    if not answer_parsed:
        if text_gold:  # "So there is no real solution." against \text{no solution}: the judge reads it
            return "wrong", f"{UNSURE} (words against a text gold): gold {gold:.40}", None
        return "no_answer", "no answer found in the output", None
    ok = verify(gold_parsed, answer_parsed, timeout_seconds=None,
                allow_set_relation_comp=bool(stated and (stated.relation or stated.equation)))
    extracted = str(answer_parsed[-1])
    if text_gold and not ok:
        doubt = doubt or "a text answer in other words than the gold"
    detail = f"gold {gold_parsed[-1]!s:.40} vs {extracted:.40}"
    return ("correct" if ok else "wrong"), (f"{UNSURE} ({doubt}): {detail}" if doubt else detail), extracted


def _is_list(value: Any) -> bool:
    import sympy

    return isinstance(value, (sympy.FiniteSet, sympy.Tuple)) and len(value.args) > 1


def _is_equation(value: Any) -> bool:
    import sympy

    return isinstance(value, (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction))


def _is_set_or_relation(value: Any) -> bool:
    import sympy

    return isinstance(value, sympy.Set) or _is_equation(value)


def _worker_main(conn: Any, check: Any) -> None:
    """A grading worker: import Math-Verify once, say so, then check items until told to stop."""
    from hinttune.core.processes import die_with_parent

    die_with_parent()  # a check stuck on a hostile expression must not outlive the run
    try:
        import math_verify  # noqa: F401  (the slow import happens before the first deadline)

        logging.getLogger("math_verify").setLevel(logging.ERROR)
    except Exception as exc:  # reported by the parent as a start-up failure
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        try:
            result = check(*item)
        except Exception as exc:  # a crash inside sympy: undecided, not fatal
            result = ("error", f"{type(exc).__name__}: {exc}"[:200], None)
        conn.send(("done", result))


class _Worker:
    def __init__(self, ctx: Any, check: Any):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, check), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.task: int | None = None  # index of the item it is checking
        self.deadline = 0.0
        self.started = time.monotonic()

    def stop(self, kill: bool = False) -> None:
        try:
            if not kill and self.process.is_alive():
                self.conn.send(None)
                self.process.join(2)
        except (OSError, ValueError):
            pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class MathVerifier:
    """Math-Verify in worker processes fed continuously: ``submit`` queues a check and returns a
    future at once; a dispatcher thread gives each idle worker the next check the moment it is
    free, and resolves each future as its result comes back. A check that runs past
    ``timeout`` seconds (counted from when its worker started it, never including start-up)
    is reported as ``timeout`` and only that worker is replaced."""

    STARTUP_TIMEOUT = 180.0  # importing sympy on a loaded machine can take a while

    def __init__(self, timeout: float = 5, workers: int = 2, check: Any = _math_check):
        if importlib.util.find_spec("math_verify") is None:  # no import: the workers do that
            raise missing_extra("math-verify", "grade")
        self.timeout, self.size, self.check = timeout, workers, check
        self.workers: list[_Worker] = []
        self.timeouts = 0
        self._ctx: Any = None
        self._inbox: "queue.SimpleQueue[tuple[Any, Future] | None]" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._broken: BaseException | None = None
        self._lock = threading.Lock()
        self.in_flight = 0  # checks submitted and not answered yet

    def _context(self) -> Any:
        if self._ctx is None:
            # spawn: fresh interpreters, safe beside a loaded model's threads. It re-imports
            # the main script, so a script read from stdin (no file) falls back to fork.
            main_file = getattr(sys.modules.get("__main__"), "__file__", None)
            method = "spawn" if main_file is None or os.path.exists(main_file) else "fork"
            self._ctx = multiprocessing.get_context(method)
        return self._ctx

    def _startup_failed(self, why: str) -> HinttuneError:
        return HinttuneError(
            f"the Math-Verify worker processes could not start ({why}). If hinttune is called "
            "from your own script, put the script's code under `if __name__ == \"__main__\":` "
            "(worker processes re-import the main script); otherwise check that "
            "`python -c 'import math_verify'` works.")

    def submit(self, item: tuple[str, str, bool]) -> "Future[tuple[str, str, str | None]]":
        """(status, detail, extracted answer) of a (gold, answer, gold is short) check."""
        future: Future = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(self._broken)
                return future
            if self._thread is None:
                self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
                self._thread = threading.Thread(target=self._serve, daemon=True, name="hinttune-math")
                self._thread.start()
            self.in_flight += 1
        future.add_done_callback(self._answered)
        self._inbox.put((item, future))
        self._wake_w.send_bytes(b".")
        return future

    def _answered(self, _: Future) -> None:
        with self._lock:
            self.in_flight -= 1

    def check_many(self, items: list[tuple[str, str, bool]]) -> list[tuple[str, str, str | None]]:
        """(status, detail, extracted answer) for each (gold, answer, gold is short)."""
        return [future.result() for future in [self.submit(item) for item in items]]

    def _serve(self) -> None:
        from multiprocessing.connection import wait

        waiting: deque = deque()
        tasks: dict[int, Future] = {}  # id(worker) -> the future of the check it runs
        try:
            while len(self.workers) < self.size:
                self.workers.append(_Worker(self._context(), self.check))
            while True:
                while not self._inbox.empty():
                    entry = self._inbox.get()
                    if entry is None:
                        return
                    waiting.append(entry)
                now = time.monotonic()
                for worker in self.workers:
                    while worker.ready and worker.task is None and waiting:
                        item, future = waiting.popleft()
                        if not future.set_running_or_notify_cancel():
                            continue
                        worker.task, worker.deadline = 0, now + self.timeout
                        tasks[id(worker)] = future
                        worker.conn.send(item)
                waits = [w.deadline - now for w in self.workers if w.task is not None]
                waits += [w.started + self.STARTUP_TIMEOUT - now for w in self.workers if not w.ready]
                handles = [self._wake_r] + [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
                ready = wait(handles, timeout=max(0.0, min(waits)) if waits else None)
                if self._wake_r in ready:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                self._collect(ready, tasks)
        except BaseException as exc:  # could not start the workers: every check is told why
            self._broken = exc
            for future in [*tasks.values(), *(f for _, f in waiting)]:
                if not future.done():
                    future.set_exception(exc)
            while not self._inbox.empty():
                entry = self._inbox.get()
                if entry is not None and not entry[1].done():
                    entry[1].set_exception(exc)

    def _collect(self, ready: list[Any], tasks: dict[int, Future]) -> None:
        """Results of the workers that answered; a worker past its deadline, or dead, is
        replaced (the stuck one alone: the others keep working)."""
        now = time.monotonic()
        for worker in list(self.workers):
            died = worker.process.sentinel in ready and not worker.conn.poll()
            if worker.conn in ready and worker.conn.poll():
                try:
                    kind, payload = worker.conn.recv()
                except (EOFError, OSError):  # its end closed: the process is gone
                    kind, payload, died = "died", None, True
                    worker.process.join(5)
                if kind == "ready":
                    worker.ready = True
                elif kind == "failed":
                    raise self._startup_failed(payload)
                elif kind == "done" and worker.task is not None:
                    worker.task = None
                    tasks.pop(id(worker)).set_result(payload)
                if not died:
                    continue
            if died or (worker.task is not None and now >= worker.deadline) or (
                    not worker.ready and now >= worker.started + self.STARTUP_TIMEOUT):
                if not worker.ready:
                    code = worker.process.exitcode
                    raise self._startup_failed(f"exit code {code}" if code is not None
                                               else f"not ready after {self.STARTUP_TIMEOUT:.0f}s")
                if worker.task is not None:
                    tasks.pop(id(worker)).set_result(
                        ("timeout", f"Math-Verify took over {self.timeout}s", None) if not died
                        else ("error", f"grading worker died (exit code {worker.process.exitcode})", None))
                    self.timeouts += not died
                worker.stop(kill=True)
                self.workers.remove(worker)
                self.workers.append(_Worker(self._context(), self.check))

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._inbox.put(None)
            self._wake_w.send_bytes(b".")
            thread.join(30)
        for worker in self.workers:
            worker.stop()
        self.workers = []


# --- judge ------------------------------------------------------------------------------

_VERDICT_LINE = re.compile(r"^\W*(?:final\s+)?(?:answer|verdict|grade)?\W*(yes|no)\W*$", re.I)


def parse_judge_reply(reply: str, rule: str = "last_line") -> bool | None:
    """``last_line``: the last non-empty line must say only Yes or No (markdown and
    punctuation allowed); anything else is undecided. ``endswith``: the official scripts'
    rule, correct iff the reply ends with "yes"."""
    from hinttune.core.reasoning import split_think

    text = split_think(reply).answer if "</think>" in reply else reply
    if rule == "endswith":
        return text.strip().lower().endswith("yes")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _VERDICT_LINE.match(lines[-1].strip())
    return match.group(1).lower() == "yes" if match else None


NO_VERDICT = "no Yes/No verdict in the judge's reply"


def judge_model(cfg: RunConfig) -> ModelBase:
    """The configured judge (its greedy defaults are filled in by the config), or the instruct
    model as a judge (the paper's setup): greedy, 512 tokens, thinking off."""
    if cfg.grading.judge is not None:
        return cfg.grading.judge
    return cfg.instruct.model_copy(update={
        "system_prompt": None, "prompt_template": "{problem}", "response_prefix": "",
        "chat_template_kwargs": {**cfg.instruct.chat_template_kwargs, "enable_thinking": False},
        "sampling": JUDGE_SAMPLING})


def judge_request(judge: ModelBase, item: GradeItem, official: bool = False) -> Request:
    if official:
        system, user = OFFICIAL_JUDGE_SYSTEM, OFFICIAL_JUDGE_USER.format(
            problem=item.problem, attempt=item.answer, solution=item.gold)
    else:
        system, user = JUDGE_SYSTEM, JUDGE_USER.format(
            problem=item.problem.strip(), attempt=item.answer.strip(), solution=item.gold.strip())
    messages = [{"role": "system", "content": judge.system_prompt or system},
                {"role": "user", "content": user}]
    return Request(messages=messages, sampling=judge.sampling,
                   template_kwargs=dict(judge.chat_template_kwargs))


# --- the grader ---------------------------------------------------------------------------

class Grader:
    def __init__(self, cfg: RunConfig, store: RunStore, pool: BackendPool, lender: "Grader | None" = None):
        self.cfg, self.store, self.pool = cfg, store, pool
        self.lender = lender  # another grader whose Math-Verify workers this one uses
        g: GradingConfig = cfg.grading
        self.kind = g.grader or ("judge" if cfg.official else "hybrid")
        self.rule = g.judge_rule or ("endswith" if cfg.official else "last_line")
        self.judge = judge_model(cfg)
        self.math: MathVerifier | None = None
        self._checked: dict[bytes, tuple[str, str, str | None]] = {}  # by digest of the check
        self.settings = {"kind": self.kind, "rule": self.rule, "short": g.short_gold_chars,
                         "math_rules": MATH_RULES if self.kind != "judge" else None,
                         "judge": self.judge.model_dump(mode="json", exclude=set(PLACEMENT))
                         if self.kind != "math" else None}  # where it runs decides nothing
        if cfg.official and self.kind != "math":  # the official prompt's bytes: other verdicts
            self.settings["judge_prompt"] = "official"
        self._settings_json = canonical_json(self.settings)  # a part of every grade's key

    def close(self) -> None:
        if self.math is not None and self.lender is None:
            self.math.close()

    def _verifier(self) -> "MathVerifier":
        if self.math is None:
            self.math = (self.lender._verifier() if self.lender is not None else
                         MathVerifier(self.cfg.grading.math_timeout, self.cfg.grading.math_workers))
        return self.math

    def grade(self, items: list[GradeItem], label: str = "grade") -> dict[str, Verdict]:
        """Verdicts by item key; cached in the store, so re-grading costs nothing."""
        try:
            return asyncio.run(self.agrade(items, label))
        finally:
            self.store.flush()  # what the last turn of the loop wrote behind

    async def agrade(self, items: list[GradeItem], label: str = "grade",
                     judge_jobs: "AsyncJobs | None" = None, affinity: str | None = None) -> dict[str, Verdict]:
        """``grade`` for a task that awaits its verdicts while others run: Math-Verify checks
        go to the workers, judge calls to the judge's engine (through ``judge_jobs`` when the
        caller holds one, e.g. the probe stage sharing the instruct engine), like any request."""
        keys = {item.key: hash_of_json(canonical_json(item.key), canonical_json(item.gold), self._settings_json)
                for item in items}  # = stable_hash(item.key, item.gold, self.settings)
        verdicts = {k: Verdict(*v) for k, v in self.store.grades(list(keys.values())).items()}
        out = {item.key: verdicts[keys[item.key]] for item in items if keys[item.key] in verdicts}
        todo = [item for item in items if item.key not in out]
        if not todo:
            return out
        to_judge = todo
        if self.kind in ("math", "hybrid"):
            to_judge = []
            limit = self.cfg.grading.short_gold_chars
            self._verifier()
            checks = await self._check([(i.gold, i.answer, is_short_gold(i.gold, limit)) for i in todo])
            rows = []
            for item, (status, detail, _) in zip(todo, checks):
                decisive = status in ("correct", "wrong") or (status == "no_answer" and self.kind == "math")
                sure = not detail.startswith(UNSURE)  # else the judge reads it, where there is one
                if self.kind == "hybrid" and not (decisive and sure and is_short_gold(item.gold, limit)):
                    to_judge.append(item)
                    continue
                verdict = Verdict(True if status == "correct" else False if decisive else None,
                                  "math", f"{status}: {detail}")
                out[item.key] = verdict
                # a timeout or a crash may pass on a less loaded machine: kept for the record
                # (status, reports) but graded again by the next run
                final = status not in ("timeout", "error")
                if not final:
                    log.warning("Math-Verify %s on %s: %s (undecided; graded again next run)",
                                status, item.key, detail)
                rows.append((keys[item.key], item.key, verdict.correct, verdict.grader,
                             verdict.detail, final))
            self.store.defer(grades=rows)
        if to_judge:
            out.update(await self._judge(to_judge, keys, label, judge_jobs, affinity))
        return out

    async def _check(self, checks: list[tuple[str, str, bool]]) -> list[tuple[str, str, str | None]]:
        """Math-Verify on (gold, answer, short) checks, each distinct one once per run: many
        continuations end in the same words, and the verdict depends on nothing else. Kept by
        digest (answers can be long); results that may change on a second try (timeouts,
        crashes) are not kept."""
        digests = [hashlib.blake2b(repr(c).encode("utf-8"), digest_size=16).digest() for c in checks]
        todo: dict[bytes, tuple[str, str, bool]] = {}
        for digest, check in zip(digests, checks):
            if digest not in self._checked:
                todo.setdefault(digest, check)
        fresh = {}
        if todo:
            assert self.math is not None
            results = await asyncio.gather(*(asyncio.wrap_future(self.math.submit(c)) for c in todo.values()))
            fresh = dict(zip(todo, results))
            self._checked.update((d, r) for d, r in fresh.items() if r[0] not in ("timeout", "error"))
        return [self._checked.get(d) or fresh[d] for d in digests]

    async def _judge(self, items: list[GradeItem], keys: dict[str, str], label: str,
                     jobs: "AsyncJobs | None", affinity: str | None) -> dict[str, Verdict]:
        from hinttune.core.generations import AsyncJobs
        from hinttune.core.progress import stage_progress

        requests = [Job(item.key, 0, judge_request(self.judge, item, self.cfg.official)) for item in items]
        if jobs is not None:
            replies = await asyncio.gather(*(jobs.run(job, affinity) for job in requests))
        else:
            # The judge's plan is keyed by the graded item, so each item has one plan row.
            backend = self.pool.get(self.judge)
            with stage_progress(f"grade · judge ({label})", 0, transient=False) as bar:
                jobs = AsyncJobs(self.store, backend, "grade", f"judge:{label}", self.cfg.seed, bar)
                try:
                    replies = await asyncio.gather(*(jobs.run(job, job.problem_id) for job in requests))
                finally:
                    jobs.close()
        out = {}
        for item, rec in zip(items, replies):
            if rec.status != "ok":
                out[item.key] = Verdict(None, "judge", "judge request failed: " + (rec.error or ""))
                continue  # not stored: the next run asks again
            correct = parse_judge_reply(rec.text or "", self.rule)
            verdict = Verdict(correct, "judge", f"{NO_VERDICT}: {(rec.text or '')[-300:]}" if correct is None
                              else ("yes" if correct else "no"))
            out[item.key] = verdict
            # an unreadable reply is not final: --retry-undecided forgets the reply and asks again
            self.store.defer(grades=[(keys[item.key], item.key, verdict.correct, verdict.grader,
                                      verdict.detail, correct is not None)])
        return out
