"""Probe-stage wall clock on the real vLLM engine: the official loop (one problem, one request
at a time), hinttune's probe stage (a task per problem, every problem's next k in the engine at
once) and the same with the look-ahead into idle slots (fill_batch = the engine's
max_in_flight), on the same problems, traces, seeds and greedy decoding.

The demo's problems and model (SmolLM2-135M-Instruct as a Hugging Face checkpoint: make one
with `hinttune convert-gguf`) run on vLLM's CPU build (or the CUDA build on a GPU). Attempts,
grades and segments are made once; each schedule then probes from a copy of that run, so each
generates its own continuations. Printed per schedule: probe seconds, generations, K* per
problem (must agree), and the mean number of requests in the engine at its steps. (In a run
the searches start inside the per-problem pipeline; here the probe stage's searches run on
their own, to time the schedules alone.)

    python bench/probe_wallclock_vllm.py --model smollm2-hf [--limit 14] [--max-in-flight 64]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from statistics import mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Hugging Face checkpoint of the demo model")
    parser.add_argument("--limit", type=int, default=14)
    parser.add_argument("--max-in-flight", type=int, default=64)
    args = parser.parse_args()

    import hinttune.construction.pipeline as pipeline
    from hinttune.construction.per_problem import probe_target
    from hinttune.construction.policy import Policy
    from hinttune.construction.probe.search import ProbeSetup, run_probes
    from hinttune.core.backends import BackendPool
    from hinttune.core.config import load_config
    from hinttune.core.grading import UNGRADED, Grader
    from hinttune.core.store import RunStore

    engine = ["max_model_len=2048", "dtype=float32", "gpu_memory_utilization=0.15",
              "engine_kwargs={enforce_eager: true, kv_cache_memory_bytes: 268435456}", f"max_in_flight={args.max_in_flight}"]
    overrides = [f"problems.limit={args.limit}", "probe.fill_batch=0"]
    for role in ("think", "instruct"):
        overrides += [f"{role}.backend=vllm", f"{role}.model={args.model}", f"{role}.gguf_file=null"]
        overrides += [f"{role}.{e}" for e in engine]
    work = Path(tempfile.mkdtemp(prefix="probe-wallclock-"))

    shared = BackendPool()  # one engine for every schedule: load it once
    shared_close, shared.close = shared.close, lambda: None
    pipeline.BackendPool = lambda frozen=None: shared
    base = load_config("demo", overrides + [f"run_dir={work / 'base'}"])
    made = pipeline.build(base, until="segment")
    targets = [t for p in made.problems if p.id in made.episodes and (t := probe_target(
        Policy.of(base), p, made.episodes[p.id], made.verdicts["think"].get(p.id, UNGRADED),
        made.verdicts["instruct"].get(p.id, UNGRADED))) is not None]

    timings, results = {}, {}
    for schedule in ("official", "continuous", "look-ahead"):
        run_dir = work / schedule
        shutil.copytree(work / "base", run_dir)
        fill = args.max_in_flight if schedule == "look-ahead" else 0
        cfg = load_config("demo", overrides + [f"run_dir={run_dir}", f"probe.fill_batch={fill}"])
        backend = shared.get(cfg.instruct)
        backend.occupancy.clear()
        with RunStore(run_dir) as store:
            grader = Grader(cfg, store, shared)
            setup = ProbeSetup.of(cfg, shared, grader)
            started = time.perf_counter()
            if schedule == "official":  # one problem after another, one request at a time
                results[schedule] = {}
                for target in targets:
                    results[schedule].update(run_probes(setup, store, grader, [target]))
            else:
                results[schedule] = run_probes(setup, store, grader, targets)
            timings[schedule] = (time.perf_counter() - started, list(backend.occupancy))
            grader.close()
    shared_close()

    reference = {pid: o.k_star for pid, o in results["official"].items()}
    print(f"{len(reference)} problems probed, engine max_in_flight {args.max_in_flight}")
    print(f"{'schedule':>11} {'seconds':>8} {'generations':>12} {'mean in engine':>15} {'same K*':>8}")
    for schedule, (seconds, occupancy) in timings.items():
        outcomes = results[schedule]
        same = {pid: o.k_star for pid, o in outcomes.items()} == reference
        gens = sum(len(o.attempts) + o.ahead for o in outcomes.values())
        print(f"{schedule:>11} {seconds:>8.1f} {gens:>12} "
              f"{(mean(occupancy) if occupancy else 0):>15.1f} {str(same):>8}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
