#!/usr/bin/env bash
# GPU check (bench/README.md, "GPU check"): the GPU's nvidia-smi facts, then bench/gpu_check.py
# with the project's sources on PYTHONPATH and the machine's own python3; the JSON goes to
# $OUT/gpu_check.json when OUT is set (written after every section, so a run stopped by the
# time limit keeps what it measured). Extra arguments go to gpu_check.py (e.g. --kd-batch 32).
#
# Run from anywhere: bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  fields=name,driver_version,memory.total,power.limit,clocks.max.sm,mig.mode.current
  nvidia-smi --query-gpu="$fields" --format=csv || nvidia-smi
else
  echo "nvidia-smi not found"
fi

args=()
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  args=(--out "$OUT/gpu_check.json")
fi
echo "== PYTHONPATH=src python3 bench/gpu_check.py ${args[*]-} $*"
# the check is sized to finish in under 8 minutes; 470 s stops it short of that whatever happens
limit=()
if command -v timeout >/dev/null 2>&1; then limit=(timeout 470); fi
PYTHONPATH=src ${limit[@]+"${limit[@]}"} python3 bench/gpu_check.py ${args[@]+"${args[@]}"} "$@"
