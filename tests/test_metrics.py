import math

import pytest

from hinttune.evaluation.metrics import accuracy, ks_for, pass_at_k, reasoning_tokens


@pytest.mark.parametrize("n, c, k, expected", [
    (4, 1, 1, 0.25), (4, 1, 2, 0.5), (4, 0, 2, 0.0), (4, 4, 1, 1.0),
    (5, 2, 3, 0.9),      # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (16, 3, 4, 1 - math.comb(13, 4) / math.comb(16, 4)),
    (3, 2, 2, 1.0),      # n - c < k: every draw of 2 holds a correct one
])
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_1_is_the_fraction_correct():
    assert all(pass_at_k(16, c, 1) == pytest.approx(c / 16) for c in range(17))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_avg_at_n_and_its_standard_error_by_hand():
    m = accuracy([[True, False], [True, True], [False, False]])
    assert m["avg@n"] == pytest.approx(0.5)
    # per-problem accuracies 0.5, 1, 0: population sd sqrt(1/6), over sqrt(3) problems
    assert m["stderr"] == pytest.approx(math.sqrt(1 / 6) / math.sqrt(3))
    assert m["pass@1"] == pytest.approx(0.5) and m["pass@2"] == pytest.approx(2 / 3)


def test_ks():
    assert ks_for(16) == [1, 2, 4, 8, 16] and ks_for(6) == [1, 2, 4, 6] and ks_for(1) == [1]


def words(text):
    return len(text.split())


@pytest.mark.parametrize("text, tokens, closed", [
    ("<think>one two three</think>\n\nThe answer is 4.", 3, True),
    ("one two</think>\n\nfour", 2, True),                 # template put <think> in the prompt
    ("<think>one two three four", 4, False),              # cut: all reasoning, flagged
    ("just an answer", 3, False),                         # no tags at all: flagged
])
def test_reasoning_tokens(text, tokens, closed):
    assert reasoning_tokens(text, words) == (tokens, closed)


def test_majority_vote_scores_the_most_frequent_answer():
    from hinttune.evaluation.metrics import majority_accuracy

    problems = [[("4", True), ("5", False), ("4", True)],          # 4 wins: right
                [("7", False), ("7", False), ("3", True)],         # 7 wins: wrong
                [("1", True), ("2", False)],                       # a tie: the first seen
                [(None, False), (None, False)]]                    # no answer at all
    assert majority_accuracy(problems) == 0.5


def test_both_standard_error_conventions():
    from hinttune.evaluation.metrics import accuracy

    out = accuracy([[True, True], [False, False], [True, False]])
    # per problem 1, 0, 0.5: population sd 0.408, sample sd 0.5, over sqrt(3)
    assert out["stderr"] == pytest.approx(0.40825 / 3 ** 0.5, abs=1e-4)
    assert out["stderr_sample"] == pytest.approx(0.5 / 3 ** 0.5, abs=1e-4)


def test_paired_bootstrap_keeps_pairs_and_is_seeded():
    from hinttune.evaluation.metrics import paired_bootstrap

    base = [0.0, 0.5, 1.0, 0.25] * 10
    better = [b + 0.25 for b in base]  # every problem up by exactly 0.25
    assert paired_bootstrap(base, better) == pytest.approx((0.25, 0.25, 0.25))
    mixed = [1.0, 0.0] * 20
    diff, low, high = paired_bootstrap([0.5] * 40, mixed, seed=1)
    assert diff == 0.0 and low < 0 < high and paired_bootstrap([0.5] * 40, mixed, seed=1) == (diff, low, high)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])
