"""Helpers for the datasets tests, written from the layout alone (lmdb + pickle + soundfile).

``write_reference_lmdb`` writes what DiffPoseTalk's preprocessing writes; ``reference_item``
computes what DiffPoseTalk's ``LmdbDataset.__getitem__`` returns for a given crop start. Neither
uses avflow, so agreeing with them means agreeing with the layout and the original loader.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def write_reference_lmdb(path: Path, subjects: dict, seg_len: int, unit: int = 640) -> Path:
    """subjects: key -> (coefs dict of (n, d) arrays, int16 audio). n_frames = min(coef, audio // unit)."""
    import lmdb
    import soundfile as sf

    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=256 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"metadata", pickle.dumps({"seg_len": seg_len}, protocol=pickle.HIGHEST_PROTOCOL))
        for key, (coefs, audio) in subjects.items():
            n = min(coefs["shape"].shape[0], audio.shape[0] // unit)
            txn.put(f"{key}/metadata".encode(), pickle.dumps({"n_frames": n}, protocol=pickle.HIGHEST_PROTOCOL))
            for i in range(math.ceil(n / seg_len)):
                a, b = i * seg_len, min((i + 1) * seg_len, n)
                buf = io.BytesIO()
                sf.write(buf, audio[a * unit:b * unit], 16000, format="FLAC", subtype="PCM_16")
                value = {"audio": buf.getvalue(), "coef": {k: v[a:b] for k, v in coefs.items()}}
                txn.put(f"{key}/{i:03d}".encode(), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    env.close()
    return path


def reference_item(lmdb_dir: Path, entry: str, start_frame: int, n_motions: int, stats: dict | None,
                   coef_fps: float = 25):
    """DiffPoseTalk's LmdbDataset item for ``entry`` cropped at ``start_frame``."""
    import lmdb
    import soundfile as sf
    import torch

    audio_unit = 16000.0 / coef_fps
    total = 2 * n_motions
    n_audio = round(audio_unit * n_motions)
    env = lmdb.open(str(lmdb_dir), readonly=True, lock=False, readahead=False, meminit=False)
    try:
        with env.begin() as txn:
            clip_len = pickle.loads(txn.get(b"metadata"))["seg_len"]
        coef = {k: [] for k in ("shape", "exp", "pose")}
        audio = []
        with env.begin() as txn:
            for c in range(start_frame // clip_len, (start_frame + total - 1) // clip_len + 1):
                s = max(start_frame - c * clip_len, 0)
                e = min(start_frame + total - c * clip_len, clip_len)
                value = pickle.loads(txn.get(f"{entry}/{c:03d}".encode()))
                for k in coef:
                    coef[k].append(value["coef"][k][s:e])
                clip, sr = sf.read(io.BytesIO(value["audio"]), dtype="float32")
                audio.append(torch.from_numpy(clip)[round(s * audio_unit):round(e * audio_unit)])
    finally:
        env.close()
    coef = {k: torch.tensor(np.concatenate(v, axis=0)) for k, v in coef.items()}
    audio = torch.cat(audio, dim=0)
    mean, std = audio.mean(), audio.std()
    audio = (audio - mean) / (std + 1e-5)
    if stats is not None:
        st = {k: torch.tensor(v) for k, v in stats.items()}
        coef = {k: (coef[k] - st[f"{k}_mean"]) / (st[f"{k}_std"] + 1e-9) for k in coef}
    audio_pair = [audio[:n_audio].clone(), audio[-n_audio:].clone()]
    coef_pair = [{k: v[:n_motions].clone() for k, v in coef.items()},
                 {k: v[-n_motions:].clone() for k, v in coef.items()}]
    return audio_pair, coef_pair, (mean, std)


def ramp_subject(n_coef: int, n_samples: int, offset: float = 0.0):
    """Coefficients that name their frame (exp[:, 0] = frame, pose[:, 0] = frame / 100) and a
    recognisable int16 audio ramp."""
    f = np.arange(n_coef, dtype=np.float32)
    coefs = {
        "shape": np.tile(np.linspace(0, 1, 4, dtype=np.float32) + offset, (n_coef, 1)),
        "exp": np.stack([f, 2 * f + offset, np.sin(f)], axis=1).astype(np.float32),
        "pose": np.stack([f / 100, np.cos(f), f * 0 + offset, f % 7, f % 3, f % 2], axis=1).astype(np.float32),
    }
    audio = ((np.arange(n_samples) * 37) % 20000 - 10000).astype(np.int16)
    return coefs, audio


@pytest.fixture
def ref():
    """The layout-only helpers above."""
    return SimpleNamespace(write_lmdb=write_reference_lmdb, item=reference_item, ramp_subject=ramp_subject)
