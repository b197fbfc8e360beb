"""hinttune experiment: datasets resolved in a run, training lengths at equal compute, jobs and
their fingerprints, skipping what is done, one job at a time, and the table. Training is
simulated here (a finished job's marker); the slow test trains and evaluates for real."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.core.config import ExperimentConfig, validate_config
from hinttune.core.errors import HinttuneError
from hinttune.core.files import write_json
from hinttune.experiment.datasets import resolve, training_steps
from hinttune.experiment.jobs import MARKER, plan, run_job
from hinttune.experiment.runner import report

from test_pipeline import config_dict

pytest.importorskip("math_verify")
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A fake-backend run with two baselines: 3 Hint Tuning records, 2 full, 3 two-state."""
    tmp = tmp_path_factory.mktemp("exp")
    build(validate_config(config_dict(tmp, assemble={"baselines": ["full", "two-state"]})))
    return tmp / "run"


def experiment(run, tmp_path, **extra):
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"problem": p, "answer": a}) + "\n" for p, a in
                             [("alpha: 1+1 again", "2"), ("what is 2+2", "4"), ("what is 5+5", "10")]))
    data = {"name": "t", "output_dir": str(tmp_path / "exp"), "run": str(run),
            "datasets": ["hint-tuning", "full", "two-state"],
            "training": {"model": "some/model", "set": {"global_batch_size": 2, "num_train_epochs": 2}},
            "evaluation": {"backend": "fake", "model": {"answers": {"2+2": "The answer is 4.", "alpha": "2"}},
                           "set": {"benchmarks": ["mini"], "data_files": {"mini": str(bench)}, "n": 2}},
            **extra}
    return validate_config(data, "test", ExperimentConfig)


def test_the_reference_must_be_one_of_the_datasets(run, tmp_path):
    with pytest.raises(HinttuneError, match="reference 'two' is not one of the datasets"):
        experiment(run, tmp_path, reference="two")
    with pytest.raises(HinttuneError, match="each name once"):
        experiment(run, tmp_path, datasets=["hint-tuning", "hint-tuning"])


def test_datasets_resolve_in_the_run_and_a_missing_baseline_says_how_to_build_it(run, tmp_path):
    datasets = {d.name: d for d in resolve(experiment(run, tmp_path))}
    assert {n: d.records for n, d in datasets.items()} == {"hint-tuning": 3, "full": 3, "two-state": 3}
    assert datasets["full"].path.endswith("baselines/full/full.json")
    with pytest.raises(HinttuneError, match=r"assemble.baselines=\[matched-random\]"):
        resolve(experiment(run, tmp_path, datasets=["hint-tuning", "matched-random"]))


def test_a_missing_run_or_baseline_is_built_first(tmp_path):
    from hinttune.experiment.runner import jobs_of

    run_config = tmp_path / "run.yaml"
    run_config.write_text(yaml.safe_dump(config_dict(tmp_path)))
    cfg = experiment(tmp_path / "fresh", tmp_path, datasets=["hint-tuning", "full"], build=str(run_config),
                     build_set=["assemble.baselines=[full]"])
    assert not (tmp_path / "fresh").exists()
    jobs = jobs_of(cfg)  # builds the run, with the baseline, into `run`
    assert (tmp_path / "fresh" / "export" / "baselines" / "full" / "dataset_info.json").exists()
    assert [j.id for j in jobs if j.kind == "train"] == ["train:hint-tuning:s42", "train:full:s42"]


@pytest.mark.parametrize("match", ["epochs", "steps", "tokens"])
def test_equal_compute(run, tmp_path, match):
    five = tmp_path / "five.json"  # a dataset of another size, with short records, by path
    five.write_text(json.dumps([{"instruction": f"q{i}", "input": "", "output": "<think>\nx\n</think>\n\n1"}
                                for i in range(5)]))
    cfg = experiment(run, tmp_path, datasets=["hint-tuning", "full", f"five={five}"],
                     training={"model": "m", "match": match, "set": {"global_batch_size": 2, "num_train_epochs": 2}})
    jobs = {j.dataset: j.config.max_steps for j in plan(cfg) if j.kind == "train"}
    datasets = {d.name: d for d in resolve(cfg)}
    if match == "epochs":  # ceil(records / 2) * 2 epochs
        assert jobs == {"hint-tuning": 4, "full": 4, "five": 6}
    elif match == "steps":
        assert jobs == {"hint-tuning": 4, "full": 4, "five": 4}
    else:  # as many characters as the reference's 4 steps: shorter records, more steps
        ref = datasets["hint-tuning"].mean_chars
        assert jobs["hint-tuning"] == 4 and jobs["five"] > 4
        assert jobs["five"] == round(4 * ref / datasets["five"].mean_chars)
    assert training_steps(cfg, plan(cfg)[0].config, list(datasets.values()))["hint-tuning"] == 4


def test_jobs_and_fingerprints(run, tmp_path):
    cfg = experiment(run, tmp_path, training={"model": "m", "seeds": [1, 2]})
    jobs = plan(cfg)
    assert [j.id for j in jobs][:2] == ["train:hint-tuning:s1", "train:hint-tuning:s2"]
    assert [j.id for j in jobs if j.kind == "eval"][:2] == ["eval:base", "eval:hint-tuning:s1"]
    assert len(jobs) == 3 * 2 + 1 + 3 * 2
    assert len({j.fingerprint for j in jobs}) == len(jobs)
    again = {j.id: j.fingerprint for j in plan(cfg)}
    assert again == {j.id: j.fingerprint for j in jobs}  # stable
    changed = {j.id: j.fingerprint for j in plan(experiment(run, tmp_path, training={
        "model": "m", "seeds": [1, 2], "set": {"learning_rate": 2e-5}}))}
    # a recipe change retrains every model and so re-evaluates it; the base is unchanged
    assert changed["eval:base"] == again["eval:base"]
    assert all(changed[i] != again[i] for i in again if i != "eval:base")


def pretend_trained(jobs):
    for job in jobs:
        if job.kind == "train":
            write_json(job.folder / MARKER, {"job": job.id, "fingerprint": job.fingerprint})


def test_evaluations_wait_for_their_training_then_the_table(run, tmp_path):
    cfg = experiment(run, tmp_path)
    jobs = plan(cfg)
    evaluation = next(j for j in jobs if j.id == "eval:full:s42")
    with pytest.raises(HinttuneError, match="evaluates the model of train:full:s42, which has not run"):
        run_job(cfg, evaluation, jobs)
    pretend_trained(jobs)
    for job in jobs:
        if job.kind == "eval":
            assert run_job(cfg, job, jobs) is True
    assert not any(run_job(cfg, job, jobs) for job in jobs)  # everything done: nothing runs again
    table, written = report(cfg, jobs)
    assert [p.name for p in written][:2] == ["experiment.json", "experiment.md"]
    rows = {r["model"]: r for r in table["rows"]}
    assert set(rows) == {"base", "hint-tuning", "full", "two-state"}
    # the fake model answers 2+2 and alpha: 2 of 3 problems, whatever the weights
    assert all(r["accuracy"] == pytest.approx(2 / 3) and r["problems"] == 3 for r in rows.values())
    assert rows["hint-tuning"]["vs_reference"] is None
    assert rows["full"]["vs_reference"]["difference"] == 0 and rows["full"]["vs_reference"]["p_value"] == 1
    # "alpha: 1+1 again" shares no 8-word n-gram with "alpha: 1+1" (too short: equal text only)
    assert rows["full"]["overlap"] == 0 and rows["base"]["overlap"] is None
    markdown = (tmp_path / "exp" / "experiment.md").read_text()
    assert "| mini | full | 66.7 [" in markdown and "equal steps" in markdown
    shown = runner.invoke(app, ["view", str(tmp_path / "exp")])  # the page of the table
    assert shown.exit_code == 0, shown.output
    page = (tmp_path / "exp" / "view" / "index.html").read_text()
    assert '<a href="../evals/full-s42">full</a>' in page and "66.7 [" in page and "&lt;" not in page


def test_inputs_that_change_run_the_job_again_from_scratch(run, tmp_path):
    cfg = experiment(run, tmp_path)
    jobs = plan(cfg)
    pretend_trained(jobs)
    base = next(j for j in jobs if j.id == "eval:base")
    assert run_job(cfg, base, jobs)
    (base.folder / "leftover.txt").write_text("from the old inputs")
    changed = next(j for j in plan(experiment(run, tmp_path, evaluation={
        "backend": "fake", "set": {"benchmarks": ["mini"], "data_files": cfg.evaluation.set["data_files"], "n": 3}}))
        if j.id == "eval:base")
    assert not changed.done() and run_job(cfg, changed, jobs)
    assert not (base.folder / "leftover.txt").exists() and changed.done()


def test_a_failed_generation_leaves_the_evaluation_incomplete_until_it_is_retried(run, tmp_path):
    cfg = experiment(run, tmp_path)
    failing = experiment(run, tmp_path, evaluation={**cfg.evaluation.model_dump(), "model": {
        "answers": {"2+2": "!fail", "alpha": "2"}}})
    base = next(j for j in plan(failing) if j.id == "eval:base")
    with pytest.raises(HinttuneError, match="eval:base: 2 generations failed .*run the experiment again"):
        run_job(failing, base, plan(failing))
    assert not base.done() and base.marker()["done"] is False  # begun, not done: never in the table
    with pytest.raises(HinttuneError, match="2 generations failed"):  # the next run asks them again
        run_job(failing, base, plan(failing))
    table, _ = report(failing, plan(failing))
    assert "eval:base" in table["missing_jobs"] and "base" not in {r["model"] for r in table["rows"]}


def test_a_job_begun_with_other_inputs_starts_from_an_empty_folder(run, tmp_path):
    cfg = experiment(run, tmp_path)
    jobs = plan(cfg)
    pretend_trained(jobs)
    base = next(j for j in jobs if j.id == "eval:base")
    write_json(base.folder / MARKER, {"job": base.id, "fingerprint": "other inputs", "done": False})
    (base.folder / "store.sqlite").write_text("samples of the other inputs")
    assert run_job(cfg, base, jobs) and base.done()
    assert (base.folder / "store.sqlite").read_bytes()[:15] == b"SQLite format 3"


def test_the_command_lists_runs_one_job_and_reports(run, tmp_path):
    cfg = experiment(run, tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    listed = runner.invoke(app, ["experiment", "-c", str(path), "--jobs", "--stage", "eval"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.split() == ["eval:base", "eval:hint-tuning:s42", "eval:full:s42", "eval:two-state:s42"]
    one = runner.invoke(app, ["experiment", "-c", str(path), "--stage", "eval", "--job-index", "0"])
    assert one.exit_code == 0, one.output
    assert (tmp_path / "exp" / "evals" / "base" / MARKER).exists()
    partial = runner.invoke(app, ["experiment", "-c", str(path), "--report"])
    assert partial.exit_code == 3 and "6 jobs not run yet" in partial.output
    wrong = runner.invoke(app, ["experiment", "-c", str(path), "--job-index", "99"])
    assert wrong.exit_code != 0 and "there are 7 jobs" in wrong.output


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_demo_experiment_end_to_end_on_cpu(tmp_path, demo_run):
    """The README's experiment on the demo run (built with its two baselines): three models
    trained a few steps on the demo model, four evaluated, the table written; run again,
    nothing runs. (Building the run when it is missing is tested above on the fake backend.)"""
    args = ["experiment", "-c", "demo", "--set", f"run={demo_run}", "--set", f"output_dir={tmp_path / 'exp'}"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    table = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert {r["model"] for r in table["rows"]} == {"base", "hint-tuning", "full", "two-state"}
    assert table["steps"] == {"hint-tuning": 3, "full": 3, "two-state": 3}  # equal steps: the reference's
    assert all(r["problems"] == 8 and 0 <= r["accuracy"] <= 1 and r["tokens"] > 0 for r in table["rows"])
    assert all(r["vs_reference"]["problems"] == 8 for r in table["rows"] if r["model"] != "hint-tuning")
    cards = [(tmp_path / "exp" / "models" / f"{d}-s1" / "README.md").read_text() for d in ("full", "two-state")]
    assert all("as run: 3 optimizer steps" in card for card in cards), cards[0][:600]
    assert (tmp_path / "exp" / "experiment.png").stat().st_size > 10_000
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and again.output.count("done before, skipped") == 7, again.output
    assert json.loads((tmp_path / "exp" / "experiment.json").read_text()) == table


def test_the_example_experiment_is_valid():
    from pathlib import Path

    from hinttune.core.config import load_experiment

    cfg = load_experiment(str(Path(__file__).resolve().parents[1] / "examples" / "experiment-paper.yaml"))
    assert cfg.reference == "hint-tuning" and len(cfg.training.seeds) == 3 and cfg.evaluation.preset == "paper"
