"""A disk-backed store of frames, so holding an avatar video does not hold it in memory.

When the driving audio outlasts the video, MuseTalk plays the video forward, then backward, and
so on; the frames (and their latents) are needed again long after they streamed past. Rather
than keeping them in RAM as MuseTalk does, they are appended raw to one temporary file (the OS
page cache keeps recent ones fast) and read back by slot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


class FrameStore:
    """Append-only arrays on disk: ``put({name: array}) -> slot``, ``get(slot) -> {name: array}``."""

    def __init__(self, folder: str | Path | None = None):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="avflow-musetalk-frames-", suffix=".raw", dir=folder)
        self._file = os.fdopen(fd, "w+b")
        self.path = Path(name)
        self._index: list[dict[str, tuple[int, tuple[int, ...], str]]] = []
        self._end = 0
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._index)

    def put(self, arrays: dict[str, np.ndarray | None]) -> int:
        entry = {}
        self._file.seek(self._end)
        for name, arr in arrays.items():
            if arr is None:
                continue
            arr = np.ascontiguousarray(arr)
            self._file.write(arr.data)
            entry[name] = (self._end, arr.shape, arr.dtype.str)
            self._end += arr.nbytes
        self._index.append(entry)
        self.bytes = self._end
        return len(self._index) - 1

    def get(self, slot: int) -> dict[str, np.ndarray]:
        out = {}
        for name, (offset, shape, dtype) in self._index[slot].items():
            arr = np.empty(shape, np.dtype(dtype))
            self._file.seek(offset)
            self._file.readinto(memoryview(arr).cast("B"))
            out[name] = arr
        return out

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)
