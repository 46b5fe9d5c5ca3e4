#!/usr/bin/env bash
# The scale checks that need a GPU, in one short script (about 7 minutes on one H100; each step has a timeout).
#
#   OUT=runs/gpu-check bash benchmarks/gpu/gpu_check.sh       # on a machine with one CUDA GPU and PyTorch
#
# 1. benchmarks/gpu_mfu.py: MFU of augury's training step at the 124M class (depth 12, d_model 768, vocab 50304,
#    seq 1024, batch each of MFU_BATCHES), bf16, eager (first batch only) and torch.compile, against the GPU's
#    data-sheet dense bf16 peak (augury.train.runtime.GPU_BF16_PEAKS: H100 SXM and PCIe differ) and a measured
#    matmul, then a profile: device time by kind of kernel and the share of the step the device sat idle.
# 2. benchmarks/gpu_fsdp.py: the 124M class trained 60 steps on real tokens (the machine's Python standard library,
#    vocab 8192) under torchrun on this GPU with torch.compile in bf16: parallel ddp twice (the second measures
#    run-to-run nondeterminism), parallel fsdp (FSDP2) with fp32 and with bf16 gathered parameters, and fsdp
#    stopped halfway and resumed from its sharded checkpoint: tokens/s, MFU, losses and their differences.
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
source "$(dirname "$0")/gpu_env.sh"

variants=eager,compiled  # eager at the first batch size only: the compiled step is the one MFU is quoted for
for batch in ${MFU_BATCHES:-16 32}; do
  timeout "${MFU_TIMEOUT:-150}" python3 -m benchmarks.gpu_mfu --steps 30 --batch "$batch" --variants "$variants" \
    --profile 2>&1 | tee -a "$OUT/mfu.log"
  variants=compiled
done
timeout "${FSDP_TIMEOUT:-360}" python3 -m benchmarks.gpu_fsdp --out "$WORK/fsdp" --max-bytes "${FSDP_CORPUS_BYTES:-20000000}" \
  --variants "${FSDP_VARIANTS:-ddp,ddp-repeat,fsdp,fsdp-bf16,fsdp-resumed}" \
  2>&1 | tee "$OUT/gpu_fsdp.log"
cp "$WORK"/fsdp/summary.json "$OUT/fsdp-summary.json" 2>/dev/null
# the runs' own output and metrics, in one file (a device call brings back at most 8)
(cd "$WORK/fsdp" && tar czf "$OUT/fsdp-runs.tgz" ./*.log ./*/metrics.jsonl ./*/manifest.json 2>/dev/null)
ls -la "$OUT"
