import pytest

from hinttune.core.backends import BackendPool
from hinttune.core.config import validate_config
from hinttune.core.grading import (
    JUDGE_SYSTEM,
    GradeItem,
    Grader,
    MathVerifier,
    is_short_gold,
    judge_model,
    parse_judge_reply,
)
from hinttune.core.store import RunStore

pytest.importorskip("math_verify")


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(timeout=3, workers=2)
    yield v
    v.close()


@pytest.mark.parametrize("gold, answer, status", [
    ("5", "The answer is 5.", "correct"),
    ("\\frac{1}{2}", "so the result is \\boxed{0.5}", "correct"),
    ("\\frac{9}{7}", "we get $\\dfrac{9}{7}$", "correct"),
    ("027", "\\boxed{27}", "correct"),                      # AIME: zero-padded gold
    ("27.0", "The distance is \\boxed{27} miles", "correct"),  # AMC: float gold
    ("(1, 2)", "\\boxed{(1,2)}", "correct"),
    ("x = 3", "\\boxed{3}", "correct"),
    ("\\sqrt{2}", "\\boxed{2^{1/2}}", "correct"),
    ("42", "12 + 30 = 32. The answer is 32.", "wrong"),
    # the stated answer, not a restated expression (Math-Verify alone reads 12 + 30 = 42)
    ("42", "12 + 30 = 32", "wrong"),
    ("42", "12 + 30 = 32\n\nI hope this helps!", "wrong"),
    ("42", "12 + 30 = 42", "correct"),
    ("7", "x = 3 + 4 = 7", "correct"),
    ("8", "x = 3 + 4 = 7", "wrong"),
    ("42", "The answer is 42 apples.", "correct"),
    ("3.5", "Answer: 3.5 cm", "correct"),
    ("1234", "The final answer: 1,234.", "correct"),
    ("5", "Adding 2 + 3 gives 5, so the answer is 6.", "wrong"),
    ("\\frac{1}{2}", "The answer is $\\frac{1}{2}$.", "correct"),
    ("3\\sqrt{13}", "so the length is $3\\sqrt{13}$", "correct"),
    ("3\\sqrt{13}", "so the length is $3$", "wrong"),
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", "wrong"),
    ("5", "I am not sure.", "no_answer"),
    # what a reply finally states (answers.py): display math, a revision, a check, a restatement
    ("6", "Therefore, the answer is:\n\\[\n6\n\\]", "correct"),
    ("\\frac{1}{2}", "The answer is: \\[\\frac{1}{2}.\\]", "correct"),
    ("5", "The answer is 5.\nWait, actually it is 7.", "wrong"),
    ("15", "Each box holds 3, so 15 in total.\nDouble-check: 15 / 5 = 3.", "correct"),
    ("3, -3", "x = 3 or x = -3", "correct"),
    ("\\pm 3", "x = 3 or x = -3", "correct"),
    ("\\frac{1}{6}", "So the probability is 1/6 ≈ 0.167.", "correct"),
    ("20", "It costs $18 and the tax is $2, so $20", "correct"),
    ("24", "4 * 6 = 24 boxes.\n\nTherefore, there are 24 eggs in 4 boxes.", "correct"),
    ("32", "32 is the answer to 12 + 30", "correct"),
    ("6", "so she has 6 left out of 10", "correct"),
    # what the gold is decides how the reply is read: a letter, a relation, words, a list
    ("C", "The answer is (C) 12.", "correct"),
    ("\\text{(C)}", "The answer is (C) 12.", "correct"),
    ("12", "The answer is (C) 12.", "correct"),
    ("B", "the correct choice is (B).", "correct"),
    ("B", "\\boxed{C}", "wrong"),
    ("[5,\\infty)", "Therefore $x \\geq 5$ is the solution.", "correct"),
    ("(2,-1)", "The lines intersect at the point (2, -1).", "correct"),
    ("(2,-1)", "The lines intersect at the point (2, 1).", "wrong"),
    ("\\text{east}", "which leaves her facing $\\text{east}$.", "correct"),
    ("\\text{east}", "which leaves her facing $\\text{west}$.", "wrong"),
    ("-9", "This simplifies to $1+2+3-15 = 6-15=\\text{even}$.", "wrong"),
    ("2.5\\times 10^3", "The speed is 2.5 × 10^3 m/s.", "correct"),
    ("-2", "所以最终答案是 \\(-2\\)。验证：2+2 = 4", "correct"),
    ("15", "他有15个苹果。", "correct"),
    ("21,16,11", "The terms are 21,16,11.", "correct"),
    ("21,16,11", "The terms are 21,16,12.", "wrong"),
    ("34", "The largest $n$ is 34.", "correct"),
    ("\\left(", "\\boxed{3}", "bad_gold"),
    ("yellow", "\\boxed{3}", "bad_gold"),  # text answers go to the judge
])
def test_math_cases(verifier, gold, answer, status):
    (got, detail, _), = verifier.check_many([(gold, answer, is_short_gold(gold, 100))])
    assert got == status, detail


@pytest.mark.parametrize("gold, answer, status", [
    ("5", "Therefore $x \\geq 5$ is the solution.", "correct"),  # a bound against a value
    ("\\text{no real solution}", "So there is no real solution.", "correct"),  # the words, no value
    ("\\text{no real solution}", "The answer is $\\text{No real solutions}$.", "wrong"),
])
def test_readings_that_leave_a_doubt_are_unsure(verifier, gold, answer, status):
    """`hybrid` asks the judge about these; `math` keeps the verdict."""
    (got, detail, _), = verifier.check_many([(gold, answer, True)])
    assert got == status and detail.startswith("unsure"), detail


def test_long_gold_without_a_final_answer_is_undecided(verifier):
    gold = "First we note that the sum telescopes.\nHence the claim follows for every n."
    assert not is_short_gold(gold, 100)
    (status, _, _), = verifier.check_many([(gold, "\\boxed{3}", False)])
    assert status == "bad_gold"


def test_a_hostile_expression_times_out_and_the_pool_recovers():
    v = MathVerifier(timeout=2, workers=2)
    try:
        results = v.check_many([("(10^{10^{10}})!", "\\boxed{(10^{10^{10}}+1)!}", True),
                                *[(str(i), f"\\boxed{{{i}}}", True) for i in range(6)]])
        assert results[0][0] == "timeout" and [r[0] for r in results[1:]] == ["correct"] * 6
        assert v.timeouts == 1 and len(v.workers) == 2  # the stuck worker alone was replaced
    finally:
        v.close()


def test_the_deadline_counts_the_check_alone_not_worker_start_up():
    """Starting a worker and importing Math-Verify takes seconds; a 1 s deadline must still
    pass trivial checks, on a fresh pool, however slow its start."""
    v = MathVerifier(timeout=1, workers=2)
    try:
        results = v.check_many([(str(i), f"The answer is {i}.", True) for i in range(8)])
        assert [r[0] for r in results] == ["correct"] * 8
    finally:
        v.close()


def test_a_pool_that_cannot_start_is_one_clear_error(monkeypatch):
    from hinttune.core.errors import HinttuneError

    v = MathVerifier(timeout=1, workers=1)
    monkeypatch.setattr(MathVerifier, "STARTUP_TIMEOUT", 0.0)
    with pytest.raises(HinttuneError, match="could not start.*__main__"):
        v.check_many([("1", "1", True)])


def test_timed_out_grades_are_stored_undecided_and_graded_again(tmp_path, monkeypatch):
    cfg = config(tmp_path, "math")
    items = [GradeItem("k1", "q", "7", "The answer is 7.")]
    with RunStore(tmp_path) as store, BackendPool() as pool:
        grader = Grader(cfg, store, pool)
        grader.math = MathVerifier(timeout=1, workers=1)
        monkeypatch.setattr(grader.math, "submit",
                            lambda check: resolved(("timeout", "Math-Verify took over 1s", None)))
        first = grader.grade(items)
        assert first["k1"].correct is None and first["k1"].detail.startswith("timeout")
        row = store.db.execute("SELECT correct, final FROM grades").fetchone()
        assert tuple(row) == (None, 0)  # on record, but not final
        monkeypatch.undo()
        again = grader.grade(items)  # the next run grades it again, for real
        assert again["k1"].correct is True
        grader.close()


@pytest.mark.parametrize("reply, rule, verdict", [
    ("The attempt matches.\nYes", "last_line", True),
    ("The attempt is off by one.\n\nNo", "last_line", False),
    ("reasoning...\n**Yes**", "last_line", True),
    ("reasoning...\nFinal answer: No.", "last_line", False),
    ("<think>hmm</think>\n\nYES", "last_line", True),
    ("I cannot decide.", "last_line", None),
    ("Yes, the attempt is right but the units are missing", "last_line", None),
    ("", "last_line", None),
    ("...the answer is yes", "endswith", True),   # the official scripts' rule
    ("Yes.\nBut then no", "endswith", False),
])
def test_judge_reply_parsing(reply, rule, verdict):
    assert parse_judge_reply(reply, rule) is verdict


def config(tmp_path, grader, judge_answers=None, **grading):
    return validate_config({
        "run_dir": str(tmp_path), "think": {"backend": "fake", "model": "t"},
        "instruct": {"backend": "fake", "model": "i", "system_prompt": "be brief"},
        "grading": {"grader": grader, **grading, **({"judge": {
            "backend": "fake", "model": "judge", "answers": judge_answers}} if judge_answers else {})}})


def test_the_default_judge_is_the_instruct_model_greedy_thinking_off(tmp_path):
    judge = judge_model(config(tmp_path, "judge"))
    assert judge.model == "i" and judge.system_prompt is None
    assert (judge.sampling.temperature, judge.sampling.max_tokens) == (0.0, 512)
    assert judge.chat_template_kwargs == {"enable_thinking": False}


def test_hybrid_uses_math_for_short_golds_and_the_judge_otherwise(tmp_path):
    cfg = config(tmp_path, "hybrid", judge_answers={"ATTEMPT-A": "Matches.\nYes", "ATTEMPT-B": "hmm"})
    items = [GradeItem("k1", "1+1?", "2", "The answer is 2."),          # math decides
             GradeItem("k2", "prove it", "A long worked\nsolution.", "ATTEMPT-A"),  # judge: yes
             GradeItem("k3", "prove it", "A long worked\nsolution.", "ATTEMPT-B"),  # unreadable
             GradeItem("k4", "2+2?", "4", "no number ATTEMPT-A")]       # math has no answer: judge
    with RunStore(tmp_path) as store, BackendPool() as pool:
        grader = Grader(cfg, store, pool)
        v = grader.grade(items)
        assert (v["k1"].correct, v["k1"].grader) == (True, "math")
        assert (v["k2"].correct, v["k2"].grader) == (True, "judge")
        assert v["k3"].correct is None and v["k3"].detail == "no Yes/No verdict in the judge's reply: hmm"
        assert (v["k4"].correct, v["k4"].grader) == (True, "judge")
        judge_calls = store.count()
        again = grader.grade(items)  # cached: no new judge generation
        assert again == v and store.count() == judge_calls == 3
        grader.close()


def test_hybrid_asks_the_judge_when_the_stated_answer_is_unsure(tmp_path):
    """A revision, several numbers or no final statement: the judge decides, not a guess;
    under ``math`` alone the rules' best reading is the verdict, marked unsure."""
    revised = "The answer is 5.\nWait, actually it is 7. ATTEMPT-A"
    items = [GradeItem("k1", "q", "7", revised), GradeItem("k2", "q", "7", "The answer is 7.")]
    with RunStore(tmp_path / "h") as store, BackendPool() as pool:
        grader = Grader(config(tmp_path / "h", "hybrid", judge_answers={"ATTEMPT-A": "Right.\nYes"}), store, pool)
        v = grader.grade(items)
        assert (v["k1"].correct, v["k1"].grader) == (True, "judge")
        assert (v["k2"].correct, v["k2"].grader) == (True, "math")  # sure: no judge call
        assert store.count() == 1
        grader.close()
    with RunStore(tmp_path / "m") as store, BackendPool() as pool:
        grader = Grader(config(tmp_path / "m", "math"), store, pool)
        v = grader.grade(items[:1])
        assert (v["k1"].correct, v["k1"].grader) == (True, "math")
        assert "unsure (the stated answer is revised after it)" in v["k1"].detail
        grader.close()


def test_judge_prompt_has_the_s1_structure(tmp_path):
    cfg = config(tmp_path, "judge", judge_answers={"x": "Yes"})
    with RunStore(tmp_path) as store, BackendPool() as pool:
        Grader(cfg, store, pool).grade([GradeItem("k", "What is 1+1?", "2", "It is 2.")])
        rec = store.get(next(iter(store.done_keys(
            [r[0] for r in store.db.execute("SELECT key FROM generations")]))))
    system, user = rec.request["messages"]
    assert system == {"role": "system", "content": JUDGE_SYSTEM}
    assert user["content"] == "# Problem\nWhat is 1+1?\n\n## Attempt\nIt is 2.\n\n## Correct answer\n2"
    assert rec.params["temperature"] == 0.0 and rec.params["max_tokens"] == 512


def test_raw_math_verify_times_out_only_on_a_main_thread():
    """What the README says of Math-Verify alone (why checks run in worker processes): on
    the main thread its signal timeout stops a hostile expression, graded wrong; in a thread
    it refuses to run with a timeout."""
    import threading

    from math_verify import parse, verify

    gold, answer = parse("$(10^{10^{10}})!$", parsing_timeout=5), parse("$5$")
    assert verify(gold, answer, timeout_seconds=1) is False
    errors = []
    thread = threading.Thread(target=lambda: errors.append(
        pytest.raises(ValueError, verify, gold, answer, timeout_seconds=1)))
    thread.start()
    thread.join(30)
    assert errors and "threaded" in str(errors[0].value)


def resolved(value):
    from concurrent.futures import Future

    future = Future()
    future.set_result(value)
    return future


def test_each_distinct_check_runs_once_and_timeouts_run_again(tmp_path, monkeypatch):
    """Continuations that end in the same words are checked once per run; a timed-out check
    is not remembered, so the next call checks it again."""
    cfg = config(tmp_path, "math")
    sent = []
    outcomes = {"The answer is 7.": ("correct", "", "7"), "slow": ("timeout", "took over 1s", None)}
    with RunStore(tmp_path) as store, BackendPool() as pool:
        grader = Grader(cfg, store, pool)
        grader.math = MathVerifier(timeout=1, workers=1)
        monkeypatch.setattr(grader.math, "submit", lambda check: sent.append(check) or resolved(outcomes[check[1]]))
        first = grader.grade([GradeItem(f"k{i}", "q", "7", "The answer is 7.") for i in range(5)]
                             + [GradeItem("s1", "q", "7", "slow")])
        assert len(sent) == 2  # five identical checks sent once
        assert all(first[f"k{i}"].correct for i in range(5)) and first["s1"].correct is None
        again = grader.grade([GradeItem("k9", "q", "7", "The answer is 7."), GradeItem("s2", "q", "7", "slow")])
        assert sent[2:] == [("7", "slow", True)]  # the remembered check is not sent again
        assert again["k9"].correct is True and again["s2"].correct is None
        assert store.db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == 8
        grader.close()
