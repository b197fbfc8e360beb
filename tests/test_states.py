import json

import pytest

from hinttune.construction.probe.search import ProbeAttempt, ProbeOutcome
from hinttune.construction.states import (
    FULL_HINT,
    FULL_MARKER,
    INCOMPLETE,
    NO_HINT,
    NO_HINT_MARKERS,
    SPARSE_HINT,
    SPARSE_MARKER,
    UNSOLVED,
    ProblemFacts,
    alpaca_record,
    assign,
    format_output,
    no_hint_marker,
)
from hinttune.core.grading import Verdict

EPISODES = ["\nFirst idea. ", "Wait, second idea. ", "Wait, third idea.\n"]
THINK = "<think>" + "".join(EPISODES) + "</think>\n\nThe answer is 4."


def test_marker_strings_are_the_released_ones_byte_for_byte():
    assert SPARSE_MARKER == "I may need some deep thinking. "
    assert FULL_MARKER == ("This is a complex or challenging question, and it is difficult to "
                           "provide a direct answer. I need to deep think about it.")
    assert NO_HINT_MARKERS == ("Let me think.", "Hmm,", "OK,", "Let's see.", "")


def test_record_format_byte_for_byte():
    record = alpaca_record("  What is 2+2?\n", "\nI may need some deep thinking. x\n", " 4 \n")
    assert json.dumps(record) == (
        '{"instruction": "What is 2+2?", "input": "", '
        '"output": "<think>\\nI may need some deep thinking. x\\n</think>\\n\\n4"}')
    assert format_output("", "A") == "<think>\n\n</think>\n\nA"  # the empty No-Hint marker


def probe(k_star, ks, texts=None, incomplete=None):
    attempts = [ProbeAttempt(k, f"key{k}", (texts or {}).get(k, f"continuation at {k}"),
                             Verdict(k == k_star, "math"), 5) for k in ks]
    return ProbeOutcome("p", len(EPISODES), k_star, attempts, incomplete)


def facts(think_correct=True, instruct_correct=False, outcome=None, think=THINK):
    return ProblemFacts("p", "What is 2+2?", think, think_correct, "It is 4.", instruct_correct,
                        EPISODES, outcome)


def test_paper_k_star_zero_is_no_hint_with_the_instruct_answer():
    a = assign(facts(instruct_correct=True), "paper", seed=3)
    assert (a.state, a.k_star) == (NO_HINT, 0)
    assert a.thinking == no_hint_marker("p", 3) and a.answer == "It is 4."


def test_paper_sparse_hint_keeps_the_prefix_and_the_continuation():
    a = assign(facts(outcome=probe(2, [1, 2])), "paper")
    assert (a.state, a.k_star, a.n) == (SPARSE_HINT, 2, 3)
    assert a.thinking == SPARSE_MARKER + "\nFirst idea. Wait, second idea. "
    assert a.answer == "continuation at 2"
    assert a.output == ("<think>\nI may need some deep thinking. \nFirst idea. Wait, second idea."
                        "\n</think>\n\ncontinuation at 2")


def test_a_continuation_that_closes_the_think_block_itself():
    a = assign(facts(outcome=probe(1, [1], {1: "more thought\n</think>\n\nSo 4."})), "paper")
    assert a.thinking == SPARSE_MARKER + "\nFirst idea. more thought\n"
    assert a.answer == "\n\nSo 4."


@pytest.mark.parametrize("outcome", [probe(None, [1, 2]), None, probe(3, [1, 2, 3])])
def test_paper_full_hint_when_no_prefix_works_or_only_the_whole_trace(outcome):
    a = assign(facts(outcome=outcome), "paper")
    assert a.state == FULL_HINT and a.verified
    assert a.thinking == FULL_MARKER + "".join(EPISODES) and a.answer == "\n\nThe answer is 4."


def test_paper_unsolved_unless_keep_unverified():
    a = assign(facts(think_correct=False, outcome=probe(None, [1, 2])), "paper")
    assert a.state == UNSOLVED and not a.exported and "graded wrong" in a.note
    kept = assign(facts(think_correct=False, outcome=probe(None, [1, 2])), "paper", keep_unverified=True)
    assert kept.state == FULL_HINT and not kept.verified
    cut = assign(facts(think=THINK.split("</think>")[0], think_correct=False), "paper", keep_unverified=False)
    assert cut.state == UNSOLVED and "no </think>" in cut.note


def test_official_no_hint_when_the_think_model_is_right_with_the_ungraded_instruct_answer():
    a = assign(facts(think_correct=True, instruct_correct=False), "official")
    assert a.state == NO_HINT and a.answer == "It is 4." and not a.verified


@pytest.mark.parametrize("k", [0, 2, 3])
def test_official_any_success_from_zero_to_n_is_sparse_hint(k):
    a = assign(facts(think_correct=False, outcome=probe(k, range(k + 1))), "official")
    assert (a.state, a.k_star) == (SPARSE_HINT, k)
    assert a.thinking == SPARSE_MARKER + "".join(EPISODES[:k])


def test_official_full_hint_keeps_a_wrong_trace():
    a = assign(facts(think_correct=False, outcome=probe(None, range(4))), "official")
    assert a.state == FULL_HINT and not a.verified


def test_an_unfinished_probe_is_incomplete_not_full_hint():
    a = assign(facts(outcome=probe(None, [1], incomplete="probe k=2 failed: boom")), "paper")
    assert a.state == INCOMPLETE and "re-run" in a.note and not a.exported


def test_no_hint_marker_is_seeded_per_problem():
    picks = {no_hint_marker(f"p{i}", 0) for i in range(200)}
    assert picks == set(NO_HINT_MARKERS)
    assert no_hint_marker("p1", 0) == no_hint_marker("p1", 0)
    assert [no_hint_marker(f"p{i}", 0) for i in range(20)] != [no_hint_marker(f"p{i}", 1) for i in range(20)]
