"""Signal processing behind ``sync.motion``: mouth signals from landmarks, audio band envelopes,
windowed normalised cross-correlation. Plain numpy; no state outside the objects.

Mouth signals (MediaPipe face-mesh indices, distances over the outer-eye-corner distance so that
they do not depend on face size):

====================  ==========  ============================================
signal                landmarks   paired with audio band
====================  ==========  ============================================
lower-lip drop        1 - 14      1.5-3 kHz (F2/F3 region)
jaw opening           168 - 152   0.8-1.5 kHz (F1/F2 region)
inner-lip gap         13 - 14     3-6 kHz
====================  ==========  ============================================

Mouth opening follows the amplitude envelope of speech in the 1-3 kHz region better than the
broadband envelope (Chandrasekaran et al., "The natural statistics of audiovisual speech",
PLoS Comput Biol 2009). On the shared talking clips these three pairs, each at its own offset
(their timing differs by a frame or two), separate the speaker from out-of-sync talkers better
than any single pair, than the broadband envelope, and than all pairs against one summed
envelope (``bench/motion_scorer.py``).
"""

from __future__ import annotations

import math

import numpy as np

from avflow_faces import mesh

#: (landmark a, landmark b) distance of each mouth signal, in the order of ``BANDS``
#: (the face-mesh vocabulary is avflow_faces.mesh's).
MOUTH_PAIRS = ((mesh.NOSE_TIP, mesh.INNER_LIP_BOTTOM), (mesh.NOSE_BRIDGE, mesh.CHIN),
               (mesh.INNER_LIP_TOP, mesh.INNER_LIP_BOTTOM))
#: Audio band (Hz) paired with each mouth signal.
BANDS = ((1500.0, 3000.0), (800.0, 1500.0), (3000.0, 6000.0))
#: Band used for the speech-activity level.
LEVEL_BAND = (80.0, 7000.0)
N_SIGNALS = len(MOUTH_PAIRS)


def mouth_signals(landmarks: np.ndarray | None) -> np.ndarray | None:
    """The mouth signals of one face, shape ``(N_SIGNALS,)``, or None without usable landmarks.

    :param landmarks: ``(468 or 478, 2 or 3)`` face-mesh points in pixels.
    """
    if landmarks is None:
        return None
    lm = np.asarray(landmarks)
    n = mesh.N_LANDMARKS
    if lm.ndim != 2 or lm.shape[0] < n or lm.shape[1] < 2 or not np.isfinite(lm[:n, :2]).all():
        return None
    # the points of every pair, then the eye corners: one vectorised distance per pair
    ends = lm[_ENDS, :2].astype(np.float64)
    dist = np.hypot(*(ends[0::2] - ends[1::2]).T)
    eye = float(dist[-1])
    if eye < 1e-3:
        return None
    return dist[:-1] / eye


_ENDS = np.array([i for pair in (*MOUTH_PAIRS, (mesh.EYE_OUTER_LEFT, mesh.EYE_OUTER_RIGHT)) for i in pair])


class BandEnvelope:
    """Streaming short-time band powers of mono audio: one row per 10 ms hop.

    Feed samples with :meth:`push` (absolute sample index of the first one); read the hops made so
    far from ``times`` (hop centres, seconds) and ``powers`` (``(n, len(BANDS) + 1)``: the mouth
    bands, then the level band). Gaps in the input are filled with silence, overlaps dropped.
    """

    def __init__(self, sample_rate: int, hop_s: float = 0.01, win_s: float = 0.025):
        self.sample_rate = int(sample_rate)
        self.hop = max(1, int(round(hop_s * sample_rate)))
        self.win = max(16, int(round(win_s * sample_rate)))
        self.n_fft = 1 << int(math.ceil(math.log2(self.win)))
        window = np.hanning(self.win)
        self.window = np.zeros(self.n_fft)
        self.window[: self.win] = window
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        nyquist = sample_rate / 2
        masks = []
        for lo, hi in (*BANDS, LEVEL_BAND):
            mask = (freqs >= lo) & (freqs < min(hi, nyquist))
            if not mask.any():  # band above Nyquist (very low rates): use the top bin
                mask = freqs >= freqs[-1]
            masks.append(mask)
        self.masks = np.stack(masks).astype(np.float64)  # (bands, bins)
        self.norm = 1.0 / float(np.sum(window ** 2) * self.n_fft / 2)
        self._buf = np.zeros(0, np.float64)
        self._buf_start = None  # absolute sample index of _buf[0]
        self._next = None  # absolute sample index of the next hop's first sample
        self.times: list[float] = []
        self.powers: list[np.ndarray] = []
        self.end_sample = 0  # absolute index one past the last sample received

    def push(self, samples: np.ndarray, start: int) -> None:
        """Append mono float samples that start at absolute sample index ``start``."""
        samples = np.asarray(samples, dtype=np.float64)
        if self._buf_start is None:
            self._buf_start = self._next = int(start)
            self.end_sample = int(start)
        if start > self.end_sample:  # a gap: silence
            samples = np.concatenate([np.zeros(start - self.end_sample), samples])
        elif start < self.end_sample:  # an overlap: keep what is new
            samples = samples[self.end_sample - start:]
        if samples.size == 0:
            return
        self._buf = np.concatenate([self._buf, samples])
        self.end_sample += samples.size
        self._run()

    def _run(self) -> None:
        starts = []
        while self._next + self.n_fft <= self.end_sample:
            starts.append(self._next - self._buf_start)
            self._next += self.hop
        if starts:
            idx = np.asarray(starts)[:, None] + np.arange(self.n_fft)[None, :]
            spec = np.abs(np.fft.rfft(self._buf[idx] * self.window, axis=1)) ** 2
            pw = spec @ self.masks.T * self.norm
            for s, p in zip(starts, pw):
                self.times.append((self._buf_start + s + self.win / 2) / self.sample_rate)
                self.powers.append(p)
        drop = self._next - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    @property
    def covered_until(self) -> float:
        """Every hop centred before this time (s) has been computed."""
        if self._next is None:
            return -math.inf
        return (self._next + self.win / 2) / self.sample_rate

    def frame_powers(self, t0: float, t1: float, from_hop: int = 0) -> tuple[np.ndarray | None, int]:
        """Mean hop power over hop centres in ``[t0, t1)`` (the nearest hop if none), and the index
        of the first hop at or after ``t0`` (pass it back as ``from_hop`` to search faster)."""
        times = self.times
        i = from_hop
        while i < len(times) and times[i] < t0:
            i += 1
        j = i
        while j < len(times) and times[j] < t1:
            j += 1
        if j > i:
            return np.mean(self.powers[i:j], axis=0), i
        if not times:
            return None, i
        k = min(max(i, 0), len(times) - 1)
        if k > 0 and abs(times[k - 1] - (t0 + t1) / 2) < abs(times[k] - (t0 + t1) / 2):
            k -= 1
        return self.powers[k], i

    def prune(self, before: float) -> int:
        """Forget hops centred before ``before`` seconds; returns how many were dropped."""
        n = 0
        while n < len(self.times) and self.times[n] < before:
            n += 1
        if n:
            del self.times[:n]
            del self.powers[:n]
        return n


def window_sync(visual: np.ndarray, audio: np.ndarray, lo: int, hi: int, max_lag: int,
                min_motion: float, per_signal: bool = False) -> np.ndarray:
    """Normalised cross-correlation of every track with the audio over frames ``[lo, hi)``, at
    every lag.

    :param visual: ``(n, m, S)`` mouth signals of ``m`` tracks (NaN where missing).
    :param audio: ``(n, S)`` audio band envelopes, one per mouth signal.
    :param max_lag: lags ``-max_lag..max_lag`` frames are tried (row ``L + max_lag``): the audio
        window is shifted by ``L`` frames (positive: the audio comes later than the video);
        frames that fall outside ``[0, n)`` are left out.
    :param min_motion: floor of a mouth signal's standard deviation (a still face scores ~0).
    :param per_signal: keep the signals apart instead of averaging them.
    :returns: ``(2 * max_lag + 1, m)`` correlations averaged over the signals (``(.., m, S)``
        with ``per_signal``), NaN where fewer than half of the window's frames have landmarks.
    """
    n, m, s = visual.shape
    lags = np.arange(-max_lag, max_lag + 1)
    width = hi - lo
    x = visual[lo:hi]  # (w, m, S)
    mask = np.isfinite(x[..., 0]).astype(np.float64)  # (w, m)
    x = np.where(np.isfinite(x), x, 0.0)
    # centre first (exact zeros for a face that does not move, better precision for the rest)
    x = x - (np.einsum("wm,wms->ms", mask, x) / np.maximum(mask.sum(axis=0), 1.0)[:, None])[None]
    x = x * mask[..., None]
    rows = np.arange(lo, hi)[None, :] + lags[:, None]  # (K, w)
    inside = (rows >= 0) & (rows < n)
    y = audio[np.clip(rows, 0, n - 1)]  # (K, w, S)
    wm = mask[None, :, :] * inside[:, :, None]  # (K, w, m)
    cnt = wm.sum(axis=1)  # (K, m)
    safe = np.maximum(cnt, 1.0)[..., None]
    sx = np.einsum("kwm,wms->kms", wm, x)
    sxx = np.einsum("kwm,wms->kms", wm, x * x)
    sy = np.einsum("kwm,kws->kms", wm, y)
    syy = np.einsum("kwm,kws->kms", wm, y * y)
    sxy = np.einsum("kwm,wms,kws->kms", wm, x, y)
    mx, my = sx / safe, sy / safe
    cov = sxy / safe - mx * my
    vx = np.maximum(sxx / safe - mx * mx, min_motion ** 2)
    vy = np.maximum(syy / safe - my * my, 0.0)
    den = np.sqrt(vx * vy)
    r = np.divide(cov, den, out=np.zeros_like(cov), where=den > 1e-12)
    r = np.clip(r, -1.0, 1.0)  # (K, m, S)
    if not per_signal:
        r = r.mean(axis=2)
        return np.where(cnt >= max(3, width // 2), r, np.nan)
    return np.where((cnt >= max(3, width // 2))[..., None], r, np.nan)
