"""Construction policies beside Hint Tuning's, built from the same run store, for the
comparisons a reviewer asks for (each exported as its own dataset with the same meta sidecar):

- ``full``: every problem whose think answer was graded correct gets its whole trace as the
  target, with no marker (s1-style SFT; Muennighoff et al., 2025);
- ``two-state``: Hint Tuning's states with Sparse-Hint removed: a No-Hint problem stays
  No-Hint, every other exported problem becomes Full-Hint when its think answer was graded
  correct (isolates what Sparse-Hint adds);
- ``matched-random``: Hint Tuning's states (and, for Sparse-Hint, its hint fractions K*/N)
  dealt at random over the same problems, each keeping its own verified answer: the same state
  counts and about the same tokens, with the difficulty signal removed (a token-matched control);
- ``shortest-of-n``: the shortest think trace graded correct among the ``attempts.samples``
  samples of each problem, whole, no marker (shortest-correct-of-N rejection sampling).

These use only what the run already holds (``shortest-of-n`` grades the further samples): no
generation is asked. ``first-correct`` (``first_correct.py``) asks the think model itself.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from hinttune.construction.states import (FULL_HINT, FULL_MARKER, FULL_TRACE, INCOMPLETE, NO_HINT,
                                          SPARSE_HINT, SPARSE_MARKER, UNSOLVED, Assignment,
                                          ProblemFacts, incomplete_note, no_hint_marker)
from hinttune.core.reasoning import split_think
from hinttune.core.store import stable_hash


@dataclass
class ThinkSample:
    """One of a problem's think samples: its text and verdict, or why it is not there."""

    text: str = ""
    correct: bool | None = None
    missing: str | None = None  # a failed generation, an undecided grade


@dataclass
class BaselineInputs:
    facts: list[ProblemFacts]
    hint_tuning: list[Assignment]
    seed: int = 0
    samples: dict[str, list[ThinkSample]] = field(default_factory=dict)  # shortest-of-n
    first_correct: list[Assignment] | None = None  # built by first_correct.py
    count: Any = None  # a token counter (shortest-of-n compares lengths in tokens)


def _verified_trace(f: ProblemFacts) -> tuple[str, str] | None:
    trace = split_think(f.think_text)
    if f.think_correct is not True or not trace.closed or f.think_missing:
        return None
    return trace.reasoning, trace.answer


def full(facts: list[ProblemFacts]) -> list[Assignment]:
    out = []
    for f in facts:
        base = Assignment(f.problem_id, f.problem, UNSOLVED, None, len(f.episodes))
        trace = _verified_trace(f)
        if trace is None:
            base.note = "no think trace graded correct"
        else:
            base.state, (base.thinking, base.answer) = FULL_TRACE, trace
        out.append(base)
    return out


def two_state(facts: list[ProblemFacts], hint_tuning: list[Assignment]) -> list[Assignment]:
    out = []
    for f, a in zip(facts, hint_tuning):
        if a.state == NO_HINT or not a.exported:
            out.append(copy.copy(a))
            continue
        base = Assignment(f.problem_id, f.problem, UNSOLVED, None, len(f.episodes))
        trace = _verified_trace(f)
        if trace is None:
            base.note = f"{a.state} in Hint Tuning, and no think trace graded correct for Full-Hint"
        else:
            base.state = FULL_HINT
            base.thinking, base.answer = FULL_MARKER + trace[0], trace[1]
        out.append(base)
    return out


def matched_random(facts: list[ProblemFacts], hint_tuning: list[Assignment], seed: int) -> list[Assignment]:
    exported = [a for a in hint_tuning if a.exported]
    draws = [(a.state, (a.k_star or 0) / a.n if a.state == SPARSE_HINT and a.n else 0.0) for a in exported]
    random.Random(stable_hash("matched-random", seed, [a.problem_id for a in exported])).shuffle(draws)
    dealt = {a.problem_id: d for a, d in zip(exported, draws)}
    out = []
    for f, a in zip(facts, hint_tuning):
        if a.problem_id not in dealt:
            out.append(copy.copy(a))  # unsolved or incomplete in Hint Tuning: the same here
            continue
        state, fraction = dealt[a.problem_id]
        twin = Assignment(a.problem_id, a.problem, state, None, a.n, answer=a.answer,
                          verified=a.verified, note=f"was {a.state}")
        if state == NO_HINT:
            twin.k_star, twin.thinking = 0, no_hint_marker(a.problem_id, seed)
        elif state == SPARSE_HINT:
            n = len(f.episodes)
            twin.k_star = min(max(1, round(fraction * n)), max(1, n - 1))
            twin.hint = "".join(f.episodes[:twin.k_star])
            twin.thinking = SPARSE_MARKER + twin.hint
        else:
            twin.thinking = FULL_MARKER + split_think(f.think_text).reasoning
        out.append(twin)
    return out


def shortest_of_n(facts: list[ProblemFacts], samples: dict[str, list[ThinkSample]], count: Any) -> list[Assignment]:
    out = []
    for f in facts:
        base = Assignment(f.problem_id, f.problem, UNSOLVED, None, len(f.episodes))
        mine = samples.get(f.problem_id, [])
        lost = next((s.missing for s in mine if s.missing), None if mine else "no think samples")
        if lost:  # a missing sample might have been the shortest correct one
            base.state, base.note = INCOMPLETE, incomplete_note(lost)
        else:
            traces = [split_think(s.text) for s in mine if s.correct is True]
            correct = [t for t in traces if t.closed]
            if not correct:
                base.note = f"none of {len(mine)} think samples graded correct"
            else:
                best = min(correct, key=lambda t: count(t.reasoning))
                base.state, base.thinking, base.answer = FULL_TRACE, best.reasoning, best.answer
                base.note = f"shortest of {len(correct)} correct of {len(mine)}"
        out.append(base)
    return out


def build_baselines(names: list[str], inputs: BaselineInputs) -> dict[str, list[Assignment]]:
    facts, hint_tuning = inputs.facts, inputs.hint_tuning
    builders = {"full": lambda: full(facts), "two-state": lambda: two_state(facts, hint_tuning),
                "matched-random": lambda: matched_random(facts, hint_tuning, inputs.seed),
                "shortest-of-n": lambda: shortest_of_n(facts, inputs.samples, inputs.count),
                "first-correct": lambda: inputs.first_correct or []}
    return {name: builders[name]() for name in names}
