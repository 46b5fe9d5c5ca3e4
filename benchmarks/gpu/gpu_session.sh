#!/usr/bin/env bash
# One prepared GPU session: the checks that need an accelerator, in one short script (see BENCHMARKS.md).
#
#   OUT=runs/gpu-out bash benchmarks/gpu/gpu_session.sh       # on a machine with one CUDA GPU and PyTorch
#
# 1. benchmarks/gpu_mfu.py: MFU of augury's training step at GPT-2-small size (eager and torch.compile).
# 2. `augury forecast --preset gpu` on a corpus of Python source found on that machine (the site-packages
#    of the Python that runs this script, capped at GPU_CORPUS_BYTES), results tarred into $OUT.
# Python packages the machine lacks may be supplied as wheels in .whl/ (installed into $WORK/site; see README.md here).
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
source "$(dirname "$0")/gpu_env.sh"

timeout "${MFU_TIMEOUT:-150}" python3 -m benchmarks.gpu_mfu --steps 20 2>&1 | tee "$OUT/mfu.log"

CORPUS=${GPU_CORPUS:-$(python3 -c "import site; print(site.getsitepackages()[0])")}
echo "corpus: $CORPUS" | tee "$OUT/forecast.log"
start=$(date +%s)
timeout "${FORECAST_TIMEOUT:-420}" python3 -m augury forecast --preset gpu --out "$WORK/forecast-gpu" \
  --data.source "$CORPUS" --data.max_bytes "${GPU_CORPUS_BYTES:-240000000}" --progress false \
  "$@" 2>&1 | tee -a "$OUT/forecast.log"
echo "forecast wall seconds: $(( $(date +%s) - start ))" | tee -a "$OUT/forecast.log"
tar czf "$OUT/forecast-gpu.tgz" --exclude='checkpoint*' --exclude='*.safetensors' --exclude='*.pt' \
  -C "$WORK" forecast-gpu 2>/dev/null
ls -la "$OUT"
