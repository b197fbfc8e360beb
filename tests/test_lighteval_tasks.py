"""The lighteval custom-tasks module (runs where lighteval is installed)."""

import types

import pytest

pytest.importorskip("lighteval")


def test_tasks_prompt_and_token_metrics(monkeypatch):
    monkeypatch.delenv("EVAL_MODEL_PATH", raising=False)
    from hinttune import lighteval_tasks as lt

    assert [t.name for t in lt.TASKS_TABLE] == ["ht_aime24", "ht_aime25", "ht_hmmt25", "ht_math500"]
    assert lt.TASKS_TABLE[3].hf_repo == "HuggingFaceH4/MATH-500"
    doc = lt.paper_prompt({"problem": "What is 1+1?", "answer": 2}, "ht_aime24")
    assert doc.query == "What is 1+1?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert doc.choices == ["2"] and doc.gold_index == 0
    response = types.SimpleNamespace(text=["<think>a b c</think> \\boxed{2}", "<think>a b c d e"])
    assert lt.ReasoningTokens().compute(doc, response) == 4.0  # (3 + 5) / 2
    assert lt.OutputTokens().compute(doc, response) == 4.5
