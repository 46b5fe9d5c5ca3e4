#!/usr/bin/env bash
# Set up augury in ./.venv: keep a torch the user already has, never pull a multi-GB CUDA build onto a
# CPU-only machine, then install augury (editable); with --test also its test extras (pytest, transformers for
# the export parity tests, lm-eval for the evaluation parity tests). Safe to run again (idempotent).
#
#   bash scripts/setup.sh            # PYTHON=python3.11 to choose the interpreter
#   bash scripts/setup.sh --test     # and what the test suite needs
#   AUGURY_TORCH_INDEX=URL bash scripts/setup.sh   # take torch from another index (e.g. PyTorch's CPU index)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=""
for arg in "$@"; do
  case "$arg" in
    --test) EXTRAS="[test,bench]" ;;  # bench: lm-eval, for the parity tests (installs in ~20 s; runs offline)
    *) echo "setup: error: unknown option $arg (the only one is --test)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
TORCH_PIN=${AUGURY_TORCH_VERSION:-2.13.0}

# --system-site-packages: a torch installed in the user's Python stays visible and is reused as is.
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
pip_q() { "$VPY" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }

if "$VPY" -c "import torch" 2>/dev/null; then
  echo "setup: keeping torch $("$VPY" -c 'import torch; print(torch.__version__)')"
else
  has_gpu=0
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then has_gpu=1; fi
  idx=()
  [ -n "${AUGURY_TORCH_INDEX:-}" ] && idx=(--index-url "$AUGURY_TORCH_INDEX")
  if [ "$has_gpu" = 0 ]; then
    # Check before installing: resolve without downloading, and refuse a CUDA build on a CPU-only machine.
    report=$(mktemp)
    "$VPY" -m pip install --quiet --dry-run --report "$report" "${idx[@]}" "torch==$TORCH_PIN" 2>/dev/null || true
    if "$VPY" - "$report" <<'PYEOF'
import json, sys
try:
    names = [p["metadata"]["name"].lower() for p in json.load(open(sys.argv[1])).get("install", [])]
except Exception:
    names = []
sys.exit(1 if any(n.startswith("nvidia-") for n in names) else 0)
PYEOF
    then :; else
      echo "setup: error: this machine has no NVIDIA GPU, but 'torch==$TORCH_PIN' from the configured index" >&2
      echo "  is a CUDA build (several GB). Install a CPU build of torch first, or rerun with" >&2
      echo "  AUGURY_TORCH_INDEX=<a CPU wheel index, such as PyTorch's /whl/cpu index>." >&2
      rm -f "$report"; exit 1
    fi
    rm -f "$report"
  fi
  echo "setup: installing torch==$TORCH_PIN"
  pip_q "${idx[@]}" "torch==$TORCH_PIN"
fi

pip_q -e ".$EXTRAS"
if [ -n "$EXTRAS" ] && ! command -v chromium >/dev/null 2>&1; then
  # The chat page's browser test drives the distribution's Chromium (Playwright's own browser download needs
  # a network that package registries alone do not give).
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium (Debian package) for the browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
      || echo "setup: could not install chromium; the browser test will be skipped" >&2
  else
    echo "setup: chromium not found; the browser test will be skipped (install your distribution's chromium)" >&2
  fi
fi
"$VPY" -c "import augury, torch; print(f'setup: augury {augury.__version__} ready (torch {torch.__version__})')"
