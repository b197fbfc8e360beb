#!/bin/bash
# Usage: examples/slurm/experiment.sh EXPERIMENT.yaml [sbatch options for every job...]
# e.g.   examples/slurm/experiment.sh exp.yaml --gres=gpu:1 --time=24:00:00
# Every training as one array, every evaluation as a second array once all trainings are done,
# then the table. The construction run must exist (or be built here first: the listing builds it).
set -euo pipefail
config=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
count() { hinttune experiment -c "$config" --jobs --stage "$1" | wc -l; }
trainings=$(count train) evaluations=$(count eval)
train=$(sbatch --parsable --array="0-$((trainings - 1))" --export=ALL,CONFIG="$config" "$@" \
        "$here/experiment.sbatch" train)
evaluate=$(sbatch --parsable --dependency="afterok:${train%%;*}" --array="0-$((evaluations - 1))" \
           --export=ALL,CONFIG="$config" "$@" "$here/experiment.sbatch" eval)
table=$(sbatch --parsable --dependency="afterok:${evaluate%%;*}" --job-name=hinttune-exp-table \
        --output=hinttune-exp-table-%j.out --wrap "hinttune experiment -c '$config' --report")
echo "trainings: job $train (array 0-$((trainings - 1))) · evaluations: job $evaluate · table: job $table"
