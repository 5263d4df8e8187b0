#!/usr/bin/env bash
# Install (if needed) and diarize one video: who speaks when.
#   scripts/demo.sh VIDEO [OUTPUT_DIR] [--set KEY=VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: scripts/demo.sh VIDEO [OUTPUT_DIR] [avflow run options...]" >&2
  exit 2
fi
video="$1"; shift
out="out/diarize"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out="$1"; shift; fi
bash scripts/setup.sh
exec .venv/bin/avflow run diarize --set "video=$video" --output-dir "$out" "$@"
