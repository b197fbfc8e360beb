"""The shard examples on real schedulers: the Ray driver on a local two-node Ray cluster, and
the Slurm array + dependent merge on a one-node Slurm cluster (slurmctld, slurmd, munge) that
the test starts. Each merged dataset must be byte for byte the single run's."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config

from test_shards import scenario

pytest.importorskip("math_verify")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def single_run(tmp_path: Path) -> tuple[Path, Path]:
    data = scenario(tmp_path, 12)
    build(validate_config(data))
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**data, "run_dir": str(tmp_path / "big")}))
    return config, tmp_path / "whole" / "export" / "hint_tuning.json"


@pytest.mark.slow
def test_the_ray_driver_runs_shards_on_a_two_node_cluster_then_merges(tmp_path):
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    config, expected = single_run(tmp_path)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        done = subprocess.run([sys.executable, str(EXAMPLES / "ray_shards.py"), "-c", str(config),
                               "-o", str(tmp_path / "big"), "--shards", "3", "--address", cluster.address],
                              capture_output=True, text=True, timeout=400)
    finally:
        cluster.shutdown()
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(f"shard {i}/3: exit 0" in done.stdout for i in (1, 2, 3))
    assert (tmp_path / "big" / "export" / "hint_tuning.json").read_bytes() == expected.read_bytes()


def _start_slurm(tmp_path: Path) -> dict:
    """A one-node Slurm cluster in tmp_path; skips with the reason when it cannot start."""
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.skip(f"no {tool}: install Slurm to run this test (Debian: apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root here")
    state = tmp_path / "slurm"
    for sub in ("state", "spool", "munge", "log"):
        (state / sub).mkdir(parents=True)
    os.chmod(state / "munge", 0o700)
    key = state / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    socket = state / "munge" / "munge.socket"
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    cpus = os.cpu_count() or 1
    conf = state / "slurm.conf"
    conf.write_text(f"""ClusterName=hinttune-test
SlurmctldHost={host}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={state / 'state'}
SlurmdSpoolDir={state / 'spool'}
SlurmctldPidFile={state / 'slurmctld.pid'}
SlurmdPidFile={state / 'slurmd.pid'}
SlurmctldLogFile={state / 'log' / 'slurmctld.log'}
SlurmdLogFile={state / 'log' / 'slurmd.log'}
SlurmctldPort=46817
SlurmdPort=46818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munged = subprocess.Popen(["munged", "-F", "--force", f"--key-file={key}", f"--socket={socket}",
                               f"--pid-file={state / 'munge' / 'munged.pid'}", f"--log-file={state / 'log' / 'munge.log'}",
                               f"--seed-file={state / 'munge' / 'seed'}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(1)
    daemons = [munged, subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)]
    time.sleep(2)
    daemons.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
        if info.returncode == 0 and info.stdout.strip() in ("idle", "mixed"):
            return {"env": env, "daemons": daemons, "state": state}
        if any(d.poll() is not None for d in daemons):
            break
        time.sleep(1)
    for d in daemons:
        d.kill()
    logs = "\n".join(p.read_text()[-600:] for p in (state / "log").glob("*.log"))
    pytest.skip(f"the one-node Slurm cluster did not start: {logs or 'no log'}")


def _wait_for_an_empty_queue(env: dict, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout
        if not queue.strip():
            return
        time.sleep(2)


def _stop_slurm(slurm: dict) -> None:
    subprocess.run(["scancel", "--user", "root"], env=slurm["env"], capture_output=True)
    for daemon in reversed(slurm["daemons"]):
        daemon.terminate()
    for daemon in slurm["daemons"]:
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()


@pytest.mark.slow
def test_a_slurm_array_and_a_dependent_merge_build_the_single_runs_dataset(tmp_path):
    slurm = _start_slurm(tmp_path)
    config, expected = single_run(tmp_path)
    env = {**slurm["env"], "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    try:
        submitted = subprocess.run([str(EXAMPLES / "slurm" / "submit.sh"), str(config), str(tmp_path / "big"), "3"],
                                   env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        merge_job = submitted.stdout.split("merge: job ")[1].split()[0]
        _wait_for_an_empty_queue(env, 400)
        outputs = {p.name: p.read_text() for p in Path(tmp_path).glob("hinttune-*.out")}
        merged = tmp_path / "big" / "export" / "hint_tuning.json"
        assert merged.exists(), json.dumps(outputs, indent=1)[-3000:]
        assert merged.read_bytes() == expected.read_bytes()
        assert f"hinttune-merge-{merge_job}.out" in outputs
        assert len([n for n in outputs if n.startswith("hinttune-shard-")]) == 3
    finally:
        _stop_slurm(slurm)


@pytest.mark.slow
def test_an_experiment_as_slurm_arrays_trains_evaluates_and_tabulates(tmp_path, smollm_hf):
    """examples/slurm/experiment.sh: the trainings as one array (the small model, two steps
    each), the evaluations as a dependent array, then the table - as one process would."""
    from test_pipeline import config_dict

    slurm = _start_slurm(tmp_path)
    build(validate_config(config_dict(tmp_path, assemble={"baselines": ["full"]})))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"problem": "what is 2+2", "answer": "4"}) + "\n")
    experiment = {"name": "slurm", "output_dir": str(tmp_path / "exp"), "run": str(tmp_path / "run"),
                  "datasets": ["hint-tuning", "full"],
                  "training": {"model": str(smollm_hf), "set": {
                      "global_batch_size": 2, "num_train_epochs": 1, "max_length": 128, "quick": True,
                      "report_to": ["none"], "learning_rate": 1e-5}},
                  "evaluation": {"backend": "fake", "model": {"answers": {"2+2": "The answer is 4."}},
                                 "set": {"benchmarks": ["mini"], "data_files": {"mini": str(bench)}, "n": 1}}}
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(experiment))
    env = {**slurm["env"], "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    try:
        submitted = subprocess.run([str(EXAMPLES / "slurm" / "experiment.sh"), str(config)],
                                   env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert "array 0-1" in submitted.stdout
        _wait_for_an_empty_queue(env, 900)
        outputs = {p.name: p.read_text()[-1500:] for p in Path(tmp_path).glob("hinttune-exp*.out")}
        table = tmp_path / "exp" / "experiment.json"
        assert table.exists(), json.dumps(outputs, indent=1)[-4000:]
        rows = json.loads(table.read_text())["rows"]
        assert {r["model"] for r in rows} == {"base", "hint-tuning", "full"}
        assert len([n for n in outputs if n.startswith("hinttune-exp-") and "table" not in n]) == 2 + 3
    finally:
        _stop_slurm(slurm)
