"""The C library, for the few Linux process settings the runtime makes: the allocator's
(:mod:`.memory`), node thread names (:mod:`.scheduler`) and a worker's parent-death signal
(:mod:`avflow.executors.local`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any

PR_SET_PDEATHSIG = 1  # prctl(2) options
PR_SET_NAME = 15


@functools.cache
def libc() -> Any:
    """The C library through ctypes on Linux (loaded once), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def prctl(option: int, arg: int | bytes) -> bool:
    """``prctl(option, arg)`` on Linux; whether it succeeded (False elsewhere)."""
    lib = libc()
    if lib is None:
        return False
    try:
        value = ctypes.c_char_p(arg) if isinstance(arg, bytes) else ctypes.c_ulong(arg)
        return lib.prctl(option, value, 0, 0, 0) == 0
    except AttributeError:  # a C library without prctl
        return False
