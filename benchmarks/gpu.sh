#!/usr/bin/env bash
# GPU benchmark of jaxal (issue 9, item 6): seeds vmapped over S = 1, 8, 32,
# 128 for the MLP, the small CNN and ResNet-18 on CIFAR-shaped synthetic data,
# the acquisition kernels at N = 1M, and one AL round of ResNet-18 on 50k
# images, under 8 minutes on one GPU. Writes gpu.md (tables) and gpu.json to
# --out (default: $OUT if set, else benchmarks/results/gpu). See
# benchmarks/gpu.py for what is measured and benchmarks/README.md, "GPU".
#
#   bash benchmarks/gpu.sh                    # one GPU, < 8 min (--budget_s 420)
#   bash benchmarks/gpu.sh --cpu_smoke        # tiny sizes on CPU, ~1 min: the script works
#   PYTHON=/path/to/python bash benchmarks/gpu.sh --out /tmp/gpu
#
# Nothing is downloaded or installed: the data are synthetic and the script
# needs an interpreter that already has jax with CUDA plus jaxal's
# dependencies. On a GPU machine without internet, from wheels brought along:
#   pip install --no-index --find-links WHEELS "jax[cuda12]>=0.10,<0.11"
#   pip install --no-index --find-links WHEELS -e .
# (jax[cuda12] = jax + jaxlib + the jax-cuda12 plugin/pjrt and the nvidia-* CUDA
# wheels, the same jax version as pyproject.toml's). The repo root is put on
# PYTHONPATH, so an uninstalled checkout works when the dependencies are there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
PY="${PYTHON:-.venv/bin/python}"
if [[ -z "${PYTHON:-}" && ! -x "$PY" ]]; then
    PY="$(command -v python3 || command -v python)"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# One process, many differently sized programs: let XLA grow its GPU pool
# instead of grabbing 75% up front (an out-of-memory case is then reported
# for that configuration only). Override by setting the variable yourself.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"

if ! err="$("$PY" -c "import jax, jaxal" 2>&1)"; then
    echo "$err" | tail -3 >&2
    echo "gpu.sh: '$PY' cannot import jax and jaxal's dependencies; set PYTHON= to one that can" >&2
    exit 2
fi
exec "$PY" benchmarks/gpu.py "$@"
