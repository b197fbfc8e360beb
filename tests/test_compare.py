"""compare: lighteval results beside ours, the paired difference, budget curves."""

import json

import pytest

from hinttune.evaluation.compare import comparison_rows, load_results, paired_difference
from hinttune.evaluation.compare_plot import budget_curve, comparison_plot


def lighteval_file(tmp_path):
    """The shape lighteval 0.13 writes (results/<model>/results_<date>.json)."""
    folder = tmp_path / "le" / "results" / "ht-4b"
    folder.mkdir(parents=True)
    data = {"config_general": {"model_name": "runs/ht-4b"}, "results": {
        "custom:ht_math500:0": {"avg@n:n=16": 0.8, "avg@n:n=16_stderr": 0.02, "pass@k:k=1&n=16": 0.8,
                                "reasoning_tokens": 900.0, "output_tokens": 1000.0},
        "aime25:local:0": {"avg@n:n=1": 0.1, "avg@n:n=8": 0.2, "avg@n:n=8_stderr": 0.03},
        "all": {"avg@n:n=16": 0.8}}}
    (folder / "results_2026-11-25T10-00-00.json").write_text(json.dumps(data))
    return tmp_path / "le"


def write_eval(folder, model, outcomes):
    """A results.json and samples file: outcomes per problem id as (correct, tokens) lists."""
    folder.mkdir(parents=True)
    samples = [{"id": pid, "sample": i, "correct": c, "output_tokens": t}
               for pid, runs in outcomes.items() for i, (c, t) in enumerate(runs)]
    (folder / "samples_math500.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    acc = sum(s["correct"] for s in samples) / len(samples)
    tokens = sum(s["output_tokens"] for s in samples) / len(samples)
    (folder / "results.json").write_text(json.dumps({"model": model, "backend": "fake", "benchmarks": {
        "math500": {"avg@n": acc, "stderr": 0.0, "mean_output_tokens": tokens,
                    "mean_reasoning_tokens": tokens, "samples": len(samples)}}}))
    return folder


def test_lighteval_results_sit_beside_ours(tmp_path):
    loaded = load_results(str(lighteval_file(tmp_path)))
    assert loaded["label"] == "ht-4b" and loaded["backend"] == "lighteval"
    m = loaded["benchmarks"]["math500"]
    assert (m["avg@n"], m["stderr"], m["n"], m["mean_output_tokens"]) == (0.8, 0.02, 16, 1000.0)
    aime = loaded["benchmarks"]["aime25"]  # the official task file's names; its largest n
    assert (aime["avg@n"], aime["n"]) == (0.2, 8)
    base = write_eval(tmp_path / "base", "m", {"p1": [(True, 2000)], "p2": [(False, 3000)]})
    rows = comparison_rows([load_results(str(base)), loaded])
    assert rows[1]["difference"] is None  # no samples to pair from lighteval's side
    assert rows[1]["reduction"] == pytest.approx(1 - rows[1]["tokens"] / 2500)


def test_paired_difference_over_the_common_problems(tmp_path):
    base = load_results(str(write_eval(tmp_path / "a", "a", {
        "p1": [(True, 10), (False, 10)], "p2": [(False, 10), (False, 10)], "p3": [(True, 10), (True, 10)]})))
    tuned = load_results(str(write_eval(tmp_path / "b", "b", {
        "p1": [(True, 5), (True, 5)], "p2": [(True, 5), (False, 5)], "p3": [(True, 5), (True, 5)],
        "p4": [(True, 5), (True, 5)]})))  # p4 was not in the baseline: not paired
    diff, low, high = paired_difference(base, tuned, "math500")
    assert diff == pytest.approx((0.5 + 0.5 + 0) / 3) and 0 <= low <= diff <= high <= 0.5


def test_budget_curve_counts_what_fits(tmp_path):
    samples = [{"id": "p1", "correct": True, "output_tokens": 100},
               {"id": "p1", "correct": True, "output_tokens": 300},
               {"id": "p2", "correct": False, "output_tokens": 50}]
    assert budget_curve(samples, [50, 100, 300]) == [0.0, 0.25, 0.5]
    a = write_eval(tmp_path / "a", "a", {"p1": [(True, 100), (False, 400)]})
    b = write_eval(tmp_path / "b", "b", {"p1": [(True, 50), (True, 60)]})
    results = [load_results(str(a)), load_results(str(b))]
    path = comparison_plot(comparison_rows(results), results, tmp_path / "cmp.png")
    assert path is not None and path.stat().st_size > 20000
