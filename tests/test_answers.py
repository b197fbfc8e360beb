"""What a reply states as its final answer (no \\boxed{}): the final statement after revisions,
not a check, a restated question or the last number written."""

import json
import re
from pathlib import Path

import pytest

from hinttune.core.grading.answers import stated_answer

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "gsm8k.jsonl"


@pytest.mark.parametrize("reply, first, sure", [
    ("Therefore, the answer is:\n\\[\n6\n\\]", "$6$", True),          # display math after "is:"
    ("The answer is: \\[6\\]", "$6$", True),
    ("So the answer is: \\[\\frac{1}{2}.\\]", "$\\frac{1}{2}$", True),
    ("The answer is 5.\nWait, actually it is 7.", "7", False),        # revised: 7, and unsure
    ("Each box holds 3, so 15 in total.\nDouble-check: 15 / 5 = 3.", "15", True),  # a check
    ("Let me verify: 15 / 5 = 3, which matches. So the answer is 15.", "15", True),
    ("x = 3 or x = -3", "$3, -3$", True),                             # several solutions
    ("It is 4.", "4", True),
    ("So x = ±3.", "$\\pm 3$", True),
    ("So the probability is 1/6 ≈ 0.167.", "1/6", True),              # the exact form
    ("It costs $18 and the tax is $2, so $20", "20", True),            # money, not math
    ("She spends $204 + $160 + $330 = $694 in total.", "694", True),
    ("4 * 6 = 24 boxes.\n\nTherefore, there are 24 eggs in 4 boxes.", "24", True),  # restated
    ("32 is the answer to 12 + 30", "32", True),
    ("so she has 6 left out of 10", "6", True),
    ("Adding 2 + 3 gives 5, so the answer is 6.", "6", True),
    ("The final answer: 1,234.", "1234", True),
    ("The answer is 42 apples.", "42", True),
    ("so the length is $3\\sqrt{13}$", "$3\\sqrt{13}$", True),
    ("12 + 30 = 32\n\nI hope this helps!", "32", True),               # an equation's result
    ("The total is 5 and 7.", "5", False),                             # several numbers: unsure
])
def test_the_final_statement_is_the_answer(reply, first, sure):
    stated = stated_answer(reply)
    assert stated.candidates and stated.candidates[0] == first, stated
    assert stated.sure is sure, stated
    assert stated.sure or stated.why  # an unsure reading says why


def test_a_reply_with_no_value_states_nothing():
    assert stated_answer("I am not sure.").candidates == ()
    assert not stated_answer("I am not sure.").sure


@pytest.mark.skipif(not GSM8K.exists(), reason="needs the shared GSM8K file (../shared/data)")
def test_gsm8k_solutions_without_their_final_line_are_read_right():
    """GSM8K's reference solutions are worked replies in words; with the "#### N" line and the
    calculator notes removed, the answer is what their last sentences state. Measured: 99.3%
    of first candidates right, and 6 of 1,319 read as sure and wrong (three labels in cents
    against solutions in dollars, a percentage before its rounding, a clock time, one label its
    own solution contradicts)."""
    from math_verify import parse, verify

    right = sure_wrong = total = 0
    for line in GSM8K.read_text().splitlines():
        solution, gold = json.loads(line)["answer"].split("####")
        gold = gold.strip().replace(",", "")
        stated = stated_answer(re.sub(r"<<[^>]*>>", "", solution).strip())
        good = bool(stated.candidates) and (stated.candidates[0].strip("$") == gold or bool(
            verify(parse(f"\\boxed{{{gold}}}"), parse(stated.candidates[0]))))
        right += good
        sure_wrong += stated.sure and not good
        total += 1
    assert right / total >= 0.99 and sure_wrong <= 6, (right, sure_wrong, total)


MATH500 = GSM8K.with_name("math500.jsonl")


def _unboxed(solution: str) -> tuple[str, str] | None:
    """The solution with its last \\boxed{X} replaced by X, and X."""
    from hinttune.core.grading.answers import last_boxed

    inside = last_boxed(solution)
    if inside is None:
        return None
    i = solution.rfind("\\boxed")
    return solution[:i] + inside + solution[i + len("\\boxed{") + len(inside) + 1:], inside


@pytest.mark.skipif(not MATH500.exists(), reason="needs the shared MATH-500 file (../shared/data)")
def test_math500_solutions_without_their_box_are_read_at_their_copula():
    """MATH-500's reference solutions with the box removed ("the value of $x$ ... is $3400$"):
    measured 96.5% of first readings right (the rest mostly end in a diagram, a note or a
    restated condition). The target is 98%; this guards what is reached."""
    import json

    from math_verify import parse, verify

    right = total = 0
    for line in MATH500.read_text().splitlines():
        row = json.loads(line)
        found = _unboxed(row["solution"])
        if found is None or "\\boxed" in found[0]:
            continue
        stated = stated_answer(found[0])
        gold = parse(f"\\boxed{{{row['answer']}}}")
        right += bool(stated.candidates) and bool(verify(gold, parse(stated.candidates[0])))
        total += 1
    assert right / total >= 0.96, (right, total)
