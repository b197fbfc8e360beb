#!/bin/bash
# Usage: examples/slurm/submit.sh CONFIG RUN_DIR SHARDS [sbatch options for the shards...]
# e.g.   examples/slurm/submit.sh paper.yaml runs/paper-1k 8 --gres=gpu:4 --time=12:00:00
set -euo pipefail
config=$1 run_dir=$2 shards=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
array=$(sbatch --parsable --array="1-$shards" --export=ALL,CONFIG="$config",RUN_DIR="$run_dir" \
        "$@" "$here/shards.sbatch")
merge=$(sbatch --parsable --dependency="afterany:${array%%;*}" \
        --export=ALL,RUN_DIR="$run_dir",SHARDS="$shards" "$here/merge.sbatch")
echo "shards: job $array (array 1-$shards) · merge: job $merge"
echo "progress: hinttune status $run_dir"
