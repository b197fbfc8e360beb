"""Think attempts imported from a file of traces: s1K's fields, a whole-output field, a
problem with no trace (incomplete, named), a malformed row (a clear error), several samples."""

import json

import pytest

from hinttune.construction.pipeline import build
from hinttune.construction.result import failure_causes
from hinttune.core.backends import make_backend
from hinttune.core.backends.base import Request
from hinttune.core.config import Sampling, TracesModel, validate_config
from hinttune.core.errors import HinttuneError
from hinttune.core.store import RunStore

pytest.importorskip("math_verify")

TRACE = "First idea. Wait, second idea. Wait, third idea."
S1K = [{"question": "alpha: 1+1", "solution": "2", "thinking_trajectories": [TRACE], "attempt": "The answer is 2."},
       {"question": "beta: 2+2", "solution": "4", "thinking_trajectories": [TRACE], "attempt": "The answer is 4."}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path, traces, problems=None, **think):
    source = write_jsonl(tmp_path / "problems.jsonl", problems or S1K)
    return validate_config({
        "run_dir": str(tmp_path / "run"), "problems": {"source": str(source)},
        "think": {"backend": "traces", "source": str(traces), **think},
        "instruct": {"backend": "fake", "model": "i", "default_reply": "The answer is 0.", "answers": {
            "alpha": "The answer is 2.", "beta: 2+2\n<|assistant|>First idea.": "so it is 4."}},
        "grading": {"grader": "math"}})


def test_s1k_rows_build_a_dataset_marked_as_imported(tmp_path):
    traces = write_jsonl(tmp_path / "s1k.jsonl", S1K)
    result = build(config(tmp_path, traces))
    assert {a.problem: (a.state, a.k_star) for a in result.assignments} == {
        "alpha: 1+1": ("No-Hint", 0), "beta: 2+2": ("Sparse-Hint", 1)}
    with RunStore(tmp_path / "run") as store:
        rows = store.db.execute("SELECT model, finish_reason, text FROM generations WHERE role='think'").fetchall()
        assert sorted(tuple(r) for r in rows) == [(f"traces:{traces}", "imported",  # in any order
                                                   f"<think>\n{TRACE}\n</think>\n\nThe answer is 2."),
                                                  (f"traces:{traces}", "imported",
                                                   f"<think>\n{TRACE}\n</think>\n\nThe answer is 4.")]
        think = next(s for s in store.status() if s.role == "think")
        assert think.imported == 2
        before = store.count()
    build(config(tmp_path, traces))  # resumes like a generated run: nothing new
    with RunStore(tmp_path / "run") as store:
        assert store.count() == before


def test_a_problem_without_a_trace_is_incomplete_and_named(tmp_path):
    traces = write_jsonl(tmp_path / "s1k.jsonl", S1K[:1])
    result = build(config(tmp_path, traces))
    beta = next(a for a in result.assignments if a.problem.startswith("beta"))
    assert beta.state == "incomplete" and f"no trace for this problem in {traces}" in beta.note
    assert any("think attempt failed" in cause for cause in failure_causes(result))
    write_jsonl(traces, S1K)  # the file gains the trace: the next run takes it
    fixed = build(config(tmp_path, traces))
    assert "incomplete" not in {a.state for a in fixed.assignments}


def test_a_whole_output_field_and_mapped_names(tmp_path):
    rows = [{"prompt": "alpha: 1+1", "completion": f"<think>\n{TRACE}\n</think>\n\nThe answer is 2."}]
    traces = write_jsonl(tmp_path / "gen.jsonl", rows)
    backend = make_backend(TracesModel(backend="traces", source=str(traces), problem_field="prompt",
                                       output_field="completion"))
    request = Request([{"role": "user", "content": "alpha:  1+1"}], Sampling())  # spacing aside
    (_, [gen]), = backend.generate([request])
    assert gen.text == rows[0]["completion"] and gen.finish_reason == "imported"
    templated = make_backend(TracesModel(backend="traces", source=str(traces), problem_field="prompt",
                                         output_field="completion", prompt_template="Solve: {problem}\nBe brief."))
    (_, [gen]), = templated.generate([Request([{"role": "user", "content": "Solve: alpha: 1+1\nBe brief."}], Sampling())])
    assert gen.text == rows[0]["completion"]


def test_a_malformed_row_names_file_record_and_field(tmp_path):
    traces = write_jsonl(tmp_path / "bad.jsonl", [S1K[0], {"question": "beta: 2+2", "attempt": "4"}])
    backend = make_backend(TracesModel(backend="traces", source=str(traces)))
    with pytest.raises(HinttuneError, match=r"bad.jsonl: line 2: no reasoning .*set think.reasoning_field"):
        list(backend.generate([Request([{"role": "user", "content": "alpha: 1+1"}], Sampling())]))
    empty = write_jsonl(tmp_path / "empty.jsonl", [{**S1K[0], "attempt": "  "}])
    with pytest.raises(HinttuneError, match=r"empty.jsonl: line 1: field 'attempt' \(answer\) is empty"):
        list(make_backend(TracesModel(backend="traces", source=str(empty))).generate(
            [Request([{"role": "user", "content": "alpha: 1+1"}], Sampling())]))


def test_the_sample_th_request_gets_the_sample_th_trace(tmp_path):
    rows = [S1K[0], {**S1K[0], "attempt": "Twice: 2."}]
    backend = make_backend(TracesModel(backend="traces", source=str(write_jsonl(tmp_path / "t.jsonl", rows))))
    requests = [Request([{"role": "user", "content": "alpha: 1+1"}], Sampling(), sample=s) for s in range(3)]
    out = dict(backend.generate(requests))
    assert out[0][0].text.endswith("The answer is 2.") and out[1][0].text.endswith("Twice: 2.")
    assert out[2][0].failed and "2 trace(s), not a sample 2" in out[2][0].error


def test_a_baseline_that_must_generate_with_the_think_model_is_refused(tmp_path):
    traces = write_jsonl(tmp_path / "s1k.jsonl", S1K)
    data = config(tmp_path, traces).model_dump(mode="json")
    with pytest.raises(HinttuneError, match="first-correct.*imported traces"):
        validate_config({**data, "assemble": {"baselines": ["first-correct"]}})
