"""Orchestration cost at scale, with an instant (fake) backend so only hinttune's own work is
measured: a whole run, a re-run of the finished run (nothing to do), `hinttune status`, peak
memory and store size, for 1,000 problems (and more with --problems); then grading speed:
hinttune's Math-Verify worker pool against raw Math-Verify in one process on the same pairs.

The workload: every problem's think trace has N episodes ("Step j. Wait, ..."); the instruct
model solves a fifth of the problems unaided, and the others at K* = 3, 9, 17 or 33 or never,
by the last digit of the problem's number, so probing asks about 20 continuations a problem.

    python bench/scale.py                       # 1,000 problems
    python bench/scale.py --problems 1000 10000 # and 10,000 (a few minutes)
    python bench/scale.py --problems 10000 --shards 4   # also: 4 shards, their sizes, the merge

With --shards N the same problems are also built as N shards (one after another, each timed)
and merged; the merged dataset is checked byte for byte against the single run's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

K_STAR = {"1": 3, "2": 9, "3": 17, "4": 33, "6": 3, "7": 9, "8": 17}  # last digit -> K*; else none


def write_config(folder: Path, problems: int, episodes: int) -> Path:
    rows = [{"problem": f"p{i}: add {i} and {7 - i}", "gold_answer": "7"} for i in range(problems)]
    (folder / "problems.json").write_text(json.dumps(rows))
    trace = "".join(f"Step {j}. Wait, " for j in range(1, episodes)) + f"Step {episodes}."
    instruct = {r"re:p\d*[05]: [^\n]*\n<\|assistant\|>$": "The answer is 7."}
    for digit, k in K_STAR.items():
        instruct[rf"re:p\d*{digit}: [^\n]*\n<\|assistant\|>.*Step {k}\. $"] = "so the answer is 7."
    cfg = {"run_dir": str(folder / "run"), "problems": {"source": str(folder / "problems.json")},
           "think": {"backend": "fake", "model": "think",
                     "default_reply": f"<think>\n{trace}\n</think>\n\nThe answer is 7."},
           "instruct": {"backend": "fake", "model": "instruct", "answers": instruct,
                        "default_reply": "The answer is 0."},
           "grading": {"grader": "math"}, "segment": {"keywords": ["wait"], "max_episodes": episodes}}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def timed(cmd: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of a command run in its own process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    seconds, rss, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(cmd)} exited {code}")
    return float(seconds), float(rss)


def grading_speed(pairs: int) -> tuple[float, float]:
    """Checks per second: hinttune's pool (2 workers, hard timeouts) and raw Math-Verify."""
    from math_verify import parse, verify

    from hinttune.core.grading import MathVerifier

    items = [(str(i % 97), f"so the answer is $\\boxed{{{(i * 7) % 97}}}$", True) for i in range(pairs)]
    verifier = MathVerifier(5, 2)
    try:
        verifier.check_many(items[:10])  # workers started before the clock
        started = time.perf_counter()
        verifier.check_many(items)
        pool = pairs / (time.perf_counter() - started)
    finally:
        verifier.close()
    started = time.perf_counter()
    for gold, answer, _ in items:
        verify(parse(f"\\boxed{{{gold}}}"), parse(answer))
    raw = pairs / (time.perf_counter() - started)
    return pool, raw


def shards_and_merge(hinttune: list[str], config: Path, folder: Path, count: int) -> None:
    big = folder / "big"
    seconds, sizes = [], []
    for i in range(1, count + 1):
        took, _ = timed(hinttune + ["run", "-c", str(config), "-o", str(big), "--shard", f"{i}/{count}"])
        seconds.append(took)
        sizes.append(len((big / "shards" / f"{i}-of-{count}" / "problems.jsonl").read_text().splitlines()))
    dirs = [str(big / "shards" / f"{i}-of-{count}") for i in range(1, count + 1)]
    merge_s, rss = timed(hinttune + ["merge", *dirs, "-o", str(big)])
    same = (big / "export" / "hint_tuning.json").read_bytes() == \
        (folder / "run" / "export" / "hint_tuning.json").read_bytes()
    print(f"  {count} shards: problems {', '.join(f'{n:,}' for n in sizes)}; seconds each "
          f"{', '.join(f'{t:.1f}' for t in seconds)}; merge {merge_s:.1f} s (peak {rss:.0f} MB); "
          f"merged dataset {'identical to' if same else 'DIFFERENT from'} the single run's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, nargs="+", default=[1000])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=0, help="also build N shards and merge them")
    args = parser.parse_args()
    hinttune = [sys.executable, "-m", "hinttune"]
    print(f"{'problems':>8} {'run s':>7} {'re-run s':>9} {'status s':>9} {'peak MB':>8} "
          f"{'store MB':>9} {'generations':>12}")
    for n in args.problems:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), n, args.episodes)
            run_s, rss = timed(hinttune + ["run", "-c", str(config)])
            rerun_s, rss2 = timed(hinttune + ["run", "-c", str(config)])
            status_s, _ = timed(hinttune + ["status", str(Path(tmp) / "run")])
            store = Path(tmp) / "run" / "store.sqlite"
            import sqlite3

            with sqlite3.connect(store) as db:
                gens = db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            print(f"{n:>8,} {run_s:>7.1f} {rerun_s:>9.2f} {status_s:>9.2f} {max(rss, rss2):>8.0f} "
                  f"{store.stat().st_size / 2**20:>9.1f} {gens:>12,}")
            if args.shards:
                shards_and_merge(hinttune, config, Path(tmp), args.shards)
    pool, raw = grading_speed(args.pairs)
    print(f"grading {args.pairs:,} pairs: hinttune pool (2 workers) {pool:,.0f}/s, "
          f"raw Math-Verify in one process {raw:,.0f}/s ({pool / raw:.2f}x)")


if __name__ == "__main__":
    main()
