"""Keep the native libraries' start-up chatter off the terminal.

MediaPipe's graphs, TensorFlow Lite and absl log from C++ straight to file descriptor 2: every
face detector or face mesh that starts prints ``INFO: Created TensorFlow Lite XNNPACK delegate
for CPU``, ``WARNING: All log messages before absl::InitializeLog() is called are written to
STDERR`` and two ``W0000 ... inference_feedback_manager.cc:114] ...`` lines, from MediaPipe's own
threads, some time between the object's creation and its first result (a diarize run with a
few faces: dozens of lines). Measured with mediapipe 0.10.21: ``GLOG_minloglevel``,
``TF_CPP_MIN_LOG_LEVEL`` and absl's Python logging change none of them (absl's C++ logger reads
no environment variable, and the bindings export no call to set its level).

So :func:`filter_native_logs` puts a pipe on fd 2 for the duration of a run and forwards every
line to the real stderr except those: absl/glog ``I``/``W`` lines, TF Lite ``INFO:`` lines and
absl's ``InitializeLog`` notice (errors, ``E``/``F`` lines and everything else pass). Python's
own ``sys.stderr`` (progress bars, logs, tracebacks) is pointed at the real stderr directly and
bypasses the filter. ``avflow run --verbose`` runs without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
from typing import Iterator

NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [^\s\]]+:\d+\] "  # absl / glog INFO and WARNING
    rb"|INFO: "  # TF Lite's minimal logger
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)")


def is_noise(line: bytes) -> bool:
    """Whether one line of native stderr output is start-up chatter that is dropped."""
    return NOISE.match(line) is not None


def _forward(read_fd: int, out_fd: int) -> None:
    """Copy lines from ``read_fd`` to ``out_fd`` until end of file, dropping the noise."""
    pending = b""
    try:
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
            if kept:
                os.write(out_fd, kept)
        if pending and not is_noise(pending):
            os.write(out_fd, pending)
    finally:
        os.close(read_fd)
        os.close(out_fd)


@contextlib.contextmanager
def filter_native_logs() -> Iterator[None]:
    """Drop native start-up chatter from fd 2 inside the block (see the module docstring).

    Process-wide (file descriptors are): meant for a command line run, not for a library
    embedded in someone else's program. Child processes started inside the block inherit the
    filtered fd 2.
    """
    sys.stderr.flush()
    real = os.dup(2)
    read_fd, write_fd = os.pipe()
    thread = threading.Thread(target=_forward, args=(read_fd, os.dup(real)), name="avf:stderr", daemon=True)
    thread.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    old_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(real), "w"), encoding=getattr(old_stderr, "encoding", None),
                                  errors="backslashreplace", line_buffering=True)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = old_stderr
        os.dup2(real, 2)  # the pipe's last write end in this process closes: the forwarder ends
        os.close(real)
        thread.join(timeout=5.0)  # longer only while a child still holds the pipe
