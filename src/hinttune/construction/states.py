"""Stage 5, states: assign each problem No-Hint, Sparse-Hint or Full-Hint and build its SFT
target with the released data format's marker strings, byte for byte.

Paper rule (default):    K* = 0 (the instruct model solved it unaided)  -> No-Hint
                         0 < K* < N                                      -> Sparse-Hint
                         no prefix works (K* = N counts here too)        -> Full-Hint, written only
                         when the think answer was graded correct (else "unsolved", or kept
                         and flagged with keep_unverified).
Official scripts' rule:  think model correct -> No-Hint with the instruct model's ungraded
                         answer; else a success at any k in 0..N -> Sparse-Hint; else
                         Full-Hint with the think trace, even when it was graded wrong.

Failures never become data: when an input a rule needs is missing - a failed generation, an
undecided grade, an unfinished probe - the problem is *incomplete*, with the cause, and the
next run retries it. It is never given a state from what happens to be there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hinttune.construction.probe.search import ProbeOutcome, continuation_parts
from hinttune.core.grading import NO_VERDICT
from hinttune.core.reasoning import split_think, split_think_official
from hinttune.core.store import REFUSED, stable_hash

NO_HINT_MARKERS = ("Let me think.", "Hmm,", "OK,", "Let's see.", "")
SPARSE_MARKER = "I may need some deep thinking. "
FULL_MARKER = ("This is a complex or challenging question, and it is difficult to provide a "
               "direct answer. I need to deep think about it.")

NO_HINT, SPARSE_HINT, FULL_HINT = "No-Hint", "Sparse-Hint", "Full-Hint"
FULL_TRACE = "full trace"  # the `full` baseline's target: the whole trace, no marker
CUT_TRACE = "cut trace"  # the `first-correct` baseline's: the trace up to a point, no marker
UNSOLVED, INCOMPLETE = "unsolved", "incomplete"


@dataclass
class ProblemFacts:
    problem_id: str
    problem: str
    think_text: str
    think_correct: bool | None  # None: undecided (or not graded)
    instruct_text: str
    instruct_correct: bool | None
    episodes: list[str]
    probe: ProbeOutcome | None
    # why an input is missing: a failed attempt, an undecided grade (None: it is there)
    think_missing: str | None = None
    instruct_missing: str | None = None
    think_undecided: str | None = None
    instruct_undecided: str | None = None


@dataclass
class Assignment:
    problem_id: str
    problem: str
    state: str  # one of the three states, or unsolved / incomplete (not exported)
    k_star: int | None
    n: int
    thinking: str = ""
    answer: str = ""
    hint: str = ""  # P_K* for Sparse-Hint
    verified: bool = True  # the target's answer was graded correct
    note: str = ""

    @property
    def exported(self) -> bool:
        return self.state in (NO_HINT, SPARSE_HINT, FULL_HINT, FULL_TRACE, CUT_TRACE)

    @property
    def output(self) -> str:
        return format_output(self.thinking, self.answer)


def format_output(thinking: str, answer: str) -> str:
    return "<think>\n" + thinking.strip() + "\n</think>\n\n" + answer.strip()


def alpaca_record(problem: str, thinking: str, answer: str) -> dict[str, str]:
    return {"instruction": problem.strip(), "input": "", "output": format_output(thinking, answer)}


def no_hint_marker(problem_id: str, seed: int) -> str:
    # seeded per problem, so the choice does not depend on order or on the other problems
    return random.Random(stable_hash("no-hint-marker", seed, problem_id)).choice(NO_HINT_MARKERS)


def _sparse(f: ProblemFacts, base: Assignment, official: bool = False) -> Assignment:
    attempt = f.probe.solution  # type: ignore[union-attr]
    hint = "".join(f.episodes[:attempt.k])
    # official: the whole continuation is the answer, as merge.py writes it, even when it
    # closes the think block itself
    extra, answer = ("", attempt.text) if official else continuation_parts(attempt.text)
    base.state, base.k_star, base.hint = SPARSE_HINT, attempt.k, hint
    base.thinking, base.answer = SPARSE_MARKER + hint + extra, answer
    return base


def _full(f: ProblemFacts, base: Assignment, keep_unverified: bool, official: bool = False) -> Assignment:
    trace = split_think_official(f.think_text) if official else split_think(f.think_text)
    verified = bool(f.think_correct) and trace.closed
    if not verified and not keep_unverified:
        base.state = UNSOLVED
        tried = ("no hint worked" if f.probe is not None else
                 f"not probed ({len(f.episodes)} episode{'s' * (len(f.episodes) != 1)}: too few "
                 "for a partial hint)")
        base.note = (f"{tried}, and the think answer was graded wrong" if trace.closed
                     else f"{tried}, and the think trace has no answer (no </think>)")
        return base
    base.state, base.verified = FULL_HINT, verified
    base.thinking, base.answer = FULL_MARKER + trace.reasoning, trace.answer
    return base


# causes the next run does not retry by itself (what it would do gives the same result), and
# how to make it
NOT_RETRIED = {
    REFUSED: "the backend refused these requests for good (re-run with --retry-rejected to send "
             "them again, e.g. after raising max_model_len)",
    NO_VERDICT: "the judge's replies are kept (re-run with --retry-undecided to ask the judge again; "
                "a greedy local judge tends to answer the same)",
    "bad_gold": "Math-Verify cannot read these gold answers (fix them, or grade with "
                "grading.grader=hybrid or judge)",
}


def retry_hint(cause: str) -> str | None:
    """None when the next run retries ``cause`` by itself; else why not and how to force it."""
    return next((hint for marker, hint in NOT_RETRIED.items() if marker in cause), None)


RETRIED, NOT_RETRIED_BY_ITSELF = " (re-run to retry)", " (not retried by itself: "


def incomplete_note(cause: str) -> str:
    """An incomplete item's note: its cause, and whether the next run retries it."""
    hint = retry_hint(cause)
    return cause + (RETRIED if hint is None else f"{NOT_RETRIED_BY_ITSELF}{hint})")


def cause_of(note: str) -> str:
    """The cause in an incomplete item's note (without what incomplete_note added)."""
    return note.split(RETRIED)[0].split(NOT_RETRIED_BY_ITSELF)[0]


def _incomplete(base: Assignment, cause: str) -> Assignment:
    base.state, base.note = INCOMPLETE, incomplete_note(cause)
    return base


def assign(f: ProblemFacts, policy: str = "paper", keep_unverified: bool = False,
           seed: int = 0) -> Assignment:
    n = len(f.episodes)
    base = Assignment(f.problem_id, f.problem, UNSOLVED, None, n)
    if policy == "official":
        return _assign_official(f, base, seed)
    if f.instruct_missing:
        return _incomplete(base, f.instruct_missing)
    if f.instruct_correct is None:
        return _incomplete(base, f.instruct_undecided or "the instruct answer was not graded")
    if f.instruct_correct:
        base.state, base.k_star = NO_HINT, 0
        base.thinking, base.answer = no_hint_marker(f.problem_id, seed), f.instruct_text
        return base
    if f.think_missing:
        return _incomplete(base, f.think_missing)
    if f.probe is not None and f.probe.incomplete:
        return _incomplete(base, f.probe.incomplete)
    found = f.probe is not None and f.probe.k_star is not None
    if found and 0 < f.probe.k_star < n:  # type: ignore[union-attr]
        return _sparse(f, base)
    if found:
        base.k_star = f.probe.k_star  # type: ignore[union-attr]
    if f.think_correct is None and split_think(f.think_text).closed:
        return _incomplete(base, f.think_undecided or "the think answer was not graded")
    return _full(f, base, keep_unverified)


def _assign_official(f: ProblemFacts, base: Assignment, seed: int) -> Assignment:
    if f.think_missing:
        return _incomplete(base, f.think_missing)
    if f.think_correct is None:
        return _incomplete(base, f.think_undecided or "the think answer was not graded")
    if f.think_correct:
        if f.instruct_missing:
            return _incomplete(base, f.instruct_missing)
        base.state, base.k_star, base.verified = NO_HINT, 0, bool(f.instruct_correct)
        base.thinking, base.answer = no_hint_marker(f.problem_id, seed), f.instruct_text
        return base
    if f.probe is not None and f.probe.incomplete:
        return _incomplete(base, f.probe.incomplete)
    if f.probe is not None and f.probe.k_star is not None:
        return _sparse(f, base, official=True)
    if f.probe is None:  # merge.py: "not in think_correct and no prefix result — skipping"
        base.note = ("the think answer was graded wrong and there is no prefix-search result "
                     "(the official merge.py skips it)")
        return base
    if not split_think_official(f.think_text).closed:
        # merge.py would cut at find() == -1 and write a garbled target: not reproduced
        base.note = ("no hint worked, and the think trace has no answer (no </think>; the "
                     "official merge.py writes a garbled target here)")
        return base
    return _full(f, base, keep_unverified=True, official=True)
