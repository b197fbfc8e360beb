import math

import pytest

from hinttune.construction.probe.strategies import make_search
from hinttune.core.config import ProbeConfig


def run(strategy, outcome, first=1, last=39, verify=False):
    """Drive a search on scripted outcomes; outcome(k, attempt) -> success."""
    search, rounds, generations, tries = make_search(strategy, first, last, verify), 0, 0, {}
    while not search.done:
        ks = search.pending()
        assert ks, "a search that is not done must ask for something"
        rounds += 1
        generations += len(ks)
        for k in ks:
            tries[k] = tries.get(k, 0) + 1
            search.record(k, outcome(k, tries[k] - 1))
    return search.k_star, rounds, generations


def monotone(k_star):
    return lambda k, _: k_star is not None and k >= k_star


@pytest.mark.parametrize("k_star", [1, 2, 3, 7, 8, 21, 39, None])
def test_all_strategies_agree_when_success_is_monotone(k_star):
    results = {s: run(s, monotone(k_star)) for s in ("linear", "sweep", "gallop")}
    assert {r[0] for r in results.values()} == {k_star}
    assert results["linear"][1] == (k_star if k_star else 39)      # rounds <= max K* + 1
    assert results["sweep"][1] == 1 and results["sweep"][2] == 39
    assert results["gallop"][1] <= 2 * math.log2(39) + 2
    assert results["gallop"][2] <= results["linear"][2] or k_star in (1, 2, 3)


def test_gallop_can_skip_an_isolated_early_success():
    isolated = lambda k, _: k == 3 or k >= 8  # noqa: E731
    assert run("linear", isolated)[0] == 3 and run("sweep", isolated)[0] == 3
    assert run("gallop", isolated)[0] == 8  # documented: the binary search trusts monotonicity


def test_verify_rechecks_k_minus_one_with_a_fresh_look():
    unlucky = lambda k, attempt: k >= 5 or (k == 4 and attempt > 0)  # noqa: E731  k=4 failed once
    assert run("gallop", unlucky)[0] == 5
    assert run("gallop", unlucky, verify=True)[0] == 4
    assert run("gallop", monotone(6), verify=True)[0] == 6  # a real failure at k-1 stands


def test_ranges_including_zero_and_empty():
    assert run("linear", monotone(0), first=0, last=5)[0] == 0
    assert run("gallop", monotone(5), first=0, last=5)[0] == 5
    search = make_search("linear", 1, 0)  # N = 1: nothing to probe in the paper's range
    assert search.done and search.pending() == [] and search.k_star is None


@pytest.mark.parametrize("rule, m, verdicts, ok", [
    ("any", 1, [False, True, False], True), ("any", 1, [False, None], False),
    ("majority", 1, [True, True, False], True), ("majority", 1, [True, False], False),
    ("at_least", 2, [True, None, True, False], True), ("at_least", 3, [True, True, False], False),
])
def test_success_rules(rule, m, verdicts, ok):
    assert ProbeConfig(success_rule=rule, min_successes=m).succeeded(verdicts) is ok


@pytest.mark.parametrize("k_star", [1, 4, 5, 9, 39, None])
@pytest.mark.parametrize("lookahead", [2, 4, 50])
def test_linear_lookahead_finds_the_same_k_in_fewer_rounds(k_star, lookahead):
    search, rounds = make_search("linear", 1, 39), 0
    search.lookahead = lookahead
    while not search.done:
        rounds += 1
        for k in search.pending():
            search.record(k, k_star is not None and k >= k_star)
    assert search.k_star == k_star
    assert rounds == -(-(k_star or 39) // lookahead)


def test_lookahead_with_an_isolated_success_still_takes_the_smallest():
    search = make_search("linear", 1, 39)
    search.lookahead = 8
    for k in search.pending():
        search.record(k, k in (3, 6))
    assert search.done and search.k_star == 3
