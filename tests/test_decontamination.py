"""Decontamination: problems that share word 8-grams with benchmark problems are found before
anything is generated, reported, and dropped when asked."""

import json
from pathlib import Path

import pytest

from hinttune.core.config import ProblemsConfig
from hinttune.core.decontamination import find_contamination
from hinttune.core.problems import Problem, load_problems

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH = {"mini": ["Find the number of ordered pairs of positive integers whose product is 100.",
                  "What is 2 + 2?"]}


def problem(i, text):
    return Problem(f"id{i}", text, "1", i, {})


def test_a_shared_8gram_matches_and_a_shared_phrase_of_7_words_does_not():
    problems = [problem(0, "Let us find the number of ordered pairs of positive integers whose sum is 9."),
                problem(1, "Count the ordered pairs of positive integers whose sum is 9."),
                problem(2, "what is 2 + 2"),  # shorter than 8 words: equal texts match
                problem(3, "What is 2 + 2 + 2 for a large value of two?")]
    matches = find_contamination(problems, BENCH, 8)
    assert {(m.problem_id, m.benchmark, m.item) for m in matches} == {("id0", "mini", 0), ("id2", "mini", 1)}
    first = next(m for m in matches if m.problem_id == "id0")
    assert first.ngram == "find the number of ordered pairs of positive" and 0 < first.overlap < 1
    assert [m.problem_id for m in find_contamination(problems, BENCH, 8, min_overlap=0.9)] == ["id2"]


def test_report_and_drop_in_a_run(tmp_path):
    pytest.importorskip("math_verify")
    from hinttune.construction.pipeline import build
    from hinttune.core.config import validate_config
    from test_pipeline import config_dict

    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "beta: 2+2", "answer": "4"}) + "\n")
    data = config_dict(tmp_path)
    data["problems"] = {**data["problems"], "decontaminate": "report", "benchmarks": [f"b={bench}"]}
    reported = build(validate_config(data))
    assert reported.summary["contamination"]["problems_matched"] == 1
    assert len(reported.problems) == 4 and "1 problem(s) overlap" in " ".join(reported.notes)
    rows = [json.loads(line) for line in (tmp_path / "run" / "contamination.jsonl").open()]
    assert [(r["benchmark"], r["item"], r["overlap"]) for r in rows] == [("b", 0, 1.0)]
    data["problems"]["decontaminate"] = "drop"
    dropped = build(validate_config(data))
    assert {p.problem.split(":")[0] for p in dropped.problems} == {"alpha", "gamma", "delta"}
    assert dropped.summary["contamination"]["dropped"] == 1


@pytest.mark.skipif(not (SHARED / "benchmarks").is_dir(), reason="needs the shared data (../shared/data)")
def test_the_papers_problems_against_the_six_benchmarks():
    """What the README reports: 143 of the 1,000 share an 8-gram with a benchmark problem
    (mostly AIME phrasing such as "m and n are relatively prime positive integers"), and 3 are
    MATH-500 problems word for word."""
    from hinttune.core.decontamination import load_benchmark_problems

    cfg = ProblemsConfig(source=str(SHARED / "problems.json"), benchmarks=[
        f"{n}={SHARED / 'benchmarks' / n}.jsonl" for n in ("aime24", "aime25", "hmmt25", "math500", "amc23", "gsm8k")])
    matches = find_contamination(load_problems(cfg).problems, load_benchmark_problems(cfg), 8)
    assert len({m.problem_id for m in matches}) == 143
    verbatim = {(m.benchmark, m.item) for m in matches if m.overlap == 1.0}
    assert verbatim == {("math500", 80), ("math500", 103), ("math500", 285)}


def test_without_hub_access_report_names_what_it_did_not_check(tmp_path, monkeypatch):
    """The default (report) on a machine without the hub: the run goes on and says which
    benchmarks were not checked; drop refuses, since it would quietly check less."""
    pytest.importorskip("math_verify")
    from hinttune.construction.pipeline import build
    from hinttune.core import decontamination
    from hinttune.core.config import validate_config
    from hinttune.core.errors import HinttuneError
    from test_pipeline import config_dict

    monkeypatch.setattr(decontamination, "_HUB", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = config_dict(tmp_path)
    data["problems"] = {k: v for k, v in data["problems"].items() if k not in ("decontaminate", "benchmarks")}
    built = build(validate_config(data))
    report = built.summary["contamination"]
    assert sorted(report["unchecked"]) == sorted(decontamination.BENCHMARKS) and report["benchmarks"] == {}
    assert any("not checked against" in n for n in built.notes)
    data["problems"]["decontaminate"] = "drop"
    with pytest.raises(HinttuneError, match="decontamination: benchmark"):
        build(validate_config(data))
