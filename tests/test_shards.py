"""Shards and merge: a construction split by problem, run in parallel (one killed and run
again), merged byte for byte into what one run writes; a merged run split again generates
nothing; shards of different configurations are refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.construction.scale.shards import merge
from hinttune.core.config import validate_config
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import shard_of
from hinttune.core.store import RunStore

pytest.importorskip("math_verify")

TRACE = "First idea. Wait, second idea. Wait, third idea. Wait, fourth idea."


def scenario(tmp_path: Path, count: int = 24) -> dict:
    """Problems of every state: i % 4 = 0 the instruct model solves, 1 needs two episodes,
    2 the think model alone solves, 3 nobody does."""
    problems = [{"problem": f"p{i}: what is {i} + {i}?", "gold_answer": str(2 * i)} for i in range(count)]
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    think, instruct = {}, {}
    for i, p in enumerate(problems):
        right = 2 * i if i % 4 != 3 else -1
        think[f"p{i}: what"] = f"<think>\n{TRACE}\n</think>\n\nThe answer is {right}."
        if i % 4 == 0:
            instruct[f"<|user|>p{i}: what is {i} + {i}?\n<|assistant|>"] = f"The answer is {2 * i}."
        if i % 4 == 1:
            instruct[f"p{i}: what is {i} + {i}?\n<|assistant|>First idea. Wait, second idea."] = f"so it is {2 * i}."
    return {"run_dir": str(tmp_path / "whole"), "problems": {"source": str(tmp_path / "problems.json")},
            "think": {"backend": "fake", "model": "think", "answers": think},
            "instruct": {"backend": "fake", "model": "instruct", "answers": instruct,
                         "default_reply": "The answer is 0."},
            "grading": {"grader": "math"}}


def test_shards_partition_the_problems_by_id_not_by_order():
    ids = [f"{i:064x}" for i in range(3000)]
    sizes = [sum(shard_of(pid, 3) == s for pid in ids) for s in (1, 2, 3)]
    assert sum(sizes) == 3000 and min(sizes) > 900  # balanced
    assert [shard_of(pid, 3) for pid in reversed(ids)] == [shard_of(pid, 3) for pid in ids][::-1]


def test_three_shards_in_parallel_one_killed_merge_to_the_single_run(tmp_path):
    data = scenario(tmp_path)
    whole = build(validate_config(data))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**data, "run_dir": str(tmp_path / "big")}))
    command = [sys.executable, "-m", "hinttune", "run", "-c", str(tmp_path / "cfg.yaml")]
    slow = {**data, "run_dir": str(tmp_path / "big"),
            "instruct": {**data["instruct"], "delay": 0.2}}  # shard 2 is killed mid-probe
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    procs = [subprocess.Popen(command + ["--shard", f"{i}/3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in (1, 3)]
    killed = subprocess.Popen([sys.executable, "-m", "hinttune", "run", "-c", str(tmp_path / "slow.yaml"),
                               "--shard", "2/3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shard2 = tmp_path / "big" / "shards" / "2-of-3"
    _wait_for_probes(shard2, killed)
    killed.kill()
    killed.wait()
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()
    again = subprocess.run(command + ["--shard", "2/3"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    shards = [tmp_path / "big" / "shards" / f"{i}-of-3" for i in (1, 2, 3)]
    sizes = [len((s / "problems.jsonl").read_text().splitlines()) for s in shards]
    assert sum(sizes) == 24 and all(sizes)
    status = CliRunner().invoke(app, ["status", str(tmp_path / "big")])
    assert status.exit_code == 0 and all(f"{i}-of-3" in status.output for i in (1, 2, 3)), status.output

    merged = CliRunner().invoke(app, ["merge", *map(str, shards), "-o", str(tmp_path / "big")])
    assert merged.exit_code == 0, merged.output
    for name in ("hint_tuning.json", "hint_tuning.messages.jsonl", "hint_tuning.meta.jsonl", "excluded.jsonl"):
        assert (tmp_path / "big" / "export" / name).read_bytes() == \
            (tmp_path / "whole" / "export" / name).read_bytes(), name
    assert (tmp_path / "big" / "summary.json").read_bytes() == (tmp_path / "whole" / "summary.json").read_bytes()
    with RunStore(tmp_path / "big") as store, RunStore(tmp_path / "whole") as one:
        assert store.count() == one.count()  # the killed shard's re-run duplicated nothing
        generated = store.count()

    # the merged run split again, into 2: nothing is generated
    for i in (1, 2):
        rerun = subprocess.run(command + ["--shard", f"{i}/2"], capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        with RunStore(tmp_path / "big" / "shards" / f"{i}-of-2") as store:
            assert store.count() == generated
    remerged = merge([tmp_path / "big" / "shards" / f"{i}-of-2" for i in (1, 2)], tmp_path / "again")
    assert (tmp_path / "again" / "export" / "hint_tuning.json").read_bytes() == \
        (tmp_path / "whole" / "export" / "hint_tuning.json").read_bytes()
    assert (tmp_path / "again" / "summary.json").read_bytes() == (tmp_path / "whole" / "summary.json").read_bytes()
    assert remerged.summary == whole.summary


def _wait_for_probes(run_dir: Path, proc: subprocess.Popen) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run_dir / "store.sqlite").exists():
            with RunStore(run_dir, readonly=True) as store:
                if any(r.stage == "probe" and r.ok for r in store.status()):
                    return
        time.sleep(0.1)
    raise AssertionError(f"shard 2 never reached probing: {proc.poll()}")


def test_a_merge_of_unfinished_shards_generates_nothing_and_says_what_is_missing(tmp_path):
    data = scenario(tmp_path, 12)
    one = validate_config({**data, "run_dir": str(tmp_path / "big"), "problems": {**data["problems"], "shard": "1/2"}})
    build(one)
    result = CliRunner().invoke(app, ["merge", str(one.run_dir), "-o", str(tmp_path / "merged")])
    assert result.exit_code == 3, result.output
    assert "not generated by `hinttune merge`" in " ".join(result.output.split())
    with RunStore(tmp_path / "merged") as store:
        made = store.db.execute("SELECT COUNT(*) FROM generations WHERE status='ok'").fetchone()[0]
    with RunStore(one.run_dir) as store:
        assert made == store.count()  # only what the shard made


def test_shards_of_different_configurations_are_refused(tmp_path):
    data = scenario(tmp_path, 8)
    a = validate_config({**data, "run_dir": str(tmp_path / "a"), "problems": {**data["problems"], "shard": "1/2"}})
    other = {**data["instruct"], "sampling": {"temperature": 0.3}, "delay": 0.01}  # delay: placement
    b = validate_config({**data, "instruct": other, "run_dir": str(tmp_path / "a"),
                         "problems": {**data["problems"], "shard": "2/2"}})
    build(a), build(b)
    with pytest.raises(HinttuneError, match=r"instruct.sampling.temperature is 0.3 there and 0.7 in"):
        merge([a.run_dir, b.run_dir], tmp_path / "m")


def test_a_shard_names_its_own_directory():
    cfg = validate_config({"run_dir": "runs/x", "problems": {"shard": "2/5"},
                           "think": {"backend": "fake", "model": "t"}, "instruct": {"backend": "fake", "model": "i"}})
    assert cfg.run_dir == Path("runs/x/shards/2-of-5")
    with pytest.raises(Exception, match="between 1 and N"):
        validate_config({"problems": {"shard": "6/5"}, "think": {"backend": "fake", "model": "t"},
                         "instruct": {"backend": "fake", "model": "i"}})


JUDGE = {r"re:## Attempt\n(?:.|\n)*?(-?\d+)\.?\s*\n\n## Correct answer\n\1\n": "Same value.\nYes",
         "## Attempt": "A different value.\nNo"}


@pytest.mark.parametrize("grader,judge", [("judge", "instruct"), ("judge", "own"), ("hybrid", "own")])
def test_judge_graded_shards_resumed_on_other_placements_merge_to_the_single_run(tmp_path, grader, judge):
    """Judge verdicts are keyed by what decides them, so the merge finds every one the shards
    made: whether the judge is the instruct model or a model of its own, read back from the
    shards' saved config.yaml, and whether a shard ran its engines elsewhere (a placement
    setting differs) or failed its judge calls first and was run again."""
    data = scenario(tmp_path, 12)
    data["grading"] = {"grader": grader, "short_gold_chars": 1}  # hybrid: one-digit golds by math
    if judge == "instruct":
        data["instruct"]["answers"] = {**JUDGE, **data["instruct"]["answers"]}
    else:
        data["grading"]["judge"] = {"backend": "fake", "model": "judge", "answers": JUDGE}
    whole = build(validate_config(data))
    assert whole.summary["states"]["incomplete"] == 0 and whole.summary["graders"].get("judge")

    def shard(i: int, **changes) -> dict:
        found = {**data, "run_dir": str(tmp_path / "big"), "problems": {**data["problems"], "shard": f"{i}/2"}}
        for role, change in changes.items():
            found = {**found, role: {**found[role], **change}} if role != "judge" else \
                {**found, "grading": {**found["grading"], "judge": {**found["grading"]["judge"], **change}}}
        return found

    build(validate_config(shard(1)))
    elsewhere = {"instruct": {"delay": 0.001}} if judge == "instruct" else {"judge": {"delay": 0.001}}
    plain = {k: v for k, v in data["instruct"]["answers"].items() if k not in JUDGE}
    failing = {"instruct": {"answers": {"## Attempt": "!fail", **plain}}} \
        if judge == "instruct" else {"judge": {"answers": {"## Attempt": "!fail"}}}
    first = build(validate_config(shard(2, **failing)))  # every judge call fails: incomplete
    assert first.summary["states"]["incomplete"] > 0
    build(validate_config(shard(2, **elsewhere)))  # run again, its engines placed elsewhere

    shards = [tmp_path / "big" / "shards" / f"{i}-of-2" for i in (1, 2)]
    merged = CliRunner().invoke(app, ["merge", *map(str, shards), "-o", str(tmp_path / "merged")])
    assert merged.exit_code == 0, merged.output
    for name in ("hint_tuning.json", "excluded.jsonl"):
        assert (tmp_path / "merged" / "export" / name).read_bytes() == \
            (tmp_path / "whole" / "export" / name).read_bytes(), name
    with RunStore(tmp_path / "merged") as store:
        failed = store.db.execute("SELECT COUNT(*) FROM generations WHERE status!='ok'").fetchone()[0]
    assert failed == 0  # the merge asked for nothing it had not got


def test_a_merge_names_a_damaged_shard_and_a_shard_still_running(tmp_path):
    from hinttune.core.store.rundir import run_lock

    data = scenario(tmp_path, 8)
    shards = []
    for i in (1, 2):
        cfg = validate_config({**data, "run_dir": str(tmp_path / "big"), "problems": {**data["problems"], "shard": f"{i}/2"}})
        build(cfg)
        shards.append(Path(cfg.run_dir))
    with run_lock(shards[1]):  # shard 2 still running
        with pytest.raises(HinttuneError, match=r"2-of-2 is still running \(PID \d+ on .*\): merge once every shard"):
            merge(shards, tmp_path / "merged")
    (shards[1] / "store.sqlite").write_bytes(b"not a database" * 100)
    for leftover in shards[1].glob("store.sqlite-*"):
        leftover.unlink()
    with pytest.raises(HinttuneError, match=r"2-of-2/store.sqlite: the run store is damaged"):
        merge(shards, tmp_path / "merged2")
