#!/usr/bin/env bash
# Slurm: the compatibility matrix as a job array, one shard per task, then a merge job.
#
#   sbatch --array=0-15 examples/ci/slurm-matrix.sh /data/loras /scratch/matrix
#   sbatch --dependency=afterany:JOBID --wrap \
#     "lora-verify matrix --merge /scratch/matrix/shard-*/compatibility.json --out /scratch/matrix/merged"
#
# Every task must see the same lora-verify build, the same INPUTS and the same options:
# the shards record a run fingerprint and --merge refuses shards of different runs.
#SBATCH --job-name=lora-matrix
#SBATCH --cpus-per-task=4
#SBATCH --time=02:00:00
#SBATCH --output=lora-matrix-%A_%a.out
set -euo pipefail
inputs=${1:?usage: slurm-matrix.sh DIR_OF_LORAS OUT_DIR}
out=${2:?usage: slurm-matrix.sh DIR_OF_LORAS OUT_DIR}
count=${SLURM_ARRAY_TASK_COUNT:?submit with sbatch --array=0-(N-1)}
index=${SLURM_ARRAY_TASK_ID:?}
# Exit 1 means a cell is not equivalent: recorded in the shard, judged after the merge.
lora-verify matrix --shard "$index/$count" --jobs "${SLURM_CPUS_PER_TASK:-1}" \
  --converter "mine=python3 $HOME/tools/convert_lora.py {in} {out}" --converter-timeout 600 \
  --out "$out/shard-$index" "$inputs" || [ $? -eq 1 ]
