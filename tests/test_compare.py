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
    test = paired_difference(base, tuned, "math500")
    diff, low, high = test["difference"], test["low"], test["high"]
    assert diff == pytest.approx((0.5 + 0.5 + 0) / 3) and 0 <= low <= diff <= high <= 0.5
    assert test["problems"] == 3 and test["stderr"] == pytest.approx(0.2887 / 3 ** 0.5, rel=1e-3)
    assert 0 < test["p_value"] <= 1


def test_the_permutation_p_value_tells_a_real_difference_from_noise():
    from hinttune.evaluation.metrics import paired_test

    better = paired_test([0.0] * 30, [1.0] * 20 + [0.0] * 10)
    assert better["p_value"] < 0.001 and better["difference"] == pytest.approx(2 / 3)
    mixed = paired_test([0.0, 1.0] * 15, [1.0, 0.0] * 15)  # as many gains as losses
    assert mixed["p_value"] > 0.5 and mixed["difference"] == 0
    assert paired_test([0.5] * 5, [0.5] * 5)["p_value"] == 1.0


def test_undecided_checks_are_left_out_of_every_accuracy(tmp_path):
    base = load_results(str(write_eval(tmp_path / "a", "a", {"p1": [(True, 10)], "p2": [(False, 10)]})))
    other = write_eval(tmp_path / "b", "b", {"p1": [(True, 10)], "p2": [(False, 10)]})
    rows = [json.loads(line) for line in (other / "samples_math500.jsonl").read_text().splitlines()]
    rows[1]["check"] = "timeout"  # p2's only sample could not be decided: p2 drops out of the pair
    (other / "samples_math500.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = paired_difference(base, load_results(str(other)), "math500")
    assert test["problems"] == 1 and test["difference"] == 0


def test_any_reference_and_every_pair(tmp_path):
    from typer.testing import CliRunner

    from hinttune.cli import app

    a = write_eval(tmp_path / "a", "a", {"p1": [(False, 100)], "p2": [(False, 100)]})
    b = write_eval(tmp_path / "b", "b", {"p1": [(True, 50)], "p2": [(False, 50)]})
    c = write_eval(tmp_path / "c", "c", {"p1": [(True, 25)], "p2": [(True, 25)]})
    results = [load_results(str(x)) for x in (a, b, c)]
    rows = comparison_rows(results, reference=1)
    assert [r["difference"] is None for r in rows] == [False, True, False]
    assert rows[0]["reduction"] == pytest.approx(-1.0) and rows[2]["reduction"] == pytest.approx(0.5)
    from hinttune.evaluation.compare import all_pairs

    pairs = {(p["first"], p["second"]): p["difference"] for p in all_pairs(results)}
    assert pairs == {("a", "b"): 0.5, ("a", "c"): 1.0, ("b", "c"): 0.5}
    out = CliRunner().invoke(app, ["compare", str(a), str(b), str(c), "-r", "b", "--all-pairs",
                                   "--plot", str(tmp_path / "p.png")], terminal_width=250)
    assert out.exit_code == 0, out.output
    assert "against b" in out.output and "every pair" in out.output and "mean token reduction: math500" in out.output
    bad = CliRunner().invoke(app, ["compare", str(a), str(b), "-r", "zzz", "--plot", str(tmp_path / "p.png")])
    assert bad.exit_code == 2 and "--reference 'zzz': not one of the results" in bad.output


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
