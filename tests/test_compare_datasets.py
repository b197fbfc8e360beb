"""`hinttune compare` on datasets: a run's export beside its baselines, agreement per problem,
the plot, and inputs it must refuse."""

import json

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.outputs.compare_datasets import agreement, dataset_rows, load_dataset
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config
from test_pipeline import config_dict

pytest.importorskip("math_verify")
runner = CliRunner()


@pytest.fixture
def run(tmp_path):
    build(validate_config(config_dict(tmp_path, assemble={"baselines": ["full", "two-state"]})))
    return tmp_path / "run"


def test_a_run_beside_its_baselines(run, tmp_path):
    paths = [str(run), str(run / "export" / "baselines" / "full"),
             str(run / "export" / "baselines" / "two-state" / "two-state.json")]
    loaded = [load_dataset(p) for p in paths]
    assert [d["label"] for d in loaded] == ["run", "full", "two-state"]
    rows = dataset_rows(loaded)
    assert rows[0]["states"] == {"No-Hint": 1, "Sparse-Hint": 1, "Full-Hint": 1}
    assert rows[1]["states"] == {"full trace": 3} and rows[1]["trace_share"] == 1.0
    # two-state: No-Hint (alpha) kept, beta Sparse -> Full, gamma Full: two of three the same
    assert rows[2]["agreement"] == {"both": 3, "only_first": 0, "only_this": 0, "same_state": 2,
                                    "same_output_tokens": 2}
    plot = tmp_path / "datasets.png"
    result = runner.invoke(app, ["compare", *paths, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "datasets side by side" in result.output and "2/3" in result.output
    assert plot.stat().st_size > 10_000


def test_agreement_counts_problems_on_one_side_only():
    first = [{"id": "a", "state": "No-Hint", "output_tokens": 5}, {"id": "b", "state": "Full-Hint", "output_tokens": 9}]
    other = [{"id": "b", "state": "Full-Hint", "output_tokens": 9}, {"id": "c", "state": "No-Hint", "output_tokens": 3}]
    assert agreement(first, other) == {"both": 1, "only_first": 1, "only_this": 1, "same_state": 1,
                                       "same_output_tokens": 1}


def test_bad_inputs_are_named(run, tmp_path):
    results = tmp_path / "eval"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({"model": "m", "benchmarks": {}}))
    mixed = runner.invoke(app, ["compare", str(run), str(results)])
    assert mixed.exit_code == 2 and "not both" in mixed.output
    broken = tmp_path / "broken.meta.jsonl"
    broken.write_text(json.dumps({"id": "a", "state": "No-Hint"}) + "\n")
    with pytest.raises(Exception, match=r"broken.meta.jsonl: line 1: no field 'output_tokens'"):
        load_dataset(str(broken))


def test_a_path_that_does_not_exist_is_said_so(tmp_path):
    gone = runner.invoke(app, ["compare", str(tmp_path / "nowhere"), str(tmp_path / "nowhere")])
    assert gone.exit_code == 2 and "nowhere: no such file or folder" in " ".join(gone.output.split())


@pytest.mark.parametrize("values", [[10, 20], [1, 2, 3], [5], [1, 100, 101, 102], list(range(11))])
def test_p90_is_never_below_the_median(values):
    from statistics import median

    from hinttune.construction.outputs.compare_datasets import percentile

    assert percentile(values, 0.5) == median(values) <= percentile(values, 0.9) <= max(values)
    assert percentile(list(range(11)), 0.9) == 9
