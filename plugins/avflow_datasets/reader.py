"""AVClipDataset: DiffPoseTalk's ``LmdbDataset`` semantics, read safely and fast.

Given the same LMDB, split file, stats and crop start, an item is exactly what DiffPoseTalk's
``datasets/data.py:LmdbDataset`` returns:

- a crop of ``2 * n_motions`` consecutive frames starting at ``random`` (uniform over
  ``[0, n_frames - 2 * n_motions]``, drawn with ``numpy.random.randint``), ``begin`` (0) or
  ``end`` (``n_frames - 2 * n_motions``), gathered across clip boundaries (clip ``i`` holds frames
  ``[i * seg_len, (i + 1) * seg_len)``);
- its audio: ``audio_unit = 16000 / coef_fps`` samples per frame, clip by clip
  ``[round(start * audio_unit), round(end * audio_unit))``, then z-normalised with its own mean
  and (unbiased) std: ``(a - mean) / (std + 1e-5)``. Mean and std are accumulated in float64 and
  rounded to float32, so they may differ from torch's float32 reductions in the last bits (which
  themselves depend on torch's thread count); everything else is bit-identical;
- coefficients normalised with the stats file: ``(c - <k>_mean) / (<k>_std + 1e-9)``;
- returned as ``(audio_pair, coef_pair, (audio_mean, audio_std))``: the first and the last
  ``n_motions`` frames (two consecutive windows) of audio and of every coefficient key.

What differs is how: pickles go through a restricted unpickler (no code runs), every sequence's
length is read once and checked when the dataset is made (a sequence shorter than
``2 * n_motions`` is an error naming it), one transaction serves a whole item, decoded clips
(FLAC -> float32 plus coefficient arrays) are kept in a bounded per-worker LRU cache, and the
per-item arithmetic runs in numpy on one thread. Each process (each DataLoader worker) reads
through its own LMDB handle, so the dataset is safe in DataLoader workers. The returned windows
are views of one fresh tensor rather than clones (they never overlap).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import data

from avflow import InputError

from .layout import COEF_KEYS, META_KEY, READERS, clip_key, decode_flac, decode_flac_range, subject_meta_key
from .pickles import safe_loads
from .splits import SPLIT_NAMES

_LOG = logging.getLogger("avflow.datasets")
CROP_STRATEGIES = ("random", "begin", "end")


def resolve_split_file(lmdb_dir: Path, split: str | Path) -> Path:
    """A split file: ``split`` itself if it is a file, else ``<lmdb_dir>/<split>.txt`` for a name
    (``"train"``), as a build writes them."""
    p = Path(split)
    if p.is_file():
        return p
    named = Path(lmdb_dir) / f"{split}.txt"
    if isinstance(split, str) and "/" not in split and not p.suffix and named.is_file():
        return named
    return p


class AVClipDataset(data.Dataset):
    """Pairs of consecutive audio/coefficient windows from a DiffPoseTalk-layout LMDB.

    :param lmdb_dir: the dataset folder (``data.mdb`` inside).
    :param split_file: a text file of subject keys (``person/NNN``), one per line, or the name of
        one of the build's splits (``"train"``, ``"val"``, ``"test"``: ``<lmdb_dir>/<name>.txt``).
    :param coef_stats_file: ``stats_train.npz`` (``<k>_mean``, ``<k>_std``); None: no normalisation.
    :param coef_fps: coefficient frame rate; ``16000 / coef_fps`` audio samples per frame.
    :param n_motions: frames per window; an item covers ``2 * n_motions`` frames.
    :param crop_strategy: ``random``, ``begin`` or ``end``.
    :param rot_repr: rotation representation of ``pose``; only ``aa`` (axis-angle), as in DiffPoseTalk.
    :param cache_mb: decoded clips kept per process (LRU, megabytes). 0 disables the cache and
        decodes only the samples a crop needs: better for datasets much larger than the cache.
    :param seed: None draws random crops from ``numpy.random`` as DiffPoseTalk does (the DataLoader
        seeds it per worker); an int gives this dataset its own generator for reproducible crops,
        seeded with ``seed`` in the main process and with ``(seed, worker seed)`` in a DataLoader
        worker (so workers and epochs differ, following ``torch.manual_seed``).
    :raises InputError: a split entry is missing from the LMDB or is shorter than ``2 * n_motions``.
    """

    def __init__(self, lmdb_dir: str | Path, split_file: str | Path, coef_stats_file: str | Path | None = None,
                 coef_fps: float = 25, n_motions: int = 100, crop_strategy: str = "random", rot_repr: str = "aa",
                 *, cache_mb: float = 256, seed: int | None = None):
        if crop_strategy not in CROP_STRATEGIES:
            raise InputError(f"unknown crop_strategy {crop_strategy!r}; valid: {', '.join(CROP_STRATEGIES)}")
        if rot_repr != "aa":
            raise InputError(f"unknown rot_repr {rot_repr!r}; valid: 'aa' (axis-angle, as stored)")
        if n_motions < 1:
            raise InputError(f"n_motions must be >= 1, got {n_motions}")
        self.lmdb_dir = Path(lmdb_dir)
        self.split_file = resolve_split_file(self.lmdb_dir, split_file)
        self.coef_fps = coef_fps
        self.audio_unit = 16000.0 / coef_fps
        self.n_motions = int(n_motions)
        self.n_audio_samples = round(self.audio_unit * self.n_motions)
        self.coef_total_len = self.n_motions * 2
        self.audio_total_len = round(self.audio_unit * self.coef_total_len)
        self.crop_strategy = crop_strategy
        self.rot_representation = rot_repr
        self.cache_bytes = int(cache_mb * (1 << 20))
        self.seed = seed

        self.coef_stats: dict[str, torch.Tensor] | None = None
        if coef_stats_file is not None:
            with np.load(coef_stats_file, allow_pickle=False) as stats:
                self.coef_stats = {k: torch.tensor(stats[k]) for k in stats.files}
            missing = [f"{k}_{s}" for k in COEF_KEYS for s in ("mean", "std") if f"{k}_{s}" not in self.coef_stats]
            if missing:
                raise InputError(f"{coef_stats_file}: lacks {', '.join(missing)}")
        else:
            _LOG.warning("AVClipDataset: no coef_stats_file; coefficients are not normalised")
        # (mean, std + 1e-9) per key as numpy arrays, computed by torch as the original does.
        self._stats_np = None if self.coef_stats is None else {
            k: (self.coef_stats[f"{k}_mean"].numpy(), (self.coef_stats[f"{k}_std"] + 1e-9).numpy())
            for k in COEF_KEYS}

        if not self.split_file.is_file():
            raise InputError(f"split file {self.split_file} does not exist; give a path or a split name "
                             f"({', '.join(SPLIT_NAMES)}: <lmdb_dir>/<name>.txt)")
        self.entries = [line.strip() for line in self.split_file.read_text(encoding="utf-8").splitlines()
                        if line.strip()]

        env = READERS.get(self.lmdb_dir)
        with env.begin() as txn:
            raw = txn.get(META_KEY)
            if raw is None:
                raise InputError(f"{self.lmdb_dir}: no 'metadata' key; not a DiffPoseTalk-layout LMDB")
            self.clip_len = int(safe_loads(raw, f"{self.lmdb_dir}: key 'metadata'")["seg_len"])
            self.audio_clip_len = round(self.audio_unit * self.clip_len)
            lengths, absent, short = [], [], []
            for entry in self.entries:
                raw = txn.get(subject_meta_key(entry))
                if raw is None:
                    absent.append(entry)
                    lengths.append(0)
                    continue
                n = int(safe_loads(raw, f"{self.lmdb_dir}: key '{entry}/metadata'")["n_frames"])
                lengths.append(n)
                if n < self.coef_total_len:
                    short.append(f"{entry} ({n} frames)")
        if absent:
            raise InputError(f"{self.split_file}: {len(absent)} entr{'y' if len(absent) == 1 else 'ies'} not in "
                             f"{self.lmdb_dir}: {', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
        if short:
            raise InputError(f"{self.split_file}: {len(short)} sequence(s) shorter than 2 * n_motions = "
                             f"{self.coef_total_len} frames, which one item needs: {', '.join(short[:10])}"
                             f"{' ...' if len(short) > 10 else ''}; lower n_motions or leave them out of the split")
        self.n_frames = lengths
        self._env: Any = env
        self._pid: int | None = os.getpid()
        self._rng: np.random.Generator | None = None
        self._cache: OrderedDict[bytes, tuple[np.ndarray, dict[str, np.ndarray]]] = OrderedDict()
        self._cached_bytes = 0

    # -- per-process state ----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_env=None, _pid=None, _rng=None, _cache=OrderedDict(), _cached_bytes=0)
        return state

    def _ensure_open(self) -> None:
        pid = os.getpid()
        if self._env is None or self._pid != pid:
            # A forked worker must not use its parent's handle: it gets its own.
            self._env = READERS.get(self.lmdb_dir)
            self._pid = pid
            self._cache = OrderedDict()
            self._cached_bytes = 0
            self._rng = None
        if self._rng is None and self.seed is not None:
            info = data.get_worker_info()
            # In a worker, also seed with the worker's own seed (drawn from torch's generator each
            # epoch): crops differ across workers and epochs yet follow torch.manual_seed.
            self._rng = np.random.default_rng(self.seed if info is None else (self.seed, info.seed))

    def close(self) -> None:
        """Drop this dataset's LMDB handle (closed once no other reader in the process uses it)."""
        self._env = None

    def __len__(self) -> int:
        return len(self.entries)

    # -- reading --------------------------------------------------------------------------
    def start_frame(self, index: int) -> int:
        """The first frame of the crop for ``index`` under the crop strategy (random draws anew)."""
        seq_len = self.n_frames[index]
        if self.crop_strategy == "random":
            high = seq_len - self.coef_total_len + 1
            return int(self._rng.integers(0, high)) if self._rng is not None else int(np.random.randint(0, high))
        if self.crop_strategy == "begin":
            return 0
        return seq_len - self.coef_total_len

    def _clip(self, txn: Any, entry: str, clip_idx: int, a: int, b: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Samples ``[a, b)`` and the coefficient arrays of one clip (cached whole, or decoded in part)."""
        key = clip_key(entry, clip_idx)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit[0][a:b], hit[1]
        raw = txn.get(key)
        what = f"{self.lmdb_dir}: key '{key.decode()}'"
        if raw is None:
            raise InputError(f"{what} is missing ({entry} has {self.n_frames[self.entries.index(entry)]} frames, "
                             f"seg_len {self.clip_len})")
        value = safe_loads(raw, what)
        coef = {k: np.asarray(value["coef"][k]) for k in COEF_KEYS}
        if self.cache_bytes <= 0:
            return decode_flac_range(value["audio"], a, b, what), coef
        audio = decode_flac(value["audio"], what)
        self._cache[key] = (audio, coef)
        self._cached_bytes += audio.nbytes + sum(v.nbytes for v in coef.values())
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, (old_audio, old_coef) = self._cache.popitem(last=False)
            self._cached_bytes -= old_audio.nbytes + sum(v.nbytes for v in old_coef.values())
        return audio[a:b], coef

    def __getitem__(self, index: int):
        self._ensure_open()
        entry = self.entries[index]
        start_frame = self.start_frame(index)
        total = self.coef_total_len
        start_clip = start_frame // self.clip_len
        end_clip = (start_frame + total - 1) // self.clip_len + 1
        coef_parts: dict[str, list[np.ndarray]] = {k: [] for k in COEF_KEYS}
        audio_parts: list[np.ndarray] = []
        with self._env.begin(write=False) as txn:
            for clip_idx in range(start_clip, end_clip):
                start_idx = max(start_frame - clip_idx * self.clip_len, 0)
                end_idx = min(start_frame + total - clip_idx * self.clip_len, self.clip_len)
                audio_part, coef = self._clip(txn, entry, clip_idx, round(start_idx * self.audio_unit),
                                              round(end_idx * self.audio_unit))
                for k in COEF_KEYS:
                    coef_parts[k].append(coef[k][start_idx:end_idx])
                audio_parts.append(audio_part)

        coefs = {k: np.concatenate(coef_parts[k], axis=0) for k in COEF_KEYS}
        audio = np.concatenate(audio_parts, axis=0)
        if coefs["exp"].shape[0] != total or audio.shape[0] != total * self.audio_unit:
            raise InputError(f"{self.lmdb_dir}: '{entry}' yields {coefs['exp'].shape[0]} frames and "
                             f"{audio.shape[0]} samples for a crop of {total} frames at {start_frame}; its clips "
                             f"do not match its metadata")
        # Mean and (unbiased) std are accumulated in float64 with numpy, then rounded to float32:
        # what torch's float32 reductions give up to their rounding, but deterministic whatever the
        # thread count and free of intra-op threading costs. The element-wise work is the same IEEE
        # float32 arithmetic as the original's.
        mean64 = audio.mean(dtype=np.float64)
        std64 = np.sqrt(np.square(audio - mean64).sum() / max(len(audio) - 1, 1))
        audio_mean, audio_std = np.float32(mean64), np.float32(std64)
        audio = (audio - audio_mean) / (audio_std + np.float32(1e-5))
        if self._stats_np is not None:
            coefs = {k: (coefs[k] - self._stats_np[k][0]) / self._stats_np[k][1] for k in COEF_KEYS}
        n, na = self.n_motions, self.n_audio_samples
        # Fresh arrays: the two windows never overlap, so views are as independent as clones.
        audio_t = torch.from_numpy(audio)
        coef_t = {k: torch.from_numpy(v) for k, v in coefs.items()}
        audio_pair = [audio_t[:na], audio_t[-na:]]
        coef_pair = [{k: coef_t[k][:n] for k in COEF_KEYS}, {k: coef_t[k][-n:] for k in COEF_KEYS}]
        return audio_pair, coef_pair, (torch.tensor(audio_mean), torch.tensor(audio_std))
