"""Progress off a terminal: plain lines with counts, rate and ETA (schedulers, CI logs)."""

import io
import re

from rich.console import Console

from hinttune.core import progress


def test_plain_lines_when_not_a_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=False, width=200))
    monkeypatch.setenv("HINTTUNE_PROGRESS_EVERY", "0")
    with progress.stage_progress("attempts · think model", 4) as bar:
        for _ in range(4):
            bar.advance(1, tokens=50)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("attempts · think model: 0/4 (0%)")
    assert any("2/4 (50%)" in line and "tok/s" in line and "ETA" in line for line in lines)
    assert lines[-1].startswith("attempts · think model: 4/4 (100%)") and lines[-1].endswith("done")
    rate = re.search(r"· ([\d,]+) tok/s", lines[-1]).group(1)
    assert int(rate.replace(",", "")) > 0  # 200 tokens were generated: the rate says so


def test_rate_counts_from_the_stage_start():
    assert progress._rate(300, 2.0) == "150 tok/s" and progress._rate(5, 0.0) == "- tok/s"


def test_tables_are_printed_whole_into_a_log_file(tmp_path):
    """A scheduler's log: the eval table's headers and the footers are not cut at 80 columns."""
    import json
    import os
    import subprocess
    import sys

    bench = tmp_path / "mini.jsonl"
    bench.write_text(json.dumps({"question": "one plus one", "answer": "2"}) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-c", "from hinttune.cli import app; app()", "eval", "-m", "scripted", "-b", "fake",
                           "--benchmarks", "mini", "--data-file", f"mini={bench}", "--n", "1",
                           "-o", str(tmp_path / "eval"), "--set", "model.default_reply=\\boxed{2}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    log = done.stdout + done.stderr
    assert "benchmark" in log and "problems" in log and "…" not in log, log


def test_the_runs_footer_is_one_line_in_a_log_file(tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    from test_pipeline import config_dict

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(config_dict(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-c", "from hinttune.cli import app; app()", "run", "-c", str(config)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    (footer,) = [line for line in (done.stdout + done.stderr).splitlines() if "verdicts by" in line]
    assert footer.startswith("Sparse-Hint K*=2: 1") and footer.rstrip().endswith("rounds"), footer
