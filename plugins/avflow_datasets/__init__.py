"""avflow built-in plugin: audio-visual training datasets (DiffPoseTalk's HDTF_TFHP LMDB layout).

Nodes (in :mod:`.nodes`):

- ``datasets.face_coefs``: per-frame shape/exp/pose coefficients from MediaPipe's face mesh.
- ``datasets.npz_coefs``: precomputed coefficients from ``<coef_dir>/<relative path>.npz``.
- ``datasets.shard_writer``: one video's coefficients and audio as ``shard.npz``.
- ``datasets.build``: the whole dataset (the per-video graph over every video, then the LMDB).

The Python API, imported on first use (torch only then):

.. code-block:: python

    from avflow_datasets import AVClipDataset, build_dataset

    report = build_dataset("videos/", "data/lmdb", seg_len=100, fps=25)
    ds = AVClipDataset("data/lmdb", "data/lmdb/train.txt", coef_stats_file="data/lmdb/stats_train.npz")
    audio_pair, coef_pair, (audio_mean, audio_std) = ds[0]

Registered through the ``avflow.plugins`` entry point like any third-party plugin. The LMDB
layout is documented in ``docs/formats.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from avflow import hookimpl

_API = {"AVClipDataset": ".reader", "BuildReport": ".build", "build_dataset": ".build",
        "UnsafePickleError": ".pickles", "safe_loads": ".pickles"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'avflow_datasets' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


@hookimpl
def avflow_register_nodes():
    from .nodes import NODES

    return list(NODES)
