"""avflow built-in plugin: the shipped graphs (registered through the avflow.plugins entry point).

The YAML files beside this module, found by name from any folder (``avflow run diarize``) and
installed with the package:

- ``diarize``: speaker diarization (who speaks when) from lip/audio synchrony.
- ``lipsync``: MuseTalk-style lip-sync generation.
- ``dataset``: an audio-visual LMDB in DiffPoseTalk's HDTF_TFHP layout; it runs
  ``dataset_video`` (MediaPipe coefficients) or ``dataset_video_npz`` (precomputed ones) per video.
- ``transcode``: decode, resize, mux.

In a checkout, ``graphs/`` at the repository root links here, so ``avflow run graphs/diarize.yaml``
works from there too. The graphs use nodes of the other built-in plugins; this package imports
none of them.
"""

from __future__ import annotations

from pathlib import Path

from avflow import hookimpl

GRAPH_DIR = Path(__file__).resolve().parent


@hookimpl
def avflow_register_graph_dirs():
    return [str(GRAPH_DIR)]
