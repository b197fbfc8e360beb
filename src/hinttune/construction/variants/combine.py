"""Several instruct probes, one dataset: each problem takes the state of the probe whose K*
the rule picks (``assemble.combine``).

A probe's verdict on a problem is ranked by the hint it needed: No-Hint 0, Sparse-Hint K*, and
N (the whole trace) when no hint worked (Full-Hint or unsolved - the same for every probe,
since the think attempt is shared). ``min`` takes the shortest hint any probe needed, ``max``
the longest, ``median`` the middle one (the lower of the two middles for an even count, so it
is always a K* some probe found, with that probe's answer), ``vote`` the most common (ties
to the shorter). A problem that any probe left incomplete is incomplete: a missing input never
decides.
"""

from __future__ import annotations

import copy
from collections import Counter

from hinttune.construction.states import INCOMPLETE, NO_HINT, SPARSE_HINT, Assignment

RULES = ("min", "max", "median", "vote")


def rank(a: Assignment) -> int:
    if a.state == NO_HINT:
        return 0
    if a.state == SPARSE_HINT and a.k_star is not None:
        return a.k_star
    return a.n


def pick(rule: str, ranks: list[int]) -> int:
    ordered = sorted(ranks)
    if rule == "min":
        return ordered[0]
    if rule == "max":
        return ordered[-1]
    if rule == "median":
        return ordered[(len(ordered) - 1) // 2]
    counts = Counter(ordered)
    return max(ordered, key=lambda r: (counts[r], -r))


def combine(rule: str, by_probe: dict[str, list[Assignment]]) -> tuple[list[Assignment], dict[str, str]]:
    """The combined assignments (in problem order), and which probe each problem's came from."""
    names = list(by_probe)
    out, source = [], {}
    for row in zip(*by_probe.values()):
        lost = [(name, a) for name, a in zip(names, row) if a.state == INCOMPLETE]
        if lost:
            name, a = lost[0]
            out.append(_with_note(a, f"probe {name}: {a.note}"))
            continue
        chosen = pick(rule, [rank(a) for a in row])
        name, a = next((name, a) for name, a in zip(names, row) if rank(a) == chosen)
        out.append(a)
        source[a.problem_id] = name
    return out, source


def _with_note(a: Assignment, note: str) -> Assignment:
    twin = copy.copy(a)
    twin.note = note
    return twin
