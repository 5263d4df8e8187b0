"""Changes of voice placed from the spectrum, once the voices are known.

Voice embeddings say well *which* voices there are, but a window of 0.8 s across a change of voice
embeds a mixture, so a change found on them lands up to a few tenths of a second off. Here each
change between two touching turns of different voices is moved, within ``search`` seconds, to the
point where the audio stops fitting the first voice and starts fitting the second: every voice gets
a model of its spectrum (a diagonal Gaussian mixture of MFCCs, scikit-learn's, fitted on its own
speech away from its turns' ends, as classic GMM speaker models are), and the change goes where the
summed log-likelihood ratio of the two voices, before minus after, is largest (a change-point
search over 10 ms frames).
"""

from __future__ import annotations

import numpy as np

from avflow import AudioChunk

from .audio import Mono16k
from .embed import FRAME_S, MelStream

#: MFCCs kept per 10 ms frame: coefficients 1-19 of the 40-band log-mel spectrum (0, the level, is
#: left out: it says how loud, not who)
N_COEFFS = 19


def mfcc(mel_power: np.ndarray) -> np.ndarray:
    """MFCCs 1-19 of mel power frames ``(n, 40)``: the orthonormal DCT-II of their log (dB)."""
    from scipy.fft import dct

    log = 10.0 * np.log10(np.maximum(np.asarray(mel_power, np.float64), 1e-10))
    return dct(log, type=2, norm="ortho", axis=1)[:, 1:N_COEFFS + 1]


class Cepstra:
    """MFCCs of a stream, every 10 ms, from audio chunks of any rate and layout (as ``voice.embed``
    reads it: 16 kHz mono, Resemblyzer's 40-band mel). Kept as float16: 19 x 2 bytes per 10 ms,
    about 14 MB per hour of audio."""

    def __init__(self):
        self._audio = Mono16k()
        self._mel = MelStream()
        self._rows: list[np.ndarray] = []

    def push(self, chunk: AudioChunk) -> None:
        self._add(self._mel.push(self._audio.push(chunk)))

    def finish(self) -> None:
        if self._audio.start is not None:
            self._add(self._mel.push(self._audio.flush(), final=True))

    def _add(self, mels: np.ndarray) -> None:
        if len(mels):
            self._rows.append(mfcc(mels).astype(np.float16))

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """``(times, features)``: frame centres (s) and their MFCCs, each coefficient normalised to
        zero mean and unit variance over the whole stream (channel and level differences cancel)."""
        if not self._rows:
            return np.zeros(0), np.zeros((0, N_COEFFS))
        x = np.concatenate(self._rows).astype(np.float32)  # 2 h: 55 MB, as long as the search runs
        x = (x - x.mean(axis=0, dtype=np.float64)) / np.maximum(x.std(axis=0, dtype=np.float64), 1e-6)
        x = x.astype(np.float32)
        return self._audio.start + np.arange(len(x)) * FRAME_S, x


def refine_changes(turns: list[dict], times: np.ndarray, features: np.ndarray, *, search: float = 0.4,
                   components: int = 8, edge: float = 0.2, touching: float = 0.04,
                   max_frames: int = 30000) -> list[dict]:
    """Turns (``voice``, ``start``, ``end``, ``speech``; in time order) with every change between
    two touching turns of different voices moved to where the spectrum changes voice.

    :param times: frame centres (s), as :meth:`Cepstra.frames` gives them.
    :param features: their MFCCs ``(n, d)``.
    :param search: how far (s) a change may move either way (each turn keeps at least 0.05 s).
    :param components: Gaussians per voice model (diagonal covariances).
    :param edge: a voice's model learns from its turns less this much (s) at each end (where the
        change may be misplaced).
    :param touching: turns this close (s) or closer are one change; a pause between two voices'
        turns is left as the speech activity placed it.
    :param max_frames: a voice's model learns from at most this many frames (evenly spaced): the
        cost stays bounded on long input.
    :returns: new turn dicts (the input is left as it is); ``speech`` follows the moved ends.
    """
    from sklearn.mixture import GaussianMixture

    turns = [dict(t) for t in turns]
    if len(turns) < 2 or len(times) == 0:
        return turns
    def frames_in(t0: float, t1: float) -> slice:  # times are sorted: O(log n) per span, not O(n)
        return slice(int(np.searchsorted(times, t0)), int(np.searchsorted(times, t1)))

    models = {}
    for voice in {t["voice"] for t in turns}:
        own = np.zeros(len(times), bool)
        for t in turns:
            if t["voice"] == voice:
                own[frames_in(t["start"] + edge, t["end"] - edge)] = True
        x = features[own]
        if len(x) < max(50, 5 * components):
            continue  # under half a second away from its ends: no model, its changes stay
        if len(x) > max_frames:
            x = x[np.linspace(0, len(x) - 1, max_frames).astype(np.int64)]
        models[voice] = GaussianMixture(components, covariance_type="diag", reg_covar=1e-2,
                                        random_state=0).fit(x)
    for a, b in zip(turns, turns[1:]):
        if a["voice"] == b["voice"] or b["start"] - a["end"] > touching + 1e-9:
            continue
        if a["voice"] not in models or b["voice"] not in models:
            continue
        change = 0.5 * (a["end"] + b["start"])
        lo, hi = max(a["start"] + 0.05, change - search), min(b["end"] - 0.05, change + search)
        sel = frames_in(lo, hi)
        if sel.stop - sel.start < 6:
            continue
        ratio = models[a["voice"]].score_samples(features[sel]) - models[b["voice"]].score_samples(features[sel])
        cum = np.cumsum(ratio)
        split = int(np.argmax(2.0 * cum[:-1] - cum[-1]))  # frames [0, split] are a's
        new = round(float(times[sel.start + split] + FRAME_S / 2), 3)
        a["speech"] = round(a.get("speech", a["end"] - a["start"]) + new - a["end"], 3)
        b["speech"] = round(b.get("speech", b["end"] - b["start"]) - (new - b["start"]), 3)
        a["end"] = b["start"] = new
    return turns
