"""Every Unicode line separator that JSON keeps raw inside a string (U+0085, U+2028, U+2029)
passes through a run, the viewer, training's reader and evaluation's samples unharmed: JSONL
lines end at "\\n" alone, and a problem, trace or target is never cut inside one."""

import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.core.config import EvalConfig, validate_config
from hinttune.core.files import read_jsonl
from hinttune.evaluation.compare import read_samples
from hinttune.evaluation.evaluate import run_eval
from hinttune.training.sft import load_sft_data

pytest.importorskip("math_verify")

SEPARATORS = "\u0085\u2028\u2029"
TRACE = f"First{SEPARATORS}idea. Wait, second\u2028idea. Wait, third idea."


def problems_file(tmp_path):
    rows = [{"problem": f"alpha{SEPARATORS}: 1+1", "gold_answer": "2"},
            {"problem": f"beta\u2028: 2+2", "gold_answer": "4"},
            {"problem": f"gamma\u0085: 3+3", "gold_answer": "6"}]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert len(path.read_text(encoding="utf-8").splitlines()) > len(rows)  # what used to cut them
    return path, rows


def test_separators_in_problems_traces_and_targets_survive_run_view_and_train(tmp_path):
    source, rows = problems_file(tmp_path)
    think = {r["problem"]: f"<think>\n{TRACE}\n</think>\n\nThe answer\u2029is {r['gold_answer']}." for r in rows}
    cfg = validate_config({
        "run_dir": str(tmp_path / "run"), "problems": {"source": str(source)},
        "think": {"backend": "fake", "model": "think", "answers": think},
        "instruct": {"backend": "fake", "model": "instruct", "default_reply": "The answer is 0.", "answers": {
            "alpha": f"So\u2028the answer is 2.",
            f"beta\u2028: 2+2\n<|assistant|>First{SEPARATORS}idea. Wait, second\u2028idea.": "so\u0085it is 4."}},
        "grading": {"grader": "math"}, "export": {"formats": ["alpaca", "messages"]}})
    result = build(cfg)
    assert result.summary["states"]["incomplete"] == 0
    states = {a.problem: a.state for a in result.assignments}
    assert states == {rows[0]["problem"]: "No-Hint", rows[1]["problem"]: "Sparse-Hint", rows[2]["problem"]: "Full-Hint"}

    run = tmp_path / "run"
    stored = [row["problem"] for _, row in read_jsonl(run / "problems.jsonl")]
    assert stored == [r["problem"] for r in rows]
    episodes = {row["id"]: row["episodes"] for _, row in read_jsonl(run / "segments.jsonl")}
    assert all("".join(e) == TRACE for e in episodes.values())

    outputs = {r["instruction"]: r["output"] for r in json.loads((run / "export" / "hint_tuning.json").read_text())}
    assert outputs[rows[1]["problem"]].endswith(f"First{SEPARATORS}idea. Wait, second\u2028idea.\n</think>\n\nso\u0085it is 4.")
    for name in ("hint_tuning.json", "hint_tuning.messages.jsonl"):  # training's two readers
        data = load_sft_data(str(run / "export" / name))
        assert {r["instruction"]: r["output"] for r in data.records} == outputs

    view = CliRunner().invoke(app, ["view", str(run)])
    assert view.exit_code == 0, view.output
    page = (run / "view" / "index.html").read_text(encoding="utf-8")
    overview = json.loads(page.split("const DATA = ", 1)[1].split(";\n", 1)[0])
    assert [r["problem"] for r in overview["rows"]] == [r["problem"] for r in rows]
    assert "\u2028" not in page and "\u2029" not in page  # line terminators in older JavaScript


def test_separators_in_eval_samples_are_read_back_whole(tmp_path):
    bench = tmp_path / "tiny.jsonl"
    bench.write_text(json.dumps({"problem": "What is\u2028 1+1?", "answer": "2"}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    cfg = EvalConfig(model={"backend": "fake", "model": "m", "default_reply": "So\u2028\u0085the answer is $2$."},
                     benchmarks=["tiny"], data_files={"tiny": str(bench)}, n=2, output_dir=str(tmp_path / "eval"))
    result = run_eval(cfg)
    samples = read_samples({"path": str(tmp_path / "eval"), "backend": "fake"}, "tiny")
    assert len(samples) == 2 and all("\u2028" in json.dumps(s, ensure_ascii=False) for s in samples)
    assert result is not None
