"""Baselines built from the run store: shortest-of-n's branches, and its run on imported traces."""

import json

import pytest

from hinttune.construction.variants.baselines import ThinkSample, shortest_of_n
from hinttune.construction.pipeline import build
from hinttune.construction.states import ProblemFacts
from hinttune.core.config import validate_config

pytest.importorskip("math_verify")


def facts(pid):
    return ProblemFacts(pid, f"{pid}?", "", None, "", None, ["a", "b"], None)


def trace(reasoning, answer="The answer is 2."):
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def test_shortest_of_n_takes_the_shortest_correct_and_waits_for_every_sample():
    samples = {"p1": [ThinkSample(trace("long " * 9), True), ThinkSample(trace("short"), True),
                      ThinkSample(trace("shortest wrong"), False)],
               "p2": [ThinkSample(trace("x"), False), ThinkSample(trace("y"), False)],
               "p3": [ThinkSample(trace("z"), True), ThinkSample(missing="think sample 1 failed: boom")]}
    out = {a.problem_id: a for a in shortest_of_n([facts("p1"), facts("p2"), facts("p3")], samples,
                                                  lambda text: len(text.split()))}
    assert (out["p1"].state, out["p1"].thinking.strip(), out["p1"].note) == ("full trace", "short", "shortest of 2 correct of 3")
    assert out["p2"].state == "unsolved" and out["p2"].note == "none of 2 think samples graded correct"
    assert out["p3"].state == "incomplete" and out["p3"].note.startswith("think sample 1 failed: boom")


def test_shortest_of_n_on_imported_samples(tmp_path):
    rows = [{"question": "alpha: 1+1", "solution": "2", "reasoning": "One. Wait, two. Wait, three. Wait, four.", "attempt": "The answer is 2."},
            {"question": "alpha: 1+1", "solution": "2", "reasoning": "Two.", "attempt": "The answer is 2."},
            {"question": "beta: 2+2", "solution": "4", "reasoning": "Hmm.", "attempt": "The answer is 5."},
            {"question": "beta: 2+2", "solution": "4", "reasoning": "Four, surely. Wait, yes.", "attempt": "The answer is 4."}]
    source = tmp_path / "traces.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = validate_config({
        "run_dir": str(tmp_path / "run"), "problems": {"source": str(source)},
        "think": {"backend": "traces", "source": str(source)}, "attempts": {"samples": 2},
        "instruct": {"backend": "fake", "model": "i", "default_reply": "The answer is 0."},
        "grading": {"grader": "math"}, "assemble": {"baselines": ["shortest-of-n"]}})
    result = build(cfg)
    out = {r["instruction"]: r["output"] for r in json.loads(
        (tmp_path / "run" / "export" / "baselines" / "shortest-of-n" / "shortest-of-n.json").read_text())}
    assert out == {"alpha: 1+1": trace("Two."), "beta: 2+2": trace("Four, surely. Wait, yes.", "The answer is 4.")}
    assert result.summary["baselines"]["shortest-of-n"]["records"] == 2
