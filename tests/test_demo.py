"""The README's first command, for real: the demo preset on the small CPU model, and the same
construction with the instruct model served by a real llama.cpp server."""

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from hinttune.cli import app

# sized for a busy 2-core machine (the demo takes about 1.5 minutes on an idle one)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
runner = CliRunner()


def states(run_dir):
    return [json.loads(line)["state"] for line in (run_dir / "export" / "hint_tuning.meta.jsonl").open()]


def test_demo_builds_all_three_states(demo_run):
    assert set(states(demo_run)) == {"No-Hint", "Sparse-Hint", "Full-Hint"}
    records = json.loads((demo_run / "export" / "hint_tuning.json").read_text())
    assert all(r["output"].startswith("<think>\n") and "\n</think>\n\n" in r["output"] for r in records)
    assert (demo_run / "summary.png").stat().st_size > 10_000
    # run again: everything is cached, the same dataset comes out
    again = runner.invoke(app, ["run", "-c", "demo", "-o", str(demo_run), "--set", "assemble.baselines=[full,two-state]"])
    assert again.exit_code == 0 and "nothing left to generate" in again.output
    assert json.loads((demo_run / "export" / "hint_tuning.json").read_text()) == records


def test_instruct_model_behind_a_llamacpp_server(tmp_path, llama_server, smollm_hf):
    run = tmp_path / "served"
    result = runner.invoke(app, [
        "run", "-c", "demo", "-o", str(run), "--set", "problems.limit=6", *checkpoint(smollm_hf, "think"),
        "--set", "instruct.backend=openai", "--set", f"instruct.base_url={llama_server}",
        "--set", "instruct.continue_mode=completions", "--set", "instruct.max_retries=1"])
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(run / "store.sqlite")
    by_stage = dict(db.execute("SELECT stage || '/' || role, COUNT(*) FROM generations "
                               "WHERE status='ok' GROUP BY 1").fetchall())
    assert by_stage["attempts/instruct"] == 6 and by_stage["attempts/think"] == 6
    assert db.execute("SELECT COUNT(*) FROM generations WHERE status='failed'").fetchone()[0] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["problems"] == 6
    assert summary["records"] + len(summary["excluded"]) == 6
    assert summary["probing"]["generations"] == by_stage.get("probe/instruct", 0)


def test_gallop_with_two_samples_per_prefix_on_the_small_model(tmp_path, smollm_hf):
    run = tmp_path / "gallop"
    result = runner.invoke(app, ["run", "-c", "demo", "-o", str(run), "--set", "problems.limit=6",
                                 *checkpoint(smollm_hf, "think"), *checkpoint(smollm_hf, "instruct"),
                                 "--set", "probe.strategy=gallop", "--set", "probe.verify=true",
                                 "--set", "probe.samples_per_prefix=2",
                                 "--set", "probe.success_rule=majority"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "summary.json").read_text())
    probing = summary["probing"]
    assert probing["strategy"] == "gallop" and "k_star_changed_by_rule" in probing
    assert probing["generations"] % 2 == 0  # two continuations per prefix
    assert summary["records"] + len(summary["excluded"]) == 6


def test_demo_on_the_real_vllm_engine_matches_transformers(tmp_path, smollm_hf):
    """Both roles on vLLM's CPU engine (continuous probing) and, from the same checkpoint, on
    transformers: wherever the greedy outputs agree, the records are the same. And with the
    think model on an engine of its own (a second vLLM engine, both loaded at once, as the
    per-problem pipeline runs them): the same dataset, byte for byte."""
    pytest.importorskip("vllm", exc_type=ImportError)
    common = ["-c", "demo", "--set", "problems.limit=8", "--set", f"think.model={smollm_hf}",
              "--set", f"instruct.model={smollm_hf}", "--set", "think.gguf_file=null",
              "--set", "instruct.gguf_file=null"]
    engine = ["--set", "max_model_len=2048", "--set", "dtype=float32",
              "--set", "gpu_memory_utilization=0.15", "--set", "engine_kwargs={enforce_eager: true, kv_cache_memory_bytes: 268435456}"]
    vllm_args = [arg for role in ("think", "instruct") for arg in
                 ["--set", f"{role}.backend=vllm", *[a if a == "--set" else f"{role}.{a}" for a in engine]]]
    runs = {}
    for name, extra in (("transformers", []), ("vllm", vllm_args),
                        ("two vllm engines", [*vllm_args, "--set", "think.name=thinker"])):
        result = runner.invoke(app, ["run", *common, "-o", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        runs[name] = tmp_path / name
    config = (runs["vllm"] / "config.yaml").read_text()
    assert "backend: vllm" in config and "fill_batch: 8" in config
    assert (runs["vllm"] / "export" / "hint_tuning.json").read_bytes() == \
        (runs["two vllm engines"] / "export" / "hint_tuning.json").read_bytes()
    del runs["two vllm engines"]

    def attempts(run):
        db = sqlite3.connect(run / "store.sqlite")
        return {(pid, role): text for pid, role, text in db.execute(
            "SELECT problem_id, role, text FROM generations WHERE stage='attempts'")}

    agree = {pid for (pid, role), text in attempts(runs["vllm"]).items()
             if role == "think" and attempts(runs["transformers"]).get((pid, role)) == text
             and attempts(runs["transformers"]).get((pid, "instruct")) == attempts(runs["vllm"])[(pid, "instruct")]}
    assert len(agree) >= 4, "greedy decoding of the same weights should mostly agree"
    meta = {name: {json.loads(line)["id"]: json.loads(line) for line in
                   (run / "export" / "hint_tuning.meta.jsonl").open()} for name, run in runs.items()}
    outputs = {name: {m["id"]: r["output"] for m, r in zip(
        meta[name].values(), json.loads((run / "export" / "hint_tuning.json").read_text()))}
        for name, run in runs.items()}
    for pid in agree:
        states = {name: meta[name].get(pid, {}).get("state") for name in runs}
        if states["vllm"] == "No-Hint" or states["transformers"] == "No-Hint":  # no probe involved
            assert states["vllm"] == states["transformers"]
            assert outputs["vllm"][pid].split("</think>")[1] == outputs["transformers"][pid].split("</think>")[1]


def test_the_probe_stage_on_two_real_vllm_engines_builds_the_same_dataset_as_on_one(tmp_path, smollm_hf):
    """The instruct model on vLLM's CPU engine, once as one engine and once as two
    (data_parallel_size: 2, each in its own process): the same greedy outputs, so the same
    dataset byte for byte, and the two engines both worked. The two-engine run starts from a
    copy of the one-engine run without its probe results: its probe stage is made again."""
    import shutil

    pytest.importorskip("vllm", exc_type=ImportError)
    engine = ["max_model_len=2048", "dtype=float32", "gpu_memory_utilization=0.15",
              "engine_kwargs={enforce_eager: true, kv_cache_memory_bytes: 268435456}"]
    common = ["-c", "demo", "--set", "problems.limit=8", "--set", "instruct.backend=vllm",
              "--set", f"instruct.model={smollm_hf}", "--set", "instruct.gguf_file=null",
              *checkpoint(smollm_hf, "think"), *[a for e in engine for a in ("--set", f"instruct.{e}")]]
    result = runner.invoke(app, ["run", *common, "-o", str(tmp_path / "1")])
    assert result.exit_code == 0, result.output
    shutil.copytree(tmp_path / "1", tmp_path / "2", ignore=shutil.ignore_patterns("export", ".lock"))
    db = sqlite3.connect(tmp_path / "2" / "store.sqlite")
    with db:
        probes = db.execute("DELETE FROM generations WHERE stage='probe'").rowcount
        db.execute("DELETE FROM plan WHERE stage='probe'")
        db.execute("DELETE FROM stage_results")
    db.close()
    assert probes > 0
    result = runner.invoke(app, ["run", *common, "-o", str(tmp_path / "2"), "--set", "instruct.data_parallel_size=2"])
    assert result.exit_code == 0, result.output
    one, two = ((tmp_path / str(n) / "export" / "hint_tuning.json").read_bytes() for n in (1, 2))
    assert one == two
    db = sqlite3.connect(tmp_path / "2" / "store.sqlite")
    assert db.execute("SELECT COUNT(*) FROM generations WHERE stage='probe'").fetchone()[0] == probes


def checkpoint(folder, role):
    """--set options giving a role the demo's weights as a checkpoint (fast to load)."""
    return ["--set", f"{role}.model={folder}", "--set", f"{role}.gguf_file=null"]
