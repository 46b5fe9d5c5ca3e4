#!/usr/bin/env bash
# The cpu-demo forecast, many seeds and recipe variants at once, on one GPU: a GPU runs a whole cpu-demo
# forecast in a fraction of the CPU's 13 minutes, so the recipe can be chosen on more seeds than a CPU allows.
# The CPU benchmark in BENCHMARKS.md is then run on the chosen recipe.
#
#   OUT=runs/grid-out DATA=/path/to/prepared/stdlib-v1024 bash benchmarks/gpu/gpu_forecast_grid.sh \
#       --variant base="" --variant b95="--recipe.optim.beta2 0.95"
#
# DATA is a prepared corpus folder (copied from the CPU machine, so both train on the same tokens); the
# arguments go to benchmarks/forecast_seeds.py. Python packages the machine lacks may be supplied as wheels in
# .whl/. Results: $OUT/summary.md, $OUT/summary.json and $OUT/grid.tgz (every forecast without checkpoints).
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
DATA=${DATA:?set DATA to a prepared corpus folder}
source "$(dirname "$0")/gpu_env.sh"
GRID=$WORK/forecast-grid
start=$(date +%s)
timeout "${GRID_TIMEOUT:-420}" python3 -m benchmarks.forecast_seeds --out "$GRID" "$@" -- --data.source "$DATA" \
  2>&1 | tee "$OUT/grid.log"
echo "grid wall seconds: $(( $(date +%s) - start ))" | tee -a "$OUT/grid.log"
cp "$GRID"/summary.* "$OUT"/ 2>/dev/null
tar czf "$OUT/grid.tgz" --exclude='checkpoints' --exclude='*.safetensors' --exclude='*.pt' -C "$WORK" forecast-grid
ls -la "$OUT"
