"""Who speaks in each frame: a segmentation of the score sequence, a minimum turn length, silence.

Two ways to pick the speaker of each frame from per-track (smoothed) scores:

- **Viterbi** (:class:`ViterbiSegmenter`, ``sync.speaker``'s ``method: viterbi``): the best path
  through the states *nobody* and *track k speaks*, where a frame in state *k* earns the score of
  track *k* (0 in silence), a frame of nobody earns ``threshold``, every change of speaker costs
  ``switch_cost`` and every start or end of a pause ``pause_cost`` (``switch_cost`` where the voice
  goes on: a voice that no face matches is like another speaker). A track must therefore out-score
  the current speaker for long enough, not merely for a moment, to take over, while a clear change
  is placed where the scores cross. Nobody keeps the memory of who spoke last, so a pause inside a
  turn does not make the next speaker free. Decided with a fixed lag: frame *t* once the scores of
  frame *t + delay* are in.
- **Hysteresis** (:class:`HysteresisPicker`, the default): the tracks scoring at least
  ``threshold`` are candidates; the current speaker stays while it is a candidate unless another
  beats it by more than ``margin``; otherwise the best candidate takes over (or nobody, if there is
  none).

Both are followed by the **minimum turn** (:class:`MinTurnFilter`): a run of identical labels (a
speaker, or nobody) shorter than ``min_turn`` frames is given the label of the run before it
(nobody at the start). With hysteresis nobody speaks during silence.

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
    """The hysteresis decision above, frame after frame. ``current`` is the speaker picked last."""

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
    """The minimum turn above, streaming: ``push(item, label)`` returns ``(item, final_label)`` pairs in order.

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


METHODS = ("viterbi", "hysteresis")


class ViterbiSegmenter(Generic[T]):
    """The Viterbi decision above, streaming with a fixed lag.

    ``push(item, scores, silent, dt)`` takes one frame (``scores``: {track: score or None}, ``dt``
    its duration in seconds) and returns ``(item, label)`` pairs, in order, for the frames now
    decided: each frame is decided ``delay`` frames later, on the best path up to the newest
    frame. ``flush()`` decides the rest. States: ``("S", track)`` (the track speaks), ``("Q",
    track)`` (nobody; the track spoke last) and ``NOBODY`` (nobody, no one spoke before). A track
    without a score in a frame cannot be the speaker there; in a silent frame every track earns
    0, so a pause shorter than ``2 * pause_cost / threshold`` seconds stays within the turn.
    Rewards are score x seconds, costs score-seconds: at a lead of 0.2 over the current speaker,
    a challenger takes over once it has led for more than ``switch_cost / 0.2`` seconds.
    Memory: the path scores of the tracks seen within ``keep`` frames and ``delay + 1`` frames of
    back-pointers.
    """

    NOBODY = ("N", None)

    def __init__(self, threshold: float, switch_cost: float, pause_cost: float, delay: int, keep: int = 1500):
        self.threshold = float(threshold)
        self.switch_cost = float(switch_cost)
        self.pause_cost = float(pause_cost)
        self.delay = max(0, int(delay))
        self.keep = max(1, int(keep))
        self._score: dict[tuple, float] = {}   # best path score ending in each state
        self._seen: dict[Hashable, int] = {}    # track -> last frame counter with a score
        self._frames: deque[tuple[T, dict[tuple, tuple]]] = deque()  # (item, back-pointers)
        self._count = 0
        self._silent = True  # before the first frame: as after silence

    def push(self, item: T, scores: Mapping[Hashable, float | None], silent: bool = False,
             dt: float = 0.04) -> list[tuple[T, Hashable | None]]:
        valid = {k: float(v) for k, v in scores.items() if v is not None and not math.isnan(float(v))}
        if silent:  # no evidence in silence: a speaker earns 0 there, so only short pauses stay his
            valid = dict.fromkeys(valid, 0.0)
        for k in valid:
            self._seen[k] = self._count
        self._forget()
        self._frames.append((item, self._step(valid, dt, bool(silent))))
        self._silent = bool(silent)
        self._count += 1
        if len(self._frames) <= self.delay:
            return []
        return [self._release(self._path()[0])]

    def flush(self) -> list[tuple[T, Hashable | None]]:
        if not self._frames:
            return []
        path = self._path()
        out = [(item, state[1] if state[0] == "S" else None) for (item, _), state in zip(self._frames, path)]
        self._frames.clear()
        return out

    # -- internals --------------------------------------------------------------------------
    def _step(self, valid: dict[Hashable, float], dt: float, silent: bool) -> dict[tuple, tuple]:
        prev = self._score or {self.NOBODY: 0.0}
        ninf = -math.inf
        # Nobody starts cheaply where the sound stops and ends where it starts again; while a voice
        # goes on, a change between a face and nobody (a voice off screen) is a change of speaker.
        to_pause = self.pause_cost if silent else self.switch_cost
        from_pause = self.pause_cost if self._silent else self.switch_cost
        speakers = sorted(((v, s) for s, v in prev.items() if s[0] == "S"), key=lambda x: -x[0])[:2]
        pauses = sorted(((v, s) for s, v in prev.items() if s[0] == "Q"), key=lambda x: -x[0])[:2]

        def best_other(ranked, track):
            for v, s in ranked:
                if s[1] != track:
                    return v, s
            return ninf, None

        score: dict[tuple, float] = {}
        back: dict[tuple, tuple] = {}
        quiet = self.threshold * dt  # what a frame of nobody earns
        # nobody: stay, or (for a track's pause) pause after that track's speech
        pause_states = {st for st in prev if st[0] != "S"} | {("Q", st[1]) for st in prev if st[0] == "S"}
        for state in sorted(pause_states, key=lambda st: (st[0], repr(st[1]))):  # a fixed order: ties break alike
            best, arg = prev.get(state, ninf), state
            if state[0] == "Q":
                v = prev.get(("S", state[1]), ninf) - to_pause
                if v > best:
                    best, arg = v, ("S", state[1])
            score[state], back[state] = best + quiet, arg
        # speakers: stay, resume after own pause, take over from another speaker or pause, or start
        for track, value in valid.items():
            s, q = ("S", track), ("Q", track)
            options = [(prev.get(s, ninf), s), (prev.get(q, ninf) - from_pause, q),
                       (prev.get(self.NOBODY, ninf) - from_pause, self.NOBODY)]
            v, other = best_other(speakers, track)
            options.append((v - self.switch_cost, other))
            v, other = best_other(pauses, track)
            options.append((v - self.switch_cost, other))
            best, arg = max(options, key=lambda o: o[0])  # first of equal options: stay
            if best > ninf:
                score[s], back[s] = best + value * dt, arg
        # only differences matter: anchoring the best at 0 keeps the sums small on long streams
        top = max(score.values())
        self._score = {st: v - top for st, v in score.items()}
        return back

    def _forget(self) -> None:
        old = [k for k, c in self._seen.items() if self._count - c > self.keep]
        for k in old:
            del self._seen[k]
            q = self._score.pop(("Q", k), None)
            self._score.pop(("S", k), None)
            if q is not None:  # its pause becomes the anonymous one
                self._score[self.NOBODY] = max(self._score.get(self.NOBODY, -math.inf), q)

    def _path(self) -> list[tuple]:
        """States of the best path through the buffered frames, oldest first."""
        state = max(self._score, key=lambda st: (self._score[st], st[0] == "S"))
        path = [state]
        for _, back in reversed(list(self._frames)[1:]):
            state = back.get(state, state)
            path.append(state)
        path.reverse()
        return path

    def _release(self, state: tuple) -> tuple[T, Hashable | None]:
        item, _ = self._frames.popleft()
        return item, state[1] if state[0] == "S" else None


def decide_sequence(frames: Sequence[Mapping[Hashable, float | None]], threshold: float, margin: float = 0.0,
                    min_turn: int = 1, silent: Sequence[bool] | None = None, *, method: str = "hysteresis",
                    switch_cost: float = 0.04, pause_cost: float = 0.04, delay: int = 25,
                    frame_s: float = 0.04) -> list[Hashable | None]:
    """The speaker of each frame of a whole sequence, as ``sync.speaker`` decides it.

    :param method: ``"hysteresis"`` (``threshold``, ``margin``) or ``"viterbi"`` (``threshold``,
        ``switch_cost``, ``pause_cost``, ``delay`` frames, ``frame_s`` the frame duration).
    """
    if method == "viterbi":
        chooser = ViterbiSegmenter(threshold, switch_cost, pause_cost, delay)
    elif method == "hysteresis":
        chooser = None
        picker = HysteresisPicker(threshold, margin)
    else:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    mt: MinTurnFilter[int] = MinTurnFilter(min_turn)
    labels: list[Hashable | None] = [None] * len(frames)

    def settle(pairs):
        for i, label in pairs:
            for j, lab in mt.push(i, label):
                labels[j] = lab

    for i, scores in enumerate(frames):
        mute = bool(silent[i]) if silent is not None else False
        if chooser is not None:
            settle(chooser.push(i, scores, mute, frame_s))
        else:
            settle([(i, picker.step(scores, mute))])
    if chooser is not None:
        settle(chooser.flush())
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
