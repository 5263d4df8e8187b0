"""Who speaks in each frame: threshold, hysteresis, minimum turn length, silence.

The decision for one frame is made in three steps:

1. **Candidates**: the tracks whose (smoothed) score is at least ``threshold``. During silence
   there are none.
2. **Hysteresis** (:class:`HysteresisPicker`): the current speaker stays while it is a candidate,
   unless another candidate beats its score by more than ``margin``; otherwise the best candidate
   takes over (or nobody, if there is none).
3. **Minimum turn** (:class:`MinTurnFilter`): a run of identical labels (a speaker, or nobody)
   shorter than ``min_turn`` frames is given the label of the run before it (nobody at the
   start): short blips of a speaker and short pauses inside a turn are both absorbed.

Silence comes from :class:`EnergyMeter`: the RMS level of the audio within a frame's interval,
compared with the loudest 10 ms block heard so far (see :func:`is_silent`).
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from typing import Any, Generic, Hashable, Mapping, Sequence, TypeVar

import numpy as np

T = TypeVar("T")


class HysteresisPicker:
    """Step 1 and 2 above, frame after frame. ``current`` is the speaker picked last."""

    def __init__(self, threshold: float, margin: float = 0.0):
        self.threshold = threshold
        self.margin = margin
        self.current: Hashable | None = None

    def step(self, scores: Mapping[Hashable, float | None], silent: bool = False) -> Hashable | None:
        cands = {k: float(v) for k, v in scores.items()
                 if v is not None and not math.isnan(v) and float(v) >= self.threshold}
        if silent or not cands:
            self.current = None
            return None
        best = max(cands, key=lambda k: cands[k])  # first of equal scores wins (input order)
        cur = self.current
        if cur in cands and (best == cur or cands[best] <= cands[cur] + self.margin):
            return cur
        self.current = best
        return best


class MinTurnFilter(Generic[T]):
    """Step 3 above, streaming: ``push(item, label)`` returns ``(item, final_label)`` pairs in order.

    At most ``min_turn - 1`` items are held back (the run that may still prove too short).
    """

    def __init__(self, min_turn: int):
        self.min_turn = max(1, int(min_turn))
        self.committed: Hashable | None = None  # label of the last run long enough
        self._run_label: Hashable | None = None
        self._run: list[T] = []

    def push(self, item: T, label: Hashable | None) -> list[tuple[T, Hashable | None]]:
        out: list[tuple[T, Hashable | None]] = []
        if self._run and label != self._run_label:
            out.extend((it, self.committed) for it in self._run)  # too short: absorbed
            self._run = []
        if not self._run and label == self.committed:
            out.append((item, label))
            return out
        self._run_label = label
        self._run.append(item)
        if len(self._run) >= self.min_turn:
            self.committed = label
            out.extend((it, label) for it in self._run)
            self._run = []
        return out

    def flush(self) -> list[tuple[T, Hashable | None]]:
        out = [(it, self.committed) for it in self._run]
        self._run = []
        return out


def decide_sequence(frames: Sequence[Mapping[Hashable, float | None]], threshold: float, margin: float = 0.0,
                    min_turn: int = 1, silent: Sequence[bool] | None = None) -> list[Hashable | None]:
    """The speaker of each frame of a whole sequence (the reference for the streaming node)."""
    picker = HysteresisPicker(threshold, margin)
    mt: MinTurnFilter[int] = MinTurnFilter(min_turn)
    labels: list[Hashable | None] = [None] * len(frames)
    for i, scores in enumerate(frames):
        for j, lab in mt.push(i, picker.step(scores, bool(silent[i]) if silent is not None else False)):
            labels[j] = lab
    for j, lab in mt.flush():
        labels[j] = lab
    return labels


def is_silent(level_db: float | None, ref_db: float | None, silence_db: float, floor_db: float) -> bool:
    """Whether a frame at ``level_db`` (RMS, dBFS) is silence.

    Silent when there is no audio for it (``None``), when it is below the absolute ``floor_db``,
    or when it is more than ``silence_db`` below ``ref_db`` (the loudest 10 ms heard so far).
    """
    if level_db is None:
        return True
    limit = floor_db if ref_db is None else max(floor_db, ref_db - silence_db)
    return level_db < limit


def to_db(mean_square: float) -> float:
    """Mean square of samples in [-1, 1] -> RMS level in dBFS (a full-scale square wave is 0)."""
    return 10.0 * math.log10(max(mean_square, 1e-12))


class EnergyMeter:
    """Audio level per time interval, kept as 10 ms blocks of mean squares (bounded by :meth:`drop`).

    Channels are averaged. Blocks are aligned on the start of each contiguous run of chunks.
    """

    def __init__(self, block_s: float = 0.01):
        self.block_s = block_s
        self._blocks: deque[tuple[float, float, float]] = deque()  # (start, end, mean square)
        self._rest = np.zeros(0, np.float64)
        self._rest_start = 0.0
        self._rate = 0
        self.end_time: float | None = None   # end of the audio received so far
        self.start_time: float | None = None
        self.ref_db: float | None = None     # loudest block so far

    def add(self, samples: Any, start: Fraction | float, sample_rate: int) -> None:
        """Add a chunk (channels, n) or (n,) starting at ``start`` seconds."""
        a = np.asarray(samples, dtype=np.float64)
        mono = a.mean(axis=0) if a.ndim == 2 else a
        start = float(start)
        if self.start_time is None:
            self.start_time = start
        expected = self._rest_start + self._rest.size / self._rate if self._rate else None
        if expected is None or sample_rate != self._rate or abs(start - expected) > 1.5 / sample_rate:
            self._close_rest()
            self._rate = sample_rate
            self._rest_start = start
        self._rest = np.concatenate([self._rest, mono ** 2])
        n = max(1, int(round(self.block_s * self._rate)))
        whole = self._rest.size // n
        if whole:
            ms = self._rest[: whole * n].reshape(whole, n).mean(axis=1)
            for i, m in enumerate(ms):
                self._push_block(self._rest_start + i * n / self._rate, self._rest_start + (i + 1) * n / self._rate,
                                 float(m))
            self._rest_start += whole * n / self._rate
            self._rest = self._rest[whole * n:]
        self.end_time = start + mono.size / sample_rate

    @property
    def complete_until(self) -> float | None:
        """Time up to which every 10 ms block is complete (``None`` before any audio)."""
        return self._rest_start if self._rate else None

    def close(self) -> None:
        """The audio has ended: the last partial block counts too."""
        self._close_rest()
        if self.end_time is not None:
            self._rest_start = self.end_time

    def level_db(self, t0: float, t1: float) -> float | None:
        """RMS level (dBFS) of the audio in ``[t0, t1)``; ``None`` where there is no audio."""
        inside = [ms for (s, e, ms) in self._blocks if t0 <= (s + e) / 2 < t1]
        if not inside:
            mid = (t0 + t1) / 2
            inside = [ms for (s, e, ms) in self._blocks if s <= mid < e]
        if not inside:
            return None
        return to_db(sum(inside) / len(inside))

    def drop(self, before: float) -> None:
        """Forget blocks that end before ``before`` seconds."""
        while self._blocks and self._blocks[0][1] <= before:
            self._blocks.popleft()

    def _push_block(self, s: float, e: float, ms: float) -> None:
        self._blocks.append((s, e, ms))
        db = to_db(ms)
        if self.ref_db is None or db > self.ref_db:
            self.ref_db = db

    def _close_rest(self) -> None:
        if self._rest.size and self._rate:
            self._push_block(self._rest_start, self._rest_start + self._rest.size / self._rate, float(self._rest.mean()))
        self._rest = np.zeros(0, np.float64)
