#!/usr/bin/env bash
# The GPU run (under 8 minutes on one GPU): see benchmarks/gpu_run.py.
#   bash benchmarks/gpu.sh --output-dir output/benchmark/gpu
#   bash benchmarks/gpu.sh --smoke --output-dir /tmp/gpu_smoke   # tiny, on the CPU
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$here/../.venv/bin/python}"
[ -x "$python" ] || python=python3
exec "$python" "$here/gpu_run.py" "$@"
