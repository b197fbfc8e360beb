import json
import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hinttune.cli import app
from loopback import Scripted

runner = CliRunner()
SECRET = "sk-live-never-write-me-987"


def fake_config(tmp_path, instruct=None, problems=None):
    problems_file = tmp_path / "problems.json"
    problems_file.write_text(json.dumps(problems or [
        {"problem": "What is 2+2?", "gold_answer": "4"},
        {"problem": "What is 3+3?", "gold_answer": "6"}]))
    cfg = {"run_dir": str(tmp_path / "run"), "problems": {"source": str(problems_file)},
           "think": {"backend": "fake", "model": "t", "response_prefix": "<think>\n",
                     "default_reply": "2 plus 2\n</think>\n\nThe answer is 4."},
           "instruct": instruct or {"backend": "fake", "model": "i", "default_reply": "It is 4."}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_attempts_then_status(tmp_path):
    config = fake_config(tmp_path)
    result = runner.invoke(app, ["attempts", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 problems" in result.output and "attempts" in result.output
    run = tmp_path / "run"
    assert {"config.yaml", "problems.jsonl", "store.sqlite", "run.log"} <= {p.name for p in run.iterdir()}
    assert len((run / "problems.jsonl").read_text().splitlines()) == 2
    status = runner.invoke(app, ["status", str(run)])
    assert status.exit_code == 0 and "2 (100%)" in status.output


def test_overrides_from_the_command_line(tmp_path):
    config = fake_config(tmp_path)
    result = runner.invoke(app, ["attempts", "-c", str(config), "-o", str(tmp_path / "other"),
                                 "--set", "attempts.samples=2"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((tmp_path / "other" / "config.yaml").read_text())
    assert saved["attempts"]["samples"] == 2


@pytest.mark.parametrize("args, message", [
    (["--set", "think.temprature=1"], "think.temprature: unknown key"),
    (["--problems", "nowhere.jsonl"], "nowhere.jsonl: file not found"),
])
def test_errors_are_one_clear_line(tmp_path, args, message):
    result = runner.invoke(app, ["attempts", "-c", str(fake_config(tmp_path)), *args])
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_bad_record_error_names_file_record_and_field(tmp_path):
    config = fake_config(tmp_path, problems=[{"problem": "x", "gold_answer": "1"}, {"problem": "y"}])
    result = runner.invoke(app, ["attempts", "-c", str(config)])
    assert result.exit_code == 2 and "problems.json: record 1: no gold answer field" in result.output


def test_status_of_a_non_run(tmp_path):
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_config_shows_the_resolved_preset():
    result = runner.invoke(app, ["config", "-c", "paper", "--set", "think.tensor_parallel_size=4"])
    assert result.exit_code == 0
    cfg = yaml.safe_load(result.output)
    assert cfg["think"]["tensor_parallel_size"] == 4 and cfg["think"]["backend"] == "vllm"
    assert "demo" in runner.invoke(app, ["presets"]).output


def test_api_key_never_reaches_logs_or_outputs(tmp_path, scripted, monkeypatch):
    monkeypatch.setenv("PROVIDER_KEY", SECRET)
    config = fake_config(tmp_path, instruct={
        "backend": "openai", "model": "served", "base_url": scripted, "api_key_env": "PROVIDER_KEY",
        "continue_mode": "chat_fallback", "max_retries": 0})
    (tmp_path / "problems.json").write_text(json.dumps([
        {"problem": "fine what is 2+2?", "gold_answer": "4"},
        {"problem": "dead what is 3+3?", "gold_answer": "6"}]))
    result = runner.invoke(app, ["attempts", "-c", str(config), "-v"])
    assert result.exit_code == 3, result.output  # one problem's attempt failed: said, non-zero
    assert "1 × instruct attempt failed: HTTP 500" in result.output
    assert Scripted.auth and all(a == f"Bearer {SECRET}" for a in Scripted.auth)
    assert SECRET not in result.output
    for root, _, files in os.walk(tmp_path / "run"):
        for name in files:
            assert SECRET.encode() not in open(os.path.join(root, name), "rb").read(), name
    log = (tmp_path / "run" / "run.log").read_text()
    assert "failed" in log  # the dead request is logged as failed, without the key


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("hinttune ")


def test_own_problems_get_their_own_run_dir_and_the_models_are_named(tmp_path, monkeypatch):
    from hinttune.cli import default_run_dir

    assert default_run_dir("data/my problems.jsonl") == Path("runs/my-problems")
    assert default_run_dir("simplescaling/s1K-1.1") == Path("runs/s1K-1.1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.jsonl").write_text(json.dumps({"problem": "What is 2+2?", "gold_answer": "4"}) + "\n")
    result = runner.invoke(app, ["config", "-p", "mine.jsonl"])
    assert yaml.safe_load(result.output)["run_dir"] == "runs/mine"
    result = runner.invoke(app, ["config", "-p", "mine.jsonl", "-o", "elsewhere"])
    assert yaml.safe_load(result.output)["run_dir"] == "elsewhere"  # an explicit choice wins
    config = fake_config(tmp_path)
    result = runner.invoke(app, ["attempts", "-c", str(config)])
    assert "think: t (fake) · instruct: i (fake)" in result.output


def test_export_lists_what_it_wrote_and_drops_stale_formats(tmp_path):
    config = fake_config(tmp_path)
    result = runner.invoke(app, ["export", "-c", str(config), "--set", "grading.grader=math",
                                 "--set", "export.formats=[alpaca,messages]"])
    assert "written:" in result.output and "hint_tuning.messages.jsonl" in result.output
    (line,) = [x for x in result.output.splitlines() if " records (" in x]
    kept = int(line.split()[0])  # the records line counts records; the problems left out apart
    assert sum(int(n) for n in re.findall(r": (\d+)", line.split(";")[0])) == kept
    assert "unsolved" not in line.split(";")[0]
    export = tmp_path / "run" / "export"
    assert (export / "hint_tuning.messages.jsonl").exists()
    runner.invoke(app, ["export", "-c", str(config), "--set", "grading.grader=math",
                        "--set", "export.formats=[alpaca]"])
    assert not (export / "hint_tuning.messages.jsonl").exists()  # no stale copy left to train on
    assert (export / "hint_tuning.json").exists()


@pytest.mark.parametrize("command, example", [("train", "learning_rate"), ("llamafactory", "learning_rate"),
                                              ("eval", "sampling.max_tokens")])
def test_set_help_fits_each_command(command, example):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert example in result.output and "think.sampling" not in result.output


def test_an_undecided_judge_is_said_not_retried_until_asked_to(tmp_path):
    """A judge reply with neither Yes nor No is kept; the run says it will not ask again by
    itself and how to make it; --retry-undecided forgets those replies and asks again."""
    from hinttune.core.store import RunStore

    config = fake_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    cfg["grading"] = {"grader": "judge", "judge": {"backend": "fake", "model": "j",
                                                   "default_reply": "I cannot tell."}}
    config.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 3, result.output
    assert "not retried by itself" in result.output and "--retry-undecided" in result.output

    def judged():
        with RunStore(tmp_path / "run") as store:
            return dict(store.db.execute("SELECT key, created FROM generations WHERE stage='grade'").fetchall())

    before = judged()
    again = runner.invoke(app, ["run", "-c", str(config)])
    assert again.exit_code == 3 and "--retry-undecided" in again.output  # the same, and said so
    assert judged() == before  # nothing was asked again
    retried = runner.invoke(app, ["run", "-c", str(config), "--retry-undecided"])
    assert "4 judge reply(ies) without a verdict will be asked again" in retried.output, retried.output
    after = judged()
    assert set(after) == set(before) and all(after[k] > before[k] for k in before)


def test_errors_keep_bracketed_words():
    """rich must not read `[datasets]` in an error as markup."""
    import typer

    from hinttune.cli import friendly
    from hinttune.core.errors import missing_extra

    small = typer.Typer()

    @small.command()
    @friendly
    def needs() -> None:
        raise missing_extra("datasets", "datasets")

    result = runner.invoke(small, [])
    assert result.exit_code == 2 and "pip install 'hinttune[datasets]'" in result.output


def test_a_rerun_says_nothing_was_left_to_generate(tmp_path):
    config = fake_config(tmp_path)
    first = runner.invoke(app, ["run", "--config", str(config)])
    assert first.exit_code == 0 and "nothing left" not in first.output, first.output
    again = runner.invoke(app, ["run", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "nothing left to generate: all 4 generations were already in" in " ".join(again.output.split())


def test_status_lists_stages_in_the_order_they_run():
    from rich.console import Console

    from hinttune.construction.outputs.report import status_table
    from hinttune.core.store import PlanStatus

    planned = [PlanStatus("probe", "instruct", 4, 4, 0, 0, 40, 0), PlanStatus("attempts", "instruct", 2, 2, 0, 0, 9, 0),
               PlanStatus("attempts", "think", 2, 2, 0, 0, 30, 0)]  # a resumed run planned the probe first
    console = Console(record=True, width=150)
    console.print(status_table(planned))
    lines = [line for line in console.export_text().splitlines() if "│" in line]
    assert [line.split("│")[1].strip() + "/" + line.split("│")[2].strip() for line in lines] == [
        "attempts/think", "attempts/instruct", "probe/instruct"]


@pytest.mark.parametrize("command", ["train", "llamafactory", "compare", "view", "experiment"])
def test_flags_show_no_value_in_help(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "--help" in result.output
    assert "<bool>" not in result.output, result.output
