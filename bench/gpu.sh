#!/usr/bin/env bash
# The GPU figures of issue 11 in one command, for a session lent a GPU (< 5 min once .venv exists):
# SyncNet windows/s (target >= 5,000) and the diarize graph with scorer=syncnet on CUDA
# (bench/gpu.py), then lip-sync generation fps (bench/lipsync.py, full-size random weights).
#   bash bench/gpu.sh [OUT_DIR]      # figures also written as JSON into OUT_DIR (default: bench-gpu-out)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-gpu-out}"
mkdir -p "$out"
[ -x .venv/bin/python ] || bash scripts/setup.sh
py=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
timeout 150 $py bench/gpu.py --device cuda --json "$out/gpu.json"
timeout 150 $py bench/lipsync.py --device cuda --frames 250 --json "$out/lipsync.json"
