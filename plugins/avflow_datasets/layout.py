"""DiffPoseTalk's HDTF_TFHP LMDB layout: keys, values, clips, and a growing single writer.

The layout (documented in docs/formats.md, "LMDB dataset"), every value pickled:

====================================  ===========================================================
key                                   value
====================================  ===========================================================
``metadata``                          ``{"seg_len": N}``: frames per clip
``<person>/<NNN>/metadata``           ``{"n_frames": F}``: frames of that subject's sequence
``<person>/<NNN>/<clip:03d>``         ``{"audio": FLAC bytes, "coef": {"shape", "exp", "pose"}}``
====================================  ===========================================================

Clip ``i`` holds frames ``[i*N, min((i+1)*N, F))`` and the audio of exactly those frames:
``audio_unit = 16000 / fps`` samples per frame, 16-bit mono FLAC at 16 kHz. ``F`` is
``min(coefficient frames, audio samples // audio_unit)``, as DiffPoseTalk's preprocessing does.

avflow adds one key per subject, ``avflow/source/<person>/<NNN>`` -> the video's relative path,
so a resumed build can tell that a key still names the same video. Readers of the layout never
look at it. Beside the LMDB files the dataset folder holds ``keys.txt``, ``train.txt``,
``val.txt``, ``test.txt`` and ``stats_train.npz``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from avflow import InputError

from .pickles import dumps, safe_loads

SAMPLE_RATE = 16000
COEF_KEYS = ("shape", "exp", "pose")
META_KEY = b"metadata"
SOURCE_PREFIX = "avflow/source/"
_LOG = logging.getLogger("avflow.datasets")


def audio_unit(fps: float) -> int:
    """Audio samples per coefficient frame (16000 / fps); it must be a whole number.

    DiffPoseTalk's loader asserts that a crop's audio has exactly ``frames * 16000 / fps``
    samples, which only holds when every frame owns a whole number of samples.
    """
    unit = SAMPLE_RATE / float(fps)
    if fps <= 0 or abs(unit - round(unit)) > 1e-9:
        raise InputError(f"fps={fps:g} does not divide {SAMPLE_RATE}: each frame must own a whole number of "
                         f"16 kHz samples (valid: 25, 50, 20, 40, 16, 32, 10, ...)")
    return int(round(unit))


def check_fps(fps: float) -> None:
    """:func:`audio_unit`'s check as a ValueError, for a node Config's ``__post_init__``."""
    try:
        audio_unit(fps)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def subject_meta_key(subject: str) -> bytes:
    return f"{subject}/metadata".encode()


def clip_key(subject: str, clip: int) -> bytes:
    return f"{subject}/{clip:03d}".encode()


def source_key(subject: str) -> bytes:
    return f"{SOURCE_PREFIX}{subject}".encode()


def n_clips(n_frames: int, seg_len: int) -> int:
    return math.ceil(n_frames / seg_len)


# -- audio ----------------------------------------------------------------------------------
def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16, as x * 32768 rounded and clipped (16-bit FLAC reads back as i / 32768)."""
    return np.clip(np.rint(np.asarray(samples, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def encode_flac(pcm16: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono FLAC bytes of int16 samples."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.ascontiguousarray(pcm16, np.int16), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_flac(data: bytes, what: str = "audio") -> np.ndarray:
    """FLAC bytes -> float32 mono samples (i / 32768), checking the 16 kHz rate."""
    import soundfile as sf

    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InputError(f"{what}: cannot decode the audio ({exc})") from None
    if sr != SAMPLE_RATE:
        raise InputError(f"{what}: audio is {sr} Hz; this layout stores {SAMPLE_RATE} Hz")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return samples


def decode_flac_range(data: bytes, start: int, stop: int, what: str = "audio") -> np.ndarray:
    """Samples ``[start, stop)`` of FLAC bytes as float32 mono, decoding only what is needed."""
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.samplerate != SAMPLE_RATE:
                raise InputError(f"{what}: audio is {f.samplerate} Hz; this layout stores {SAMPLE_RATE} Hz")
            f.seek(start)
            samples = f.read(stop - start, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise InputError(f"{what}: cannot decode the audio ({exc})") from None
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return samples


# -- subjects -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubjectData:
    """One video's coefficients and audio, ready to be cut into clips.

    :param coefs: ``{"shape": (n, ds), "exp": (n, de), "pose": (n, dp)}`` float32 arrays.
    :param audio: int16 mono samples at 16 kHz, sample 0 at the time of coefficient frame 0.
    """

    coefs: Mapping[str, np.ndarray]
    audio: np.ndarray

    def n_frames(self, unit: int) -> int:
        n_coef = min(int(np.asarray(self.coefs[k]).shape[0]) for k in COEF_KEYS)
        return min(n_coef, int(self.audio.shape[0]) // unit)


def subject_records(subject: str, data: SubjectData, seg_len: int, unit: int,
                    source: str | None = None) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one subject, its ``metadata`` key last.

    :raises InputError: a coefficient key is missing or the subject has no frame at all.
    """
    missing = [k for k in COEF_KEYS if k not in data.coefs]
    if missing:
        raise InputError(f"{subject}: coefficients lack {', '.join(missing)}; need {', '.join(COEF_KEYS)}")
    n = data.n_frames(unit)
    if n <= 0:
        raise InputError(f"{subject}: no complete frame (coefficient frames: "
                         f"{min(len(data.coefs[k]) for k in COEF_KEYS)}, audio samples: {len(data.audio)}, "
                         f"{unit} samples per frame)")
    records: list[tuple[bytes, bytes]] = []
    for i in range(n_clips(n, seg_len)):
        a, b = i * seg_len, min((i + 1) * seg_len, n)
        coef = {k: np.ascontiguousarray(np.asarray(data.coefs[k])[a:b], np.float32) for k in COEF_KEYS}
        audio = encode_flac(data.audio[a * unit:b * unit])
        records.append((clip_key(subject, i), dumps({"audio": audio, "coef": coef})))
    if source is not None:
        records.append((source_key(subject), dumps(source)))
    records.append((subject_meta_key(subject), dumps({"n_frames": n})))
    return records


# -- the writer -----------------------------------------------------------------------------
class LmdbWriter:
    """The single writer of a dataset LMDB. The map grows (doubles) whenever it is full.

    Each :meth:`put` is one transaction, so a subject is either wholly present or absent.
    """

    def __init__(self, path: str | Path, map_size: int = 64 << 20):
        import lmdb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lmdb = lmdb
        self.env = lmdb.open(str(self.path), map_size=map_size, subdir=True, meminit=False, max_dbs=0)

    @property
    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    def put(self, records: list[tuple[bytes, bytes]]) -> None:
        need = sum(len(k) + len(v) for k, v in records)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in records:
                        txn.put(key, value)
                return
            except self._lmdb.MapFullError:
                new = max(self.map_size * 2, self.map_size + 2 * need)
                _LOG.debug("LMDB map full at %d bytes; growing to %d", self.map_size, new)
                self.env.set_mapsize(new)

    def get(self, key: bytes, what: str | None = None) -> Any:
        with self.env.begin() as txn:
            raw = txn.get(key)
        return None if raw is None else safe_loads(raw, what or f"LMDB key {key.decode()!r}")

    def subjects(self) -> dict[str, str | None]:
        """Every complete subject (its ``metadata`` key is written) -> its recorded source."""
        return read_subjects(self.env)

    def close(self) -> None:
        self.env.sync()
        self.env.close()

    def __enter__(self) -> "LmdbWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SharedReaders:
    """Read-only LMDB environments shared within one process.

    LMDB allows one open handle per database file per process (py-lmdb refuses a second
    ``lmdb.open`` with "already open in this process"), yet a process often reads one dataset
    through several objects (train and val datasets, a build extending it). They all get the
    same handle from here; it closes when the last user drops it. After a fork (DataLoader
    workers) the handles inherited from the parent are closed in the child, never used, and each
    worker opens its own. Handles are keyed by the data file's identity, so a dataset rebuilt at
    the same path is opened afresh.
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._envs: dict[tuple[int, int], weakref.ref] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> Any:
        """The shared read-only environment of the dataset folder ``path``.

        :raises InputError: not an LMDB folder, or opened in this process by other code.
        """
        import lmdb

        path = Path(path)
        try:
            st = (path / "data.mdb").stat()
        except OSError:
            raise InputError(f"{path} is not an LMDB dataset folder (no data.mdb); build one with "
                             "`avflow run dataset`") from None
        key = (st.st_dev, st.st_ino)
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's handles must not be used here; closing them in this
                # process also lifts py-lmdb's "already open" guard for them.
                for ref in self._envs.values():
                    env = ref()
                    if env is not None:
                        env.close()
                self._envs.clear()
                self._pid = os.getpid()
            ref = self._envs.get(key)
            env = ref() if ref is not None else None
            if env is None:
                try:
                    # As DiffPoseTalk opens it: read-only, no lock file, no readahead (random access).
                    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
                except lmdb.Error as exc:
                    raise InputError(f"cannot open the LMDB at {path}: {exc} (close other handles to it "
                                     "in this process first)") from None
                self._envs[key] = weakref.ref(env)
            return env


#: The process's shared read-only handles (see :class:`SharedReaders`).
READERS = SharedReaders()


def read_subjects(env: Any) -> dict[str, str | None]:
    """Complete subjects of an open LMDB environment, with their recorded sources (or None)."""
    subjects: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    with env.begin() as txn:
        for key in txn.cursor().iternext(keys=True, values=False):
            k = bytes(key).decode("utf-8", "replace")
            if k.startswith(SOURCE_PREFIX):
                sources[k[len(SOURCE_PREFIX):]] = k
            elif k.endswith("/metadata") and k.count("/") == 2:
                subjects[k[: -len("/metadata")]] = None
        for subject in subjects:
            if subject in sources:
                raw = txn.get(source_key(subject))
                subjects[subject] = safe_loads(raw, f"LMDB key {sources[subject]!r}")
    return subjects

