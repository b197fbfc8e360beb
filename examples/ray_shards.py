"""Build a Hint Tuning dataset as N shards on a Ray cluster, then merge them.

Each shard is a Ray task that runs `hinttune run --shard I/N` in a process of its own, with the
GPUs Ray gives the task (CUDA_VISIBLE_DEVICES is set by Ray); a task whose node dies is run
again by Ray and resumes from its store. The run directory must be on storage every node
sees (NFS, Lustre): each shard writes RUN_DIR/shards/I-of-N, the merge reads them all.

    python examples/ray_shards.py -c paper.yaml -o /shared/runs/paper-1k --shards 8 --gpus 4
    python examples/ray_shards.py ... --address ray://head:10001   # a remote cluster

Exit status: 0 when the merged dataset is complete, 3 when problems are incomplete (the
merge names them; run the same command again to finish them), 1 when a shard failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import ray


@ray.remote(max_retries=3)
def build_shard(config: str, run_dir: str, index: int, count: int, extra: list[str]) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "hinttune", "run", "-c", config, "-o", run_dir,
                           "--shard", f"{index}/{count}", *extra], capture_output=True, text=True)
    return done.returncode, (done.stdout + done.stderr)[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-o", "--run-dir", required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--gpus", type=float, default=0, help="GPUs per shard")
    parser.add_argument("--cpus", type=float, default=1, help="CPUs per shard")
    parser.add_argument("--address", default="auto", help="the cluster (default: the one this node is in)")
    parser.add_argument("--set", action="append", default=[], help="a config override for every shard")
    args = parser.parse_args()
    ray.init(address=args.address)
    extra = [part for item in args.set for part in ("--set", item)]
    task = build_shard.options(num_gpus=args.gpus, num_cpus=args.cpus)
    pending = {task.remote(args.config, args.run_dir, i, args.shards, extra): i for i in range(1, args.shards + 1)}
    failed = []
    while pending:
        ready, _ = ray.wait(list(pending))
        index = pending.pop(ready[0])
        code, tail = ray.get(ready[0])
        print(f"shard {index}/{args.shards}: exit {code}", flush=True)
        if code not in (0, 3):  # 3: done, with incomplete problems (the merge reports them)
            failed.append(index)
            print(tail, file=sys.stderr)
    if failed:
        print(f"shards {failed} failed; run the same command again to resume them", file=sys.stderr)
        return 1
    shards = [f"{args.run_dir}/shards/{i}-of-{args.shards}" for i in range(1, args.shards + 1)]
    return subprocess.run([sys.executable, "-m", "hinttune", "merge", *shards, "-o", args.run_dir]).returncode


if __name__ == "__main__":
    sys.exit(main())
