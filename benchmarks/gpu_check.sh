#!/usr/bin/env bash
# The GPU check in one go (<= 8 minutes on one GPU; see benchmarks/gpu_check.py): run from
# anywhere, with the Python that has piikit (PYTHON, default python). Without CUDA it says
# so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
