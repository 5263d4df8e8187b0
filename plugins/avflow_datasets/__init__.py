"""avflow built-in plugin: audio-visual training datasets (DiffPoseTalk's HDTF_TFHP LMDB layout).

Nodes: ``datasets.face_coefs`` (MediaPipe coefficients), ``datasets.npz_coefs`` (precomputed
coefficients), ``datasets.shard_writer`` (one video's shard) and ``datasets.build`` (the whole
dataset). Reading: :class:`avflow.datasets.AVClipDataset`. Registered through the
``avflow.plugins`` entry point like any third-party plugin.
"""

from avflow import hookimpl


@hookimpl
def avflow_register_nodes():
    from .nodes import NODES

    return list(NODES)
