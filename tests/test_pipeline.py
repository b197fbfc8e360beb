"""The whole construction on scripted (fake) models: every state, both policies, the export
formats, and a real SIGKILL in the middle of probing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hinttune.construction.pipeline import build
from hinttune.construction.states import FULL_MARKER, SPARSE_MARKER
from hinttune.core.config import validate_config
from hinttune.core.store import RunStore

pytest.importorskip("math_verify")

TRACE = "First idea. Wait, second idea. Wait, third idea."
PROBLEMS = [{"problem": "alpha: 1+1", "gold_answer": "2"},   # instruct solves it: No-Hint
            {"problem": "beta: 2+2", "gold_answer": "4"},    # needs 2 episodes: Sparse-Hint, K*=2
            {"problem": "gamma: 3+3", "gold_answer": "6"},   # no hint works, think right: Full-Hint
            {"problem": "delta: 4+4", "gold_answer": "8"}]   # nothing works, think wrong: unsolved


def config_dict(tmp_path, delay=0.0, **extra):
    src = tmp_path / "problems.json"
    src.write_text(json.dumps(PROBLEMS))
    think = {f"{p['problem']}\n": f"<think>\n{TRACE}\n</think>\n\nThe answer is "
             f"{p['gold_answer'] if not p['problem'].startswith('delta') else 0}."
             for p in PROBLEMS}
    return {"run_dir": str(tmp_path / "run"), "problems": {"source": str(src)},
            "think": {"backend": "fake", "model": "think", "answers": think},
            "instruct": {"backend": "fake", "model": "instruct", "delay": delay, "answers": {
                "beta: 2+2\n<|assistant|>First idea. Wait, second idea.": "so it is 4.",
                "alpha": "The answer is 2."}, "default_reply": "The answer is 0."},
            "grading": {"grader": "math"}, "export": {"formats": ["alpaca", "messages", "hf"]},
            **extra}


def records(run):
    return json.loads((run / "export" / "hint_tuning.json").read_text())


def test_paper_policy_builds_every_state(tmp_path):
    cfg = validate_config(config_dict(tmp_path))
    result = build(cfg)
    states = {a.problem.split(":")[0]: (a.state, a.k_star) for a in result.assignments}
    assert states == {"alpha": ("No-Hint", 0), "beta": ("Sparse-Hint", 2),
                      "gamma": ("Full-Hint", None), "delta": ("unsolved", None)}
    run = tmp_path / "run"
    out = {r["instruction"]: r["output"] for r in records(run)}
    assert set(out) == {"alpha: 1+1", "beta: 2+2", "gamma: 3+3"}
    # the hint is a verbatim prefix of the stripped reasoning, as in the released data
    assert out["beta: 2+2"] == ("<think>\n" + SPARSE_MARKER + "First idea. Wait, second idea."
                                "\n</think>\n\nso it is 4.")
    assert out["gamma: 3+3"] == "<think>\n" + FULL_MARKER + "\n" + TRACE + "\n</think>\n\nThe answer is 6."
    assert out["alpha: 1+1"].endswith("\n</think>\n\nThe answer is 2.")
    # probing: beta, gamma and delta try k=1 and k=2 (= N-1); beta succeeds at k=2
    assert result.summary["probing"] == {"strategy": "linear", "problems": 3, "generations": 6,
                                         "tokens": 24, "rounds": 2, "solved": 1,
                                         "beyond_linear": 0}
    assert result.summary["states"]["unsolved"] == 1 and result.summary["k_star"] == {2: 1}
    # the other formats say the same thing
    messages = [json.loads(line) for line in (run / "export" / "hint_tuning.messages.jsonl").open()]
    assert [m["messages"][1]["content"] for m in messages] == [r["output"] for r in records(run)]
    info = json.loads((run / "export" / "dataset_info.json").read_text())
    assert info == {"hint_tuning": {"file_name": "hint_tuning.json", "columns": {
        "prompt": "instruction", "query": "input", "response": "output"}}}
    meta = [json.loads(line) for line in (run / "export" / "hint_tuning.meta.jsonl").open()]
    assert [(m["state"], m["k_star"], m["n"]) for m in meta] == [
        ("No-Hint", 0, 3), ("Sparse-Hint", 2, 3), ("Full-Hint", None, 3)]
    assert meta[1]["hint_tokens"] == 5 and meta[0]["token_unit"] == "words"
    excluded = [json.loads(line) for line in (run / "export" / "excluded.jsonl").open()]
    assert [e["state"] for e in excluded] == ["unsolved"]
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_from_disk(str(run / "export" / "hf"))
    assert hf["output"] == [r["output"] for r in records(run)] and hf["state"][1] == "Sparse-Hint"
    assert (run / "summary.json").exists() and (run / "segments.jsonl").exists()


def test_rerun_does_no_new_work(tmp_path):
    cfg = validate_config(config_dict(tmp_path))
    build(cfg)
    with RunStore(tmp_path / "run") as store:
        before = store.db.execute("SELECT COUNT(*), MAX(created) FROM generations").fetchone()
    build(cfg)
    with RunStore(tmp_path / "run") as store:
        assert tuple(store.db.execute("SELECT COUNT(*), MAX(created) FROM generations").fetchone()) == tuple(before)


def test_official_policy(tmp_path):
    cfg = validate_config(config_dict(tmp_path, assemble={"policy": "official", "keep_unverified": False}))
    result = build(cfg)
    states = {a.problem.split(":")[0]: (a.state, a.k_star) for a in result.assignments}
    # think right on alpha, beta, gamma: No-Hint; delta probed from k=0 to N=3, nothing works:
    # Full-Hint with the wrong trace, as the official scripts write it
    assert states == {"alpha": ("No-Hint", 0), "beta": ("No-Hint", 0), "gamma": ("No-Hint", 0),
                      "delta": ("Full-Hint", None)}
    assert [a.k for a in result.probes[result.assignments[3].problem_id].attempts] == [0, 1, 2, 3]
    beta = next(r for r in records(tmp_path / "run") if r["instruction"].startswith("beta"))
    assert beta["output"].endswith("</think>\n\nThe answer is 0.")  # the ungraded instruct answer


def test_policy_flags_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from hinttune.cli import app

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    result = CliRunner().invoke(app, ["run", "-c", str(path), "--policy", "official"])
    assert result.exit_code == 0, result.output
    assert "No-Hint" in result.output and "records" in result.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["assemble"]["policy"] == "official"


def wait_for_probes(run, count, timeout=60):
    """Poll the run store (as another process would) until it holds ``count`` probe records."""
    deadline, probes = time.time() + timeout, 0
    while time.time() < deadline and probes < count:
        time.sleep(0.05)
        if (run / "store.sqlite").exists():
            with RunStore(run) as store:
                probes = store.db.execute("SELECT COUNT(*) FROM generations WHERE stage='probe'").fetchone()[0]
    return probes


def test_a_run_killed_mid_probe_resumes_to_the_same_dataset(tmp_path):
    """SIGKILL while probing; the re-run repeats no finished generation and writes the same
    dataset as an uninterrupted run."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for folder in (killed, clean):
        folder.mkdir()
        (folder / "run.yaml").write_text(yaml.safe_dump(config_dict(folder, delay=0.3)))
    cmd = [sys.executable, "-m", "hinttune", "run", "-c"]
    proc = subprocess.Popen(cmd + [str(killed / "run.yaml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    probes = wait_for_probes(killed / "run", 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= probes < 6, "the kill should land mid-probe"
    assert not (killed / "run" / "export").exists()
    with RunStore(killed / "run") as store:
        survived = dict(store.db.execute("SELECT key, created FROM generations").fetchall())
    for folder in (killed, clean):
        done = subprocess.run(cmd + [str(folder / "run.yaml")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    with RunStore(killed / "run") as store:
        rows = dict(store.db.execute("SELECT key, created FROM generations").fetchall())
        assert store.db.execute("SELECT COUNT(*) FROM generations WHERE stage='probe'").fetchone()[0] == 6
    assert all(rows[k] == created for k, created in survived.items())  # nothing redone
    assert records(killed / "run") == records(clean / "run")


def test_official_layout_has_the_scripts_shapes_and_keys(tmp_path):
    cfg = validate_config(config_dict(tmp_path, assemble={"policy": "official"},
                                      export={"official_layout": True}))
    build(cfg)
    folder = tmp_path / "run" / "export" / "official"
    think = json.loads((folder / "think_results.json").read_text())
    instruct = json.loads((folder / "instruct_results.json").read_text())
    grading = json.loads((folder / "llm_grading_think.json").read_text())
    # under the instruct model's name, as the official prefix step writes it
    k_prefix = json.loads((folder / "instruct" / "k_prefix.json").read_text())
    assert not (folder / "k_prefix.json").exists()
    assert (folder / "think_results.json").read_text().endswith("}\n]")  # json.dump's bytes
    assert len(think) == len(instruct) == len(grading) == 4
    assert set(think[0]) == {"problem", "gold_answer", "model_response", "metrics"}
    assert set(think[0]["metrics"]) == {"prompt_tokens", "solution_tokens", "total_tokens"}
    assert grading == [{"question_id": i, "is_correct": i != 3} for i in range(4)]
    assert set(k_prefix) == {"metadata", "results"}
    (delta,) = k_prefix["results"]
    assert delta["_original_idx"] == 3 and delta["success"] is False
    assert [r["k"] for r in delta["all_k_results"]] == [0, 1, 2, 3]
    assert set(delta) == {"success", "total_parts", "reason", "all_k_results", "problem",
                          "gold_answer", "_original_idx"}


def test_official_layout_success_entry(tmp_path):
    data = config_dict(tmp_path, assemble={"policy": "official"}, export={"official_layout": True})
    data["instruct"]["answers"]["delta: 4+4\n<|assistant|>First idea. Wait, second idea."] = "so it is 8."
    build(validate_config(data))
    k_prefix = json.loads((tmp_path / "run" / "export" / "official" / "instruct" / "k_prefix.json").read_text())
    (delta,) = k_prefix["results"]
    assert delta["success"] and delta["k_value"] == 2 and delta["total_parts"] == 3
    assert delta["prefix"] == "First idea. Wait, second idea. " and delta["generated_text"] == "so it is 8."
    assert [r["k"] for r in delta["all_k_results"]] == [0, 1, 2]
    assert set(delta) == {"success", "k_value", "total_parts", "prefix", "prefix_tokens",
                          "instruct_tokens", "generated_text", "all_k_results", "problem",
                          "gold_answer", "_original_idx"}


@pytest.mark.parametrize("strategy", ["sweep", "gallop"])
def test_strategies_build_the_same_dataset(tmp_path, strategy):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    linear = build(validate_config(config_dict(tmp_path / "a")))
    other = build(validate_config(config_dict(tmp_path / "b", probe={
        "strategy": strategy, "samples_per_prefix": 2, "success_rule": "majority"})))
    assert [(a.state, a.k_star, a.output) for a in other.assignments] == \
        [(a.state, a.k_star, a.output) for a in linear.assignments]
    assert other.summary["probing"]["strategy"] == strategy
    beta = next(o for o in other.probes.values() if o.k_star == 2)
    assert {a.sample for a in beta.attempts} == {0, 1}


def states_by_name(result):
    return {a.problem.split(":")[0]: (a.state, a.note) for a in result.assignments}


@pytest.mark.parametrize("policy", ["paper", "official"])
def test_failed_generations_make_problems_incomplete_never_states(tmp_path, policy):
    """A failed think attempt (beta) or instruct attempt (gamma) never becomes a record:
    the problem is incomplete with its cause, and the next run retries just those."""
    data = config_dict(tmp_path, assemble={"policy": policy})
    data["think"]["answers"]["beta: 2+2\n"] = "!fail"
    data["instruct"]["answers"] = {"gamma": "!fail", **data["instruct"]["answers"]}
    result = build(validate_config(data))
    states = states_by_name(result)
    assert states["beta"][0] == "incomplete" and "think attempt failed: scripted failure" in states["beta"][1]
    if policy == "paper":  # gamma needs the instruct answer to rule out No-Hint
        assert states["gamma"][0] == "incomplete" and "instruct attempt failed" in states["gamma"][1]
    else:  # official: think right on gamma -> No-Hint would take the failed instruct answer
        assert states["gamma"][0] == "incomplete"
    exported = {r["instruction"].split(":")[0] for r in records(tmp_path / "run")}
    assert not exported & {"beta", "gamma"}
    assert result.summary["states"]["incomplete"] == 2
    excluded = [json.loads(line) for line in (tmp_path / "run" / "export" / "excluded.jsonl").open()]
    assert {e["state"] for e in excluded if e["problem"].startswith(("beta", "gamma"))} == {"incomplete"}
    with RunStore(tmp_path / "run") as store:
        kept = dict(store.db.execute("SELECT key, created FROM generations WHERE status='ok'").fetchall())
    fixed = build(validate_config(config_dict(tmp_path, assemble={"policy": policy})))
    assert "incomplete" not in {a.state for a in fixed.assignments}
    with RunStore(tmp_path / "run") as store:
        again = dict(store.db.execute("SELECT key, created FROM generations").fetchall())
    assert all(again[k] == created for k, created in kept.items())  # only the failed ones redone


def test_a_failed_or_undecided_judge_never_counts_as_wrong(tmp_path):
    """The instruct answer's grade is needed for No-Hint: a dead judge leaves the problem
    incomplete (not probed, not unsolved); an unreadable probe verdict stops its search."""
    data = config_dict(tmp_path, grading={"grader": "judge", "judge": {
        "backend": "fake", "model": "judge", "default_reply": "!fail"}})
    result = build(validate_config(data))
    assert {a.state for a in result.assignments} == {"incomplete"}
    assert not result.probes  # nothing probed on the strength of a failed verdict
    assert all("undecided" in a.note and "judge request failed" in a.note for a in result.assignments)
    data["grading"]["judge"]["default_reply"] = "I am not sure."  # readable by no rule
    data["grading"]["judge"]["answers"] = {"## Attempt\nThe answer is 0.": "Wrong.\nNo"}
    data["instruct"]["answers"]["delta: 4+4\n<|assistant|>First idea."] = "maybe 8"
    result = build(validate_config(data))
    # delta's instruct answer "The answer is 0." is graded No; its probe gets an unreadable verdict
    states = states_by_name(result)
    assert states["delta"][0] == "incomplete" and "probe continuation k=1 undecided" in states["delta"][1]


def test_run_exits_3_and_names_the_causes(tmp_path):
    from typer.testing import CliRunner

    from hinttune.cli import app

    data = config_dict(tmp_path)
    data["think"]["answers"]["beta: 2+2\n"] = "!fail"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", "-c", str(path)])
    assert result.exit_code == 3, result.output
    assert "1 problem(s) incomplete" in result.output
    assert "1 × think attempt failed: scripted failure" in result.output


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    from hinttune.core.errors import HinttuneError
    from hinttune.core.store.rundir import run_lock

    with run_lock(tmp_path / "run"):
        with pytest.raises(HinttuneError, match=f"in use by PID {os.getpid()}"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released: free again
        pass


def test_a_killed_runs_lock_is_not_stale(tmp_path):
    from hinttune.core.store.rundir import run_lock

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from hinttune.core.store.rundir import run_lock\n"
        f"with run_lock(Path({str(tmp_path / 'run')!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with run_lock(tmp_path / "run"):  # the system released it with the process
        pass


@pytest.mark.parametrize("probe", [
    {"strategy": "linear"},  # look-ahead over every slot of the engines (the default)
    {"strategy": "linear", "fill_batch": 0},  # one k at a time
    {"strategy": "linear", "fill_batch": 8},
    {"strategy": "sweep"},
    {"strategy": "gallop", "verify": True},
    {"strategy": "linear", "samples_per_prefix": 2, "success_rule": "majority"},
])
def test_one_engine_and_two_find_the_same_k_star(tmp_path, probe):
    """Same outcomes on 1 and on 2 engines (worker processes, results out of order: the fake
    engine returns newest first): every search keeps its K* definition, the datasets are byte
    for byte the same."""
    built = {}
    for engines in (1, 2):
        (tmp_path / str(engines)).mkdir()
        data = config_dict(tmp_path / str(engines), probe=probe)
        data["instruct"]["answers"]["gamma: 3+3\n<|assistant|>First idea."] = "it is 6"  # K*=1
        data["instruct"]["data_parallel_size"] = engines
        built[engines] = build(validate_config(data))
    rounds, continuous = built[1], built[2]
    assert [(a.state, a.k_star, a.output) for a in continuous.assignments] == \
        [(a.state, a.k_star, a.output) for a in rounds.assignments]
    assert records(tmp_path / "2" / "run") == records(tmp_path / "1" / "run")
    assert {a.state for a in rounds.assignments} >= {"No-Hint", "Sparse-Hint"}
    if probe.get("fill_batch") == 0 or probe["strategy"] != "linear":  # look-ahead may differ with
        # what is open when; K* may not
        assert {p: sorted((a.k, a.sample) for a in o.attempts) for p, o in continuous.probes.items()} == \
            {p: sorted((a.k, a.sample) for a in o.attempts) for p, o in rounds.probes.items()}


def test_look_ahead_keeps_linears_k_star_on_many_problems(tmp_path):
    """Linear with fill_batch asks further k into idle slots and settles them in order: the
    same K* (smallest successful k, isolated early successes included) and dataset as one k at
    a time, with the k asked past K* counted."""
    import re

    from hinttune.construction.segmentation import prefix, trace_episodes
    from hinttune.core.config import SegmentConfig

    episodes = "".join(f"Step {i}. Wait, " for i in range(1, 7)) + "done."
    pieces = trace_episodes(f"<think>\n{episodes}\n</think>", SegmentConfig(keywords=["wait"]))
    assert len(pieces) == 7  # k = 1..6 are probed
    problems, answers = [], {}
    wins = {0: [2], 1: [1], 2: [3, 5], 3: [5], 4: [], 5: [2, 3], 6: [4], 7: [1, 4], 8: [6], 9: [3]}
    for i, ks in wins.items():
        problems.append({"problem": f"p{i}: {i}+{i}", "gold_answer": str(2 * i)})
        for k in ks:  # the continuation of exactly P_k answers right
            key = re.escape(f"p{i}: {i}+{i}\n<|assistant|>{prefix(pieces, k)}") + "$"
            answers[f"re:{key}"] = f"so {2 * i}."
    built = {}
    for fill in (0, 16):
        folder = tmp_path / str(fill)
        folder.mkdir()
        (folder / "problems.json").write_text(json.dumps(problems))
        data = {"run_dir": str(folder / "run"), "problems": {"source": str(folder / "problems.json")},
                "think": {"backend": "fake", "model": "think", "default_reply":
                          f"<think>\n{episodes}\n</think>\n\nThe answer is 0."},
                "instruct": {"backend": "fake", "model": "instruct", "answers": answers,
                             "default_reply": "The answer is 0."},
                "grading": {"grader": "math"}, "segment": {"keywords": ["wait"]},
                "probe": {"fill_batch": fill}}
        built[fill] = build(validate_config(data))
    found = {s: {a.problem.split(":")[0]: a.k_star for a in b.assignments} for s, b in built.items()}
    assert found[16] == found[0]
    assert found[0]["p2"] == 3 and found[0]["p5"] == 2 and found[0]["p4"] is None
    assert records(tmp_path / "16" / "run") == records(tmp_path / "0" / "run")
    stats = built[16].summary["probing"]
    assert stats["beyond_linear"] > 0  # the window asked past K*, and says so


def test_look_ahead_is_per_engine_and_derived_from_the_engines_by_default():
    from hinttune.construction.probe.search import LookAhead

    class Engines:  # two engines of 256 slots
        replicas = [object(), object()]
        slots = 512

    assert LookAhead(Engines(), None).limit == 512 * 5 // 4  # every slot, a quarter more queued
    assert LookAhead(Engines(), 100).limit == 200 * 5 // 4  # 100 on each engine
    assert LookAhead(Engines(), 1000).limit == 512 * 5 // 4  # never more than the engines hold
    assert LookAhead(Engines(), 0).limit == 0  # one k at a time
    assert validate_config(config_dict_minimal()).probe.fill_batch is None


def config_dict_minimal():
    return {"problems": {"source": "demo"}, "think": {"backend": "fake", "model": "t"},
            "instruct": {"backend": "fake", "model": "i"}}


def test_look_ahead_never_holds_more_than_its_limit(tmp_path, monkeypatch):
    """Slots are counted when granted, not when the request reaches the engine: searches woken
    together cannot all take the same free slots (each search may ask up to its window, here
    7, so three of them used to hold up to 21 requests for 5 slots), and every granted slot
    comes back, k abandoned past K* included."""
    import hinttune.construction.probe.search as probing
    from hinttune.core.generations import AsyncJobs

    made, running, peak = [], [0], [0]

    class Watched(probing.LookAhead):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    async def run(self, job, affinity=None):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        try:
            return await real_run(self, job, affinity)
        finally:
            running[0] -= 1

    real_run = AsyncJobs.run
    monkeypatch.setattr(probing, "LookAhead", Watched)
    monkeypatch.setattr(AsyncJobs, "run", run)
    episodes = "".join(f"Step {i}. Wait, " for i in range(1, 9)) + "done."
    problems = [{"problem": f"p{i}: {i}+{i}", "gold_answer": str(2 * i)} for i in range(1, 4)]
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    data = {"run_dir": str(tmp_path / "run"), "problems": {"source": str(tmp_path / "problems.json")},
            "think": {"backend": "fake", "model": "think", "default_reply":
                      f"<think>\n{episodes}\n</think>\n\nThe answer is 0."},
            "instruct": {"backend": "fake", "model": "instruct", "delay": 0.01,
                         "answers": {"p1: 1+1\n<|assistant|>Step 1. Wait, Step 2. Wait, Step 3.": "so 2."},
                         "default_reply": "The answer is 0."},
            "grading": {"grader": "math"}, "segment": {"keywords": ["wait"]}, "probe": {"fill_batch": 4}}
    result = build(validate_config(data))
    (ahead,) = made
    # 5 slots; a search whose k are all settled asks its next one even when none is free
    assert ahead.limit == 5 and 5 <= peak[0] <= ahead.limit + len(problems) - 1
    assert ahead.taken == 0 and result.summary["probing"]["beyond_linear"] > 0
    assert {a.problem.split(":")[0]: a.k_star for a in result.assignments} == \
        {"p1": 3, "p2": None, "p3": None}


def test_baseline_policies_from_the_same_store(tmp_path):
    """full: every verified think trace, no marker; two-state: Sparse-Hint becomes Full-Hint
    where the think answer is right; each exported with its meta, compared in the summary."""
    data = config_dict(tmp_path, assemble={"baselines": ["full", "two-state"]})
    result = build(validate_config(data))
    export = tmp_path / "run" / "export" / "baselines"
    full = {r["instruction"].split(":")[0]: r["output"] for r in json.loads((export / "full" / "full.json").read_text())}
    # alpha, beta, gamma have a right think answer (delta's is wrong): the plain trace
    assert set(full) == {"alpha", "beta", "gamma"}
    assert full["beta"] == f"<think>\n{TRACE}\n</think>\n\nThe answer is 4."
    two = {r["instruction"].split(":")[0]: r["output"]
           for r in json.loads((export / "two-state" / "two-state.json").read_text())}
    assert two["alpha"] == records(tmp_path / "run")[0]["output"]  # No-Hint stays
    assert two["beta"].startswith("<think>\n" + FULL_MARKER)  # was Sparse-Hint
    meta = [json.loads(line) for line in (export / "two-state" / "two-state.meta.jsonl").open()]
    assert {m["state"] for m in meta} == {"No-Hint", "Full-Hint"}
    compared = result.summary["baselines"]
    assert compared["hint-tuning"]["states"] == {"No-Hint": 1, "Sparse-Hint": 1, "Full-Hint": 1}
    assert compared["full"]["records"] == 3 and compared["full"]["trace_share"] == 1.0
    assert 0 < compared["hint-tuning"]["trace_share"] < compared["two-state"]["trace_share"] == 2 / 3


def two_probes(tmp_path, combine="min", strong_extra=None):
    data = config_dict(tmp_path, assemble={"combine": combine})
    strong = {"backend": "fake", "model": "instruct", "name": "strong", "system_prompt": "Be brief.",
              "default_reply": "The answer is 0.", "answers": {
                  **(strong_extra or {}),
                  "beta: 2+2\n<|assistant|>First idea.": "so it is 4.", "alpha": "The answer is 2.",
                  "gamma: 3+3\n<|assistant|>First idea. Wait, second idea.": "The answer is 6."}}
    data["instruct"] = [data["instruct"], strong]
    return data


def test_several_probes_one_think_pass_one_dataset_each_and_combined(tmp_path):
    result = build(validate_config(two_probes(tmp_path)))
    run = tmp_path / "run"
    with RunStore(run) as store:
        roles = dict(store.db.execute("SELECT role, COUNT(*) FROM generations WHERE stage='attempts' GROUP BY role"))
        assert roles == {"think": 4, "instruct": 4, "instruct:strong": 4}  # the think pass once
        planned = {(s.stage, s.role) for s in store.status()}
        assert ("probe", "instruct:strong") in planned and ("probe", "instruct") in planned
    states = lambda rs: {a.problem.split(":")[0]: (a.state, a.k_star) for a in rs}  # noqa: E731
    assert states(result.assignments)["beta"] == ("Sparse-Hint", 2)
    assert states(result.others["strong"].assignments) == {
        "alpha": ("No-Hint", 0), "beta": ("Sparse-Hint", 1), "gamma": ("Sparse-Hint", 2), "delta": ("unsolved", None)}
    strong = {r["instruction"].split(":")[0]: r["output"]
              for r in json.loads((run / "export" / "probes" / "strong" / "hint_tuning.json").read_text())}
    assert strong["beta"] == "<think>\n" + SPARSE_MARKER + "First idea.\n</think>\n\nso it is 4."
    combined = json.loads((run / "export" / "combined" / "hint_tuning.json").read_text())
    assert [r["output"] for r in combined][1:] == [strong["beta"], strong["gamma"]]  # min: the shorter hints
    meta = [json.loads(line) for line in (run / "export" / "combined" / "hint_tuning.meta.jsonl").open()]
    assert [m["probe"] for m in meta] == ["instruct", "strong", "strong"]
    probes = result.summary["probes"]
    assert list(probes["models"]) == ["instruct", "strong"]
    assert probes["models"]["strong"]["states"] == {"No-Hint": 1, "Sparse-Hint": 2}
    assert probes["k_star_agreement"] == {"instruct vs strong": {"problems": 4, "same_state": 3, "same_k_star": 2}}
    assert probes["combined"]["from"] == {"instruct": 2, "strong": 2}
    assert (run / "probes.png").stat().st_size > 10_000
    with RunStore(run) as store:
        before = store.count()
    again = build(validate_config(two_probes(tmp_path)))  # a re-run asks nothing new
    with RunStore(run) as store:
        assert store.count() == before
    assert again.summary["probes"] == probes
    build(validate_config(two_probes(tmp_path, combine="max")))  # max: the longer hints
    meta = [json.loads(line) for line in (run / "export" / "combined" / "hint_tuning.meta.jsonl").open()]
    assert [(m["state"], m["k_star"], m["probe"]) for m in meta] == [
        ("No-Hint", 0, "instruct"), ("Sparse-Hint", 2, "instruct"), ("Full-Hint", None, "instruct")]


def test_a_failure_in_any_probe_keeps_the_problem_out_of_the_combined_dataset(tmp_path):
    from hinttune.construction.result import failure_causes

    result = build(validate_config(two_probes(tmp_path, strong_extra={"Be brief.\n<|user|>gamma": "!fail"})))
    assert {a.problem.split(":")[0]: a.state for a in result.assignments}["gamma"] == "Full-Hint"
    combined = [json.loads(line) for line in (tmp_path / "run" / "export" / "combined" / "excluded.jsonl").open()]
    gamma = next(e for e in combined if e["problem"].startswith("gamma"))
    assert gamma["state"] == "incomplete" and gamma["reason"].startswith("probe strong: ")
    causes = failure_causes(result)
    assert any(cause.startswith("probe strong: instruct attempt failed") for cause in causes)


def test_matched_random_and_first_correct_baselines(tmp_path):
    """matched-random deals Hint Tuning's states over the same problems, answers kept;
    first-correct has the think model answer after its own trace cut at k with </think>
    forced, and cuts at the first k that is right."""
    data = config_dict(tmp_path, assemble={"baselines": ["matched-random", "first-correct"]})
    forced = {r"re:beta: 2\+2\n<\|assistant\|>First idea\. Wait, second idea\.\s*\n</think>\n\n$": "The answer is 4.",
              r"re:gamma: 3\+3\n<\|assistant\|>.*third idea\.\s*\n</think>\n\n$": "The answer is 6.",
              r"re:\n</think>\n\n$": "The answer is 0."}
    data["think"]["answers"] = {**forced, **data["think"]["answers"]}
    result = build(validate_config(data))
    ht = {a.problem.split(":")[0]: a for a in result.assignments}
    export = tmp_path / "run" / "export" / "baselines"
    meta = {m["id"]: m for m in map(json.loads, (export / "matched-random" / "matched-random.meta.jsonl").open())}
    dealt = {name: meta.get(a.problem_id, {}).get("state") for name, a in ht.items()}
    assert sorted(filter(None, dealt.values())) == ["Full-Hint", "No-Hint", "Sparse-Hint"] and dealt["delta"] is None
    rows = {r["instruction"].split(":")[0]: r["output"]
            for r in json.loads((export / "matched-random" / "matched-random.json").read_text())}
    assert all(rows[name].endswith(ht[name].answer.strip()) for name in rows)  # each keeps its answer
    cut = {r["instruction"].split(":")[0]: r["output"]
           for r in json.loads((export / "first-correct" / "first-correct.json").read_text())}
    assert cut == {"beta": "<think>\nFirst idea. Wait, second idea.\n</think>\n\nThe answer is 4.",
                   "gamma": f"<think>\n{TRACE}\n</think>\n\nThe answer is 6."}
    compared = result.summary["baselines"]
    assert compared["matched-random"]["states"] == compared["hint-tuning"]["states"]
    assert compared["first-correct"]["states"] == {"cut trace": 2}
    assert 0 < compared["first-correct"]["trace_share"] < 1
    with RunStore(tmp_path / "run") as store:
        assert ("probe", "think:first-correct") in {(s.stage, s.role) for s in store.status()}
    again = build(validate_config(data))
    assert again.summary["baselines"] == compared  # the same deal, the same cuts


def test_with_no_judge_configured_each_probe_judges_its_own_answers(tmp_path):
    """As in the paper's runs of several probes (and no engine swapped in for another probe's
    judge calls); the think attempts are judged once, by the first."""
    data = two_probes(tmp_path)
    data["grading"] = {"grader": "judge"}
    data["instruct"][1]["model"] = "strong-model"
    build(validate_config(data))
    with RunStore(tmp_path / "run") as store:
        judged = {tuple(r) for r in store.db.execute(
            "SELECT role, model FROM generations WHERE stage='grade' GROUP BY role, model")}
    assert ("judge:attempts:think", "instruct") in judged
    assert not any(role == "judge:attempts:think" and model == "strong-model" for role, model in judged)
    assert ("judge:attempts:instruct", "strong-model") in judged  # the second probe's own answers


def test_a_failed_baseline_generation_fails_the_run_and_names_the_baseline(tmp_path):
    from hinttune.construction.result import failure_causes

    data = config_dict(tmp_path, assemble={"baselines": ["first-correct", "two-state"]})
    data["think"]["answers"] = {r"re:beta: 2\+2\n<\|assistant\|>.*\n</think>\n\n$": "!fail", **data["think"]["answers"]}
    result = build(validate_config(data))
    assert "incomplete" not in {a.state for a in result.assignments}  # Hint Tuning itself is whole
    causes = failure_causes(result)
    assert list(causes) == ["baseline first-correct: probe continuation k failed: scripted failure"]


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().split(")")[-1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return found


def test_sigterm_is_as_graceful_as_ctrl_c(tmp_path):
    """What a scheduler sends before a kill: what came back is kept, the grading workers
    stop, the run says so and exits 143; the re-run resumes to the same dataset."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config_dict(tmp_path, delay=0.3)))
    cmd = [sys.executable, "-m", "hinttune", "run", "-c", str(tmp_path / "run.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probes = wait_for_probes(tmp_path / "run", 2)
    workers = _children(proc.pid)
    assert workers, "the Math-Verify workers should be running"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert "terminated" in out and "Traceback" not in out
    time.sleep(0.5)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}") and
                open(f"/proc/{w}/stat").read().split(")")[-1].split()[0] != "Z"]
    with RunStore(tmp_path / "run") as store:
        assert store.db.execute("SELECT COUNT(*) FROM generations WHERE stage='probe'").fetchone()[0] >= probes
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(records(tmp_path / "run")) == 3


def test_a_run_directory_of_other_problems_is_refused(tmp_path, monkeypatch):
    from hinttune.core.errors import HinttuneError

    data = config_dict(tmp_path)
    build(validate_config(data))
    other = tmp_path / "problems.csv"
    other.write_text("problem,gold_answer\nalpha: 1+1,2\n")
    with pytest.raises(HinttuneError, match=r"holds a run of the problems in .*problems.json, not .*problems.csv"):
        build(validate_config({**data, "problems": {"source": str(other)}}))
    monkeypatch.chdir(tmp_path)  # the same file, named another way: the same run
    build(validate_config({**data, "problems": {"source": "./problems.json"}, "seed": 1}))


def test_baselines_no_longer_configured_leave_no_folder(tmp_path):
    data = config_dict(tmp_path, assemble={"baselines": ["full", "two-state"]})
    build(validate_config(data))
    folder = tmp_path / "run" / "export" / "baselines"
    assert {p.name for p in folder.iterdir()} == {"full", "two-state"}
    build(validate_config({**data, "assemble": {"baselines": ["full"]}}))
    assert {p.name for p in folder.iterdir()} == {"full"}
