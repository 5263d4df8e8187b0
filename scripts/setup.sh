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
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "installing into $VENV (once; a few minutes): torch==2.13.0 (CPU), then avflow and its dependencies" \
       "(mediapipe, diffusers, transformers, librosa, silero-vad, resemblyzer, pyannote.metrics, ray, pytest)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  # editable_mode=compat: a path entry, not an import hook, so that a folder named avflow/ in the
  # current directory (the parent of this clone, say) cannot shadow the package as a namespace.
  # That entry is the clone's root; the built-in plugins live under plugins/, added the same way.
  "$VENV/bin/python" -m pip install --quiet -e ".[test]" --config-settings editable_mode=compat
  # Resemblyzer (voice embeddings; its weights are in the wheel) requires `webrtcvad`, which only
  # builds from source; the project brings the same module from `webrtcvad-wheels`. Installed last
  # and alone, so pip's check of the project install does not report the name it cannot match.
  "$VENV/bin/python" -m pip install --quiet --no-deps "resemblyzer==0.1.4"
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$PWD/plugins" > "$site/__editable__.avflow-plugins.pth"
  echo "installed; avflow is $VENV/bin/avflow" >&2
  echo "$want" > "$stamp"
fi
