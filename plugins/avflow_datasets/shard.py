"""Per-video shards: what the per-video graph hands to the LMDB writer.

``shard.npz`` (numpy, no pickles) holds ``shape``, ``exp``, ``pose`` (n, d) float32,
``face_found`` (n,) bool, ``audio`` (samples,) int16 mono at ``sample_rate`` (16000) with sample
0 at the time of coefficient frame 0, ``fps`` and ``n_frames`` (= min(n, samples // (16000 / fps))).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avflow import InputError, atomic_path

from .layout import COEF_KEYS, SAMPLE_RATE, SubjectData, audio_unit

#: The file the per-video graphs write (``datasets.shard_writer``'s ``path``) and the build reads.
SHARD_NAME = "shard.npz"
SHARD_KEYS = (*COEF_KEYS, "face_found", "audio", "sample_rate", "fps", "n_frames")


def write_shard(path: str | Path, coefs: dict[str, np.ndarray], face_found: np.ndarray, pcm16: np.ndarray,
                fps: float) -> Path:
    """Write a shard atomically (temp file, then rename)."""
    unit = audio_unit(fps)
    n = min(min(len(coefs[k]) for k in COEF_KEYS), len(pcm16) // unit)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(coefs[k], np.float32) for k in COEF_KEYS},
                     face_found=np.asarray(face_found, bool), audio=np.asarray(pcm16, np.int16),
                     sample_rate=np.int64(SAMPLE_RATE), fps=np.float64(fps), n_frames=np.int64(n))
    return Path(path)


def read_shard(path: str | Path, fps: float) -> tuple[SubjectData, dict[str, float]]:
    """A shard's coefficients and audio, checked against the build's ``fps``.

    :returns: the data and ``{"n_frames", "face_frames", "seconds"}``.
    :raises InputError: missing file or keys, or a shard made at another rate.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"per-video graph wrote no {path.name} in {path.parent} (a datasets.shard_writer "
                         "must write it)")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in SHARD_KEYS if k not in z.files]
        if missing:
            raise InputError(f"{path}: lacks {', '.join(missing)}; a shard has {', '.join(SHARD_KEYS)}")
        if int(z["sample_rate"]) != SAMPLE_RATE or abs(float(z["fps"]) - fps) > 1e-9:
            raise InputError(f"{path}: made at {float(z['fps']):g} fps / {int(z['sample_rate'])} Hz, but this "
                             f"build uses {fps:g} fps / {SAMPLE_RATE} Hz; build again without resume")
        coefs = {k: np.asarray(z[k], np.float32) for k in COEF_KEYS}
        audio = np.asarray(z["audio"], np.int16)
        found = np.asarray(z["face_found"], bool)
        n = int(z["n_frames"])
    return SubjectData(coefs, audio), {"n_frames": n, "face_frames": int(found[:n].sum()),
                                      "seconds": n / fps}
