"""Benches are code too: each runs at its smallest setting, so none can rot."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench(name, *args, timeout=600):
    done = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def table_rows(out):
    return [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_construction_bench_on_one_and_two_gpus():
    pytest.importorskip("math_verify")
    out = bench("construction.py", "--problems", "30", "--rows", "1x32:math", "2x16:judge")
    rows = table_rows(out)
    assert len(rows) == 2 and rows[1].startswith("| 2 x 16 | judge |")
    cells = rows[1].split("|")
    assert cells[5].count("%") == 4  # busy per engine: the think and instruct engine on each GPU
    assert all("%" in cell for cell in cells[6:10])  # every stage ran, the judge's too


def test_cost_and_scale_benches():
    assert table_rows(bench("probe_cost.py", "--problems", "50"))
    assert "problems" in bench("scale.py", "--problems", "50")


def test_wallclock_bench_on_the_real_vllm_engine(smollm_hf):
    pytest.importorskip("vllm", exc_type=ImportError)
    out = bench("probe_wallclock_vllm.py", "--model", str(smollm_hf), "--limit", "3", "--max-in-flight", "8",
                timeout=1200)
    assert "look-ahead" in out and "False" not in out.split("same K*", 1)[1]
