"""Construction policies beside Hint Tuning's, built from the same run store, for the
comparisons a reviewer asks for (each exported as its own dataset with the same meta sidecar):

- ``full``: every problem whose think answer was graded correct gets its whole trace as the
  target, with no marker (s1-style SFT; Muennighoff et al., 2025);
- ``two-state``: Hint Tuning's states with Sparse-Hint removed: a No-Hint problem stays
  No-Hint, every other exported problem becomes Full-Hint when its think answer was graded
  correct (isolates what Sparse-Hint adds).

Both use only what Hint Tuning's own run already holds: no generation is asked.
"""

from __future__ import annotations

import copy

from hinttune.reasoning import split_think
from hinttune.states import (FULL_HINT, FULL_MARKER, FULL_TRACE, NO_HINT, UNSOLVED, Assignment,
                             ProblemFacts)


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


def build_baselines(names: list[str], facts: list[ProblemFacts],
                    hint_tuning: list[Assignment]) -> dict[str, list[Assignment]]:
    builders = {"full": lambda: full(facts), "two-state": lambda: two_state(facts, hint_tuning)}
    return {name: builders[name]() for name in names}
