"""Keep peak memory independent of the input's length, without making allocation slow.

Frame-sized buffers (1-6 MB) are allocated in one thread and freed in another. With glibc's
defaults they end up spread over many per-thread arenas, fragmented, and the resident size
creeps up with the number of frames processed (measured: +15-25% from a 10 s to a 1-2 min
run). Forcing every large block onto mmap stops the creep but makes each one fault in fresh
pages: frames, crops and torch activations then cost 2-4x more CPU (a 2 min transcode 42 s
instead of 12 s; SyncNet 2.4x slower). So instead, once per process: large blocks stay on the
heap (mmap only above 32 MB), two arenas serve all threads, the heap top is given back above
1 MB free; and while a graph runs, :class:`HeapTrimmer` hands the free pages inside the heap
back to the OS about once a second. Measured: 2 min vs 10 s peak RSS within 1% (transcode) and
5% (diarize), at the speed of glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

from .libc import libc

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_SETTINGS = ((_M_MMAP_THRESHOLD, 32 * 1024 * 1024), (_M_TRIM_THRESHOLD, 1024 * 1024), (_M_ARENA_MAX, 2))
_tuned = False


def _glibc():
    """glibc, or None elsewhere (musl, macOS, Windows) or with ``AVFLOW_NO_MALLOC_TUNING`` set."""
    lib = libc()
    if lib is None or os.environ.get("AVFLOW_NO_MALLOC_TUNING"):
        return None
    try:
        lib.mallopt, lib.malloc_trim  # noqa: B018 - both must exist
        return lib
    except AttributeError:
        return None


def tune_allocator() -> bool:
    """Apply the settings above once per process; whether they are in effect."""
    global _tuned  # process-wide by nature: the allocator is shared by everything in the process
    if not _tuned:
        libc = _glibc()
        _tuned = libc is not None and all(libc.mallopt(p, v) == 1 for p, v in _SETTINGS)
    return _tuned


def quiet_openmp() -> bool:
    """Make OpenMP threads (torch's) sleep instead of spinning while they wait; whether it applies.

    A graph runs many threads on few cores: a torch thread spinning at a barrier for a peer that
    another node's thread pushed off its core burns that core (measured: SyncNet in the diarize
    graph 117 s spinning, 24 s passive, 2 cores). The setting is read when OpenMP starts, so it
    applies only if torch was not imported yet; ``OMP_WAIT_POLICY`` set by the user wins.
    """
    if "torch" in sys.modules:
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


class HeapTrimmer:
    """Return free heap pages to the OS at most every ``interval`` seconds (glibc only).

    Call :meth:`maybe_trim` from a loop; it does nothing where :func:`tune_allocator` is off.
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._next = time.monotonic() + interval
        libc = _glibc() if tune_allocator() else None
        self._trim = None
        if libc is not None:
            self._trim = libc.malloc_trim
            self._trim.argtypes = [ctypes.c_size_t]

    @property
    def active(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim if ``interval`` has passed since the last trim; whether it trimmed."""
        if self._trim is None:
            return False
        now = time.monotonic()
        if now < self._next:
            return False
        self._trim(0)
        self._next = now + self.interval
        return True
