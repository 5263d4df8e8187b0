"""Which face each voice belongs to: sync evidence pooled over a voice's speech, then a
one-to-one assignment with "no visible face" allowed.

For voice *v* and face track *f*, the per-frame evidence (``SyncEvidence.values``, one value per
audio offset) is averaged over the frames where *v* speaks and *f* is visible: a pooled
synchrony curve over offsets. Its **confidence** is the peak minus the median over offsets, as
syncnet_python's confidence is the median minus the minimum distance: a face in sync with the
voice has a clear peak at its audio/video offset, a face that moves to something else (or not
at all) has a flat curve, whatever its size, frame rate or talking style. The peak's offset is
the face's estimated A/V offset for that voice; the peak is sought inside the search, not at its
two ends (a curve still rising there has no located peak, and chance peaks of short voices land
there). Once a face's offset is known, :meth:`Pooled.confidence_at` reads the curve at it.

Voices and faces are then paired one to one by :func:`scipy.optimize.linear_sum_assignment`,
maximising the summed confidence, each voice also free to take "no visible face" at the value
``threshold``: a voice whose best face is below it is an off-screen voice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pooled:
    """Pooled evidence of one (voice, face) pair."""

    curve: np.ndarray  # mean value per offset
    offsets: np.ndarray  # offsets in frames
    frames: int  # frames pooled

    @property
    def confidence(self) -> float:
        if self.frames == 0 or self.curve.size < 3:
            return 0.0
        return float(self.curve[self._peak] - np.median(self.curve))

    @property
    def _peak(self) -> int:
        return self._peak_with(0.0)

    def _peak_with(self, penalty: float) -> int:
        # the highest point inside the search: a curve still rising at its end has no located peak
        if self.curve.size < 3:
            return int(np.argmax(self.curve))
        inner = self.curve[1:-1] - penalty * np.abs(self.offsets[1:-1])
        return 1 + int(np.argmax(inner))

    def confidence_at(self, offset: int | None, penalty: float = 0.0) -> float:
        """The curve at ``offset`` (frames) minus its median: the confidence when the offset is
        known (a face's, from all of its speech) rather than searched for. With ``offset`` None,
        the offset is searched: the peak of the curve less ``penalty`` per frame of offset, and
        the confidence is that value minus the median (:meth:`offset_with` gives its offset)."""
        if self.frames == 0 or self.curve.size < 3:
            return 0.0
        if offset is None:
            k = self._peak_with(penalty)
            return float(self.curve[k] - penalty * abs(int(self.offsets[k])) - np.median(self.curve))
        hit = np.flatnonzero(self.offsets == offset)
        if hit.size == 0:
            return 0.0
        return float(self.curve[hit[0]] - np.median(self.curve))

    def peak_near(self, centre: float, reach: float) -> tuple[float, int | None]:
        """The highest point of the curve within ``reach`` frames of offset ``centre`` minus the
        median, and its offset (frames); ``(0.0, None)`` where the search holds no such offset,
        or where that point is the reach's edge with the curve still rising past it (the peak
        lies farther out: a slope is not a peak near ``centre``)."""
        if self.frames == 0 or self.curve.size == 0:
            return 0.0, None
        close = np.flatnonzero(np.abs(self.offsets - centre) <= reach + 1e-6)
        if close.size == 0:
            return 0.0, None
        k = int(close[int(np.argmax(self.curve[close]))])
        outside = [j for j in (k - 1, k + 1) if 0 <= j < self.curve.size and j not in close]
        if any(self.curve[j] > self.curve[k] for j in outside):
            return 0.0, None
        return float(self.curve[k] - np.median(self.curve)), int(self.offsets[k])

    @property
    def offset(self) -> int:
        return self.offset_with(0.0)

    def offset_with(self, penalty: float) -> int:
        """The searched offset (frames) with ``penalty`` per frame of offset (see :meth:`confidence_at`)."""
        return int(self.offsets[self._peak_with(penalty)]) if self.curve.size else 0


class EvidencePool:
    """Sums of evidence per (key, track), where a key names a set of frames (a voice, a turn)."""

    def __init__(self):
        self._sum: dict[tuple, np.ndarray] = {}
        self._count: dict[tuple, np.ndarray] = {}
        self._offsets: np.ndarray | None = None

    def add(self, key, track: str, offsets: np.ndarray, values: np.ndarray) -> None:
        if self._offsets is None or len(offsets) > len(self._offsets):
            self._grow(offsets)
        pos = np.searchsorted(self._offsets, offsets)
        k = (key, track)
        if k not in self._sum:
            self._sum[k] = np.zeros(len(self._offsets))
            self._count[k] = np.zeros(len(self._offsets))
        np.add.at(self._sum[k], pos, values)
        np.add.at(self._count[k], pos, 1.0)

    def _grow(self, offsets: np.ndarray) -> None:
        old = self._offsets
        new = np.union1d(old if old is not None else np.zeros(0, np.int64), offsets)
        if old is not None and len(new) != len(old):
            at = np.searchsorted(new, old)
            for k in self._sum:
                s, c = np.zeros(len(new)), np.zeros(len(new))
                s[at], c[at] = self._sum[k], self._count[k]
                self._sum[k], self._count[k] = s, c
        self._offsets = new

    def keys(self) -> set:
        """The keys that have evidence."""
        return {k for k, _ in self._sum}

    def drop_track(self, track: str) -> None:
        """Forget every sum of ``track`` (a face gone for good: live input keeps memory bounded)."""
        for k in [k for k in self._sum if k[1] == track]:
            del self._sum[k], self._count[k]

    def pooled(self, key, track: str) -> Pooled:
        k = (key, track)
        if k not in self._sum:
            return Pooled(np.zeros(0), np.zeros(0, np.int64), 0)
        cnt = self._count[k]
        full = cnt >= max(1.0, 0.5 * cnt.max())  # offsets seen on most of the frames
        curve = self._sum[k][full] / cnt[full]
        return Pooled(curve, self._offsets[full], int(cnt.max()))


def assign_faces(confidence: np.ndarray, threshold: float, weights: np.ndarray | None = None,
                 pair_weights: np.ndarray | None = None) -> list[int | None]:
    """One face per voice at most, and one voice per face: ``confidence`` ``(voices, faces)``;
    a voice takes "no visible face" (None) unless its face's confidence exceeds ``threshold``.

    :param weights: per voice, how much its choice counts (its speech seconds): the pairing
        maximises the weighted sum, so a few seconds of speech with a lucky peak do not take a
        face from a voice heard for a minute. Default 1.
    """
    from scipy.optimize import linear_sum_assignment

    n_v, n_f = confidence.shape
    if n_v == 0:
        return []
    w = np.ones(n_v) if weights is None else np.maximum(np.asarray(weights, np.float64), 1e-6)
    cost = np.full((n_v, n_f + n_v), 1e6)
    pw = w[:, None] if pair_weights is None else np.maximum(np.asarray(pair_weights, np.float64), 1e-6)
    cost[:, :n_f] = -np.nan_to_num(confidence, nan=-1e3) * pw
    cost[np.arange(n_v), n_f + np.arange(n_v)] = -threshold * w
    rows, cols = linear_sum_assignment(cost)
    out: list[int | None] = [None] * n_v
    for r, c in zip(rows, cols):
        if c < n_f and confidence[r, c] > threshold:
            out[r] = int(c)
    return out
