"""What the local and Ray pools share."""

from __future__ import annotations

import time
from typing import Protocol

from .results import InputResult


class Pool(Protocol):
    busy: int

    def poll(self, timeout: float) -> list[InputResult]: ...


def drain(pool: Pool, grace_s: float, poll_s: float = 0.2) -> list[InputResult]:
    """Collect the results of running inputs for up to ``grace_s`` seconds after a cancel.

    A second Ctrl-C stops the wait early; whatever is still running is the caller's to kill.
    """
    out: list[InputResult] = []
    deadline = time.monotonic() + grace_s
    while pool.busy and time.monotonic() < deadline:
        try:
            out.extend(pool.poll(min(poll_s, max(0.0, deadline - time.monotonic()))))
        except KeyboardInterrupt:
            break
    return out
