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
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hinttune.probing import ProbeOutcome, continuation_parts
from hinttune.reasoning import split_think
from hinttune.store import stable_hash

NO_HINT_MARKERS = ("Let me think.", "Hmm,", "OK,", "Let's see.", "")
SPARSE_MARKER = "I may need some deep thinking. "
FULL_MARKER = ("This is a complex or challenging question, and it is difficult to provide a "
               "direct answer. I need to deep think about it.")

NO_HINT, SPARSE_HINT, FULL_HINT = "No-Hint", "Sparse-Hint", "Full-Hint"
UNSOLVED, INCOMPLETE = "unsolved", "incomplete"


@dataclass
class ProblemFacts:
    problem_id: str
    problem: str
    think_text: str
    think_correct: bool | None
    instruct_text: str
    instruct_correct: bool | None
    episodes: list[str]
    probe: ProbeOutcome | None


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
        return self.state in (NO_HINT, SPARSE_HINT, FULL_HINT)

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


def _sparse(f: ProblemFacts, base: Assignment) -> Assignment:
    attempt = f.probe.solution  # type: ignore[union-attr]
    hint = "".join(f.episodes[:attempt.k])
    extra, answer = continuation_parts(attempt.text)
    base.state, base.k_star, base.hint = SPARSE_HINT, attempt.k, hint
    base.thinking, base.answer = SPARSE_MARKER + hint + extra, answer
    return base


def _full(f: ProblemFacts, base: Assignment, keep_unverified: bool) -> Assignment:
    trace = split_think(f.think_text)
    verified = bool(f.think_correct) and trace.closed
    if not verified and not keep_unverified:
        base.state = UNSOLVED
        base.note = ("no hint worked and the think answer was not graded correct"
                     if trace.closed else "no hint worked and the think trace has no answer (no </think>)")
        return base
    base.state, base.verified = FULL_HINT, verified
    base.thinking, base.answer = FULL_MARKER + trace.reasoning, trace.answer
    return base


def assign(f: ProblemFacts, policy: str = "paper", keep_unverified: bool = False,
           seed: int = 0) -> Assignment:
    n = len(f.episodes)
    base = Assignment(f.problem_id, f.problem, UNSOLVED, None, n)
    if f.probe is not None and f.probe.incomplete and f.probe.k_star is None:
        base.state, base.note = INCOMPLETE, f.probe.incomplete + " (re-run to retry)"
        return base
    found = f.probe is not None and f.probe.k_star is not None
    if policy == "official":
        if f.think_correct:
            base.state, base.k_star, base.verified = NO_HINT, 0, bool(f.instruct_correct)
            base.thinking, base.answer = no_hint_marker(f.problem_id, seed), f.instruct_text
            return base
        if found:
            return _sparse(f, base)
        return _full(f, base, keep_unverified=True)
    if f.instruct_correct:
        base.state, base.k_star = NO_HINT, 0
        base.thinking, base.answer = no_hint_marker(f.problem_id, seed), f.instruct_text
        return base
    if found and 0 < f.probe.k_star < n:  # type: ignore[union-attr]
        return _sparse(f, base)
    if found:
        base.k_star = f.probe.k_star  # type: ignore[union-attr]
    return _full(f, base, keep_unverified)
