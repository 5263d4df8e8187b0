"""The per-video graphs that ``datasets.build`` runs over every input video.

Each decodes 16 kHz mono audio, gets per-frame coefficients from one source and writes a shard
(``shard.npz``: coefficients + audio, see :mod:`avflow_datasets.shard`) into its output folder.
They are the same graphs as ``graphs/dataset_video.yaml`` and ``graphs/dataset_video_npz.yaml``
(a test keeps them equal); building them here keeps the build working from an installed package.

A custom per-video graph (``datasets.build`` param ``video_graph``) follows the same contract:
a ``video`` (path) parameter, optionally ``fps``, ``videos_root``, ``coef_dir`` and
``max_missing_faces``, and a ``datasets.shard_writer`` writing ``shard.npz``.
"""

from __future__ import annotations

from typing import Any

SHARD_NAME = "shard.npz"

_COMMON_PARAMS: dict[str, Any] = {
    "video": {"type": "path", "required": True, "doc": "input video"},
    "fps": {"type": "float", "default": 25.0,
            "doc": "coefficient frame rate; 16000/fps audio samples per frame (must be whole)"},
}


def mediapipe_video_graph() -> dict[str, Any]:
    """decode (video at ``fps``, 16 kHz mono audio) -> datasets.face_coefs -> datasets.shard_writer."""
    return {
        "name": "dataset_video",
        "description": "One video of an audio-visual dataset: MediaPipe face coefficients and 16 kHz "
                       "mono audio written as a shard (shard.npz) for datasets.build.",
        "params": {
            **_COMMON_PARAMS,
            "max_missing_faces": {"type": "float", "default": 0.2,
                                  "doc": "largest fraction of frames without a face (interpolated)"},
        },
        "nodes": {
            "decode": {"type": "media.decode",
                       "params": {"path": "${video}", "fps": "${fps}", "audio_rate": 16000, "audio_channels": 1}},
            "coefs": {"type": "datasets.face_coefs", "inputs": {"frames": "decode.video"},
                      "params": {"max_missing": "${max_missing_faces}"}},
            "shard": {"type": "datasets.shard_writer", "inputs": {"coefs": "coefs.coefs", "audio": "decode.audio"},
                      "params": {"path": SHARD_NAME, "fps": "${fps}"}},
        },
        "outputs": {"shard": "shard.shard"},
    }


def npz_video_graph() -> dict[str, Any]:
    """decode (16 kHz mono audio only) + datasets.npz_coefs -> datasets.shard_writer."""
    return {
        "name": "dataset_video_npz",
        "description": "One video of an audio-visual dataset: precomputed coefficients "
                       "(<coef_dir>/<relative path>.npz) and 16 kHz mono audio written as a shard "
                       "(shard.npz) for datasets.build.",
        "params": {
            **_COMMON_PARAMS,
            "coef_dir": {"type": "path", "required": True,
                         "doc": "folder of <video path relative to videos_root>.npz with shape/exp/pose"},
            "videos_root": {"type": "path", "default": None,
                            "doc": "folder the relative path is taken from (default: the video's folder)"},
        },
        "nodes": {
            "decode": {"type": "media.decode",
                       "params": {"path": "${video}", "audio_rate": 16000, "audio_channels": 1}},
            "coefs": {"type": "datasets.npz_coefs",
                      "params": {"path": "${video}", "coef_dir": "${coef_dir}", "videos_root": "${videos_root}",
                                 "fps": "${fps}"}},
            "shard": {"type": "datasets.shard_writer", "inputs": {"coefs": "coefs.coefs", "audio": "decode.audio"},
                      "params": {"path": SHARD_NAME, "fps": "${fps}"}},
        },
        "outputs": {"shard": "shard.shard"},
    }
