"""The math rules on a labelled set of plain replies (tests/labelled.py): the benchmarks'
reference solutions with their own final answer in the words (must grade correct) and with
another problem's answer swapped in (must not). Runs the worker's check in process.

Measured (what the figures below guard):
- MATH-500, 469 solutions: 460 (98.1%) of their own graded correct, 20 of the 469 unsure;
  swapped: none graded correct and sure, 4 correct but unsure (``hybrid`` sends them to the
  judge), 26 unsure in all. The 9 missed end in a diagram, a note that restates other values,
  a value approximated from an expression, or an answer written only in words ("so that
  number is the correct answer").
- GSM8K, 1,296 solutions: 1,293 (99.8%) correct, 6 unsure; swapped: none graded correct.
"""

import pytest

from hinttune.core.grading import UNSURE, _math_check

import labelled

pytest.importorskip("math_verify")


def grade(rows):
    own = [_math_check(gold, reply, True) for gold, reply, _ in rows]
    swapped = [_math_check(gold, reply, True) for gold, _, reply in rows]
    return own, swapped


@pytest.mark.parametrize("name, own_share, unsure_correct", [("math500", 0.98, 4), ("gsm8k", 0.995, 0)])
def test_reference_solutions_grade_correct_and_swapped_answers_do_not(shared_data, name, own_share, unsure_correct):
    rows = getattr(labelled, name)(shared_data / "benchmarks" / f"{name}.jsonl")
    assert len(rows) > 400
    own, swapped = grade(rows)
    right = sum(status == "correct" for status, _, _ in own)
    assert right / len(rows) >= own_share, (right, len(rows))
    passed = [(gold, detail) for (gold, _, _), (status, detail, _) in zip(rows, swapped) if status == "correct"]
    assert not [p for p in passed if not p[1].startswith(UNSURE)], passed  # never sure and wrong
    assert len(passed) <= unsure_correct, passed
