"""The lighteval custom-tasks module: its prompt and token metrics where lighteval is installed,
and, in a side environment built for it (lighteval's pins conflict with ours), that its scores
agree with ``hinttune eval`` on every gold of the six benchmark files."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA, side_python

LIGHTEVAL = "lighteval[math]==0.13.0"
BENCHMARKS = ("aime24", "aime25", "hmmt25", "math500", "amc23", "gsm8k")


TASK_CHECKS = """
import types
from hinttune.evaluation import lighteval_tasks as lt

assert [t.name for t in lt.TASKS_TABLE] == ["ht_" + name for name in {benchmarks!r}]
assert lt.TASKS_TABLE[3].hf_repo == "HuggingFaceH4/MATH-500"
doc = lt.paper_prompt({{"problem": "What is 1+1?", "answer": 2}}, "ht_aime24")
assert doc.query == "What is 1+1?\\n\\nPlease reason step by step, and put your final answer within \\\\boxed{{}}."
assert doc.choices == ["\\\\boxed{{2}}"] and doc.gold_index == 0
response = types.SimpleNamespace(text=["<think>a b c</think> \\\\boxed{{2}}", "<think>a b c d e"])
assert lt.ReasoningTokens().compute(doc, response) == 4.0  # (3 + 5) / 2
assert lt.OutputTokens().compute(doc, response) == 4.5
print("ok")
""".format(benchmarks=BENCHMARKS)


@pytest.mark.slow
def test_tasks_prompt_and_token_metrics(monkeypatch):
    """In lighteval's own environment (its pins conflict with ours: a side environment)."""
    monkeypatch.delenv("EVAL_MODEL_PATH", raising=False)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([str(side_python("lighteval-venv", LIGHTEVAL)), "-c", TASK_CHECKS],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def agreement_cases() -> list[tuple[str, dict, str]]:
    """Every record of the six files, answered right (boxed gold) and wrong."""
    from hinttune.evaluation.benchmarks import BENCHMARKS as DEFS

    cases = []
    for name in BENCHMARKS:
        for line in (SHARED_DATA / "benchmarks" / f"{name}.jsonl").open(encoding="utf-8"):
            record = json.loads(line)
            gold = DEFS[name].answer(str(record["answer"]))
            cases.append((name, record, f"<think>Done.</think> The answer is $\\boxed{{{gold}}}$."))
            cases.append((name, record, "<think>Done.</think> The answer is $\\boxed{0.4142}$."))
    return cases


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "benchmarks").is_dir(), reason="the benchmark files are not here")
def test_lighteval_tasks_score_like_hinttune_eval_on_every_gold(tmp_path):
    from hinttune.core.reasoning import graded_part
    from hinttune.core.grading import MathVerifier
    from hinttune.evaluation.benchmarks import BENCHMARKS as DEFS

    cases = agreement_cases()
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "HINTTUNE_EVAL_N": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([str(side_python("lighteval-venv", LIGHTEVAL)), str(Path(__file__).with_name("lighteval_agreement.py")),
                           str(tmp_path / "cases.json")], capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    lighteval_scores = json.loads(done.stdout.strip().splitlines()[-1])
    verifier = MathVerifier(10)
    try:
        checks = verifier.check_many([(DEFS[b].answer(str(r["answer"])), graded_part(out), True)
                                      for b, r, out in cases])
    finally:
        verifier.close()
    ours = [1.0 if status == "correct" else 0.0 for status, _, _ in checks]
    for name in BENCHMARKS:  # a perfect model scores 1.0 in both, a wrong one 0.0
        rows = [i for i, (b, _, _) in enumerate(cases) if b == name]
        right, wrong = rows[0::2], rows[1::2]
        assert [lighteval_scores[i] for i in right] == [ours[i] for i in right] == [1.0] * len(right), name
        assert [lighteval_scores[i] for i in wrong] == [ours[i] for i in wrong] == [0.0] * len(wrong), name
