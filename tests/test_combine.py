"""Combining several probes' states by K*: each rule, ties, and incomplete problems."""

import pytest

from hinttune.construction.variants.combine import combine, pick, rank
from hinttune.construction.states import (
    FULL_HINT,
    INCOMPLETE,
    NO_HINT,
    SPARSE_HINT,
    UNSOLVED,
    Assignment,
)


def a(state, k=None, n=10, pid="p"):
    return Assignment(pid, "q", state, k, n, note="why" if state == INCOMPLETE else "")


def test_rank_is_the_hint_needed():
    assert [rank(a(NO_HINT, 0)), rank(a(SPARSE_HINT, 4)), rank(a(FULL_HINT)), rank(a(UNSOLVED))] == [0, 4, 10, 10]


@pytest.mark.parametrize("rule, ranks, chosen", [
    ("min", [3, 0, 10], 0), ("max", [3, 0, 10], 10), ("median", [3, 0, 10], 3),
    ("median", [7, 2, 5, 1], 2),  # even count: the lower middle, a K* some probe found
    ("vote", [4, 4, 9], 4), ("vote", [9, 4, 2, 9, 4], 4),  # a tie goes to the shorter hint
])
def test_rules(rule, ranks, chosen):
    assert pick(rule, ranks) == chosen


def test_each_problem_takes_the_chosen_probes_assignment_and_incomplete_wins():
    by_probe = {"a": [a(SPARSE_HINT, 3, pid="p1"), a(NO_HINT, 0, pid="p2"), a(SPARSE_HINT, 2, pid="p3")],
                "b": [a(SPARSE_HINT, 5, pid="p1"), a(FULL_HINT, pid="p2"), a(INCOMPLETE, pid="p3")]}
    merged, source = combine("max", by_probe)
    assert [(m.state, m.k_star) for m in merged[:2]] == [(SPARSE_HINT, 5), (FULL_HINT, None)]
    assert merged[0] is by_probe["b"][0] and source == {"p1": "b", "p2": "b"}
    assert merged[2].state == INCOMPLETE and merged[2].note == "probe b: why"
    assert by_probe["b"][2].note == "why"  # the probe's own assignment is left as it was
    merged, source = combine("min", by_probe)
    assert [(m.state, m.k_star) for m in merged[:2]] == [(SPARSE_HINT, 3), (NO_HINT, 0)]
    assert source == {"p1": "a", "p2": "a"}
