# Sourced by the GPU benchmark scripts (gpu_session.sh, gpu_forecast_grid.sh) on a bare GPU machine: installs the
# Python packages the machine lacks from wheels in .whl/ (into $WORK/site), puts augury on PYTHONPATH, and records
# the GPU, torch and Python versions in $OUT/gpu.txt. Needs OUT set and the repository root as working directory;
# WORK (default runs/gpu) holds the runs, the data cache and the installed wheels.
export PYTHONUNBUFFERED=1
WORK=${WORK:-$PWD/runs/gpu}
mkdir -p "$OUT" "$WORK"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
    || exit 1
  export PYTHONPATH=$WORK/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export AUGURY_CACHE=${AUGURY_CACHE:-$WORK/cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print('torch', torch.__version__, 'python', sys.version.split()[0])" | tee -a "$OUT/gpu.txt"
