"""Smoothing of per-frame score sequences that may have holes.

A hole is a frame with no value (no face, or no window around it): it stays a hole, and it does
not pull its neighbours down either: each present value becomes the mean (or median) of the
present values within the centred window around it.
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence

FILTERS = ("mean", "median")


def window_bounds(window: int) -> tuple[int, int]:
    """Frames before and after the centre covered by a centred window of ``window`` frames.

    Odd windows are symmetric; an even window has one more frame after the centre.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    return (window - 1) // 2, window // 2


def smooth_at(values: Mapping[int, float | None], frame: int, window: int, method: str = "mean") -> float | None:
    """The smoothed value at ``frame`` from ``values`` (frame index -> value or None)."""
    v = values.get(frame)
    if v is None:
        return None
    before, after = window_bounds(window)
    around = [x for f in range(frame - before, frame + after + 1) if (x := values.get(f)) is not None]
    if method == "mean":
        return float(sum(around) / len(around))
    if method == "median":
        return float(statistics.median(around))
    raise ValueError(f"unknown filter {method!r}; valid: {', '.join(FILTERS)}")


def smooth_sequence(values: Sequence[float | None], window: int, method: str = "mean") -> list[float | None]:
    """Smooth a whole sequence (index = frame); holes are ``None`` and stay ``None``."""
    d = {i: v for i, v in enumerate(values)}
    return [smooth_at(d, i, window, method) for i in range(len(values))]


class TrackSmoother:
    """Streaming :func:`smooth_at` for one track: values arrive by increasing frame.

    ``push`` returns the frames whose whole window is known; memory is bounded by the window.
    """

    def __init__(self, window: int, method: str = "mean"):
        if method not in FILTERS:
            raise ValueError(f"unknown filter {method!r}; valid: {', '.join(FILTERS)}")
        self.window = window
        self.method = method
        self.before, self.after = window_bounds(window)
        self._values: dict[int, float | None] = {}
        self._waiting: list[int] = []  # frames not yet emitted, increasing
        self.last_frame: int | None = None

    def push(self, frame: int, value: float | None) -> list[tuple[int, float | None]]:
        if frame not in self._waiting:
            self._waiting.append(frame)
            self._waiting.sort()
        self._values[frame] = value
        self.last_frame = frame if self.last_frame is None else max(self.last_frame, frame)
        return self.release(self.last_frame)

    def release(self, known_until: int | None) -> list[tuple[int, float | None]]:
        """Emit frames whose window ends at or before ``known_until`` (``None``: everything)."""
        out = []
        while self._waiting and (known_until is None or self._waiting[0] + self.after <= known_until):
            f = self._waiting.pop(0)
            out.append((f, smooth_at(self._values, f, self.window, self.method)))
        low = (self._waiting[0] if self._waiting else (out[-1][0] + 1 if out else 0)) - self.before
        for f in [f for f in self._values if f < low]:
            del self._values[f]
        return out

    @property
    def pending(self) -> int:
        return len(self._waiting)

