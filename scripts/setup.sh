#!/usr/bin/env bash
# Create or reuse .venv and install avflow into it: torch==2.13.0 first and explicitly (an
# unpinned torch would pull several GB of CUDA packages), then the project with its test extras.
# Re-running is cheap: nothing is reinstalled while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $($PYTHON --version)" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.avflow-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  # Resemblyzer (voice embeddings; its weights are in the wheel) requires `webrtcvad`, which only
  # builds from source: install the same module from `webrtcvad-wheels`, then Resemblyzer alone.
  "$VENV/bin/python" -m pip install --quiet "webrtcvad-wheels>=2.0.10"
  "$VENV/bin/python" -m pip install --quiet --no-deps "resemblyzer==0.1.4"
  "$VENV/bin/python" -m pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
fi
