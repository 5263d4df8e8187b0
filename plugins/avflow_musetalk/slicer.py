"""The Whisper slicer: which audio features form the prompt of a frame shown at time ``t``.

Whisper's encoder gives 50 feature frames per second (one every 20 ms), each with the hidden
states of every layer (embeddings + 4 blocks for whisper-tiny: ``L = 5``). MuseTalk gives a
video frame the features around it: 2 video frames (at 25 fps: 4 feature frames) of context on
the left, the frame itself and 2 on the right, 10 feature frames in all, flattened time-major
to a ``(10 * L, d_model)`` prompt (``50 x 384`` for whisper-tiny).

For a frame at ``t`` seconds after the start of the audio, with ``c = floor(50 t)``, the window
is feature frames ``[c - 4, c + 6)``; frames outside the audio are zeros. This is
``AudioProcessor.get_whisper_chunk`` of current MuseTalk, which runs v1 and v1.5 alike (MuseTalk
1.0's own ``Audio2Feature.get_sliced_feature`` repeated the first/last feature frame instead).

The audio's end: MuseTalk keeps ``floor(n x 50 / 16000)`` feature frames of ``n`` samples (a
last, partial one is dropped, so it is zeros in the prompts), and makes ``floor(duration x fps)``
video frames, i.e. only frames whose whole display interval lies within the audio. Here the same
counts come from exact integer arithmetic (MuseTalk's float product loses one of them for a few
lengths that are whole multiples, e.g. 18,560 samples = 1.16 s gives 28 frames at 25 fps, not 29).

At 25 fps this is exactly MuseTalk's indexing (frame ``i``: ``c = 2 i``). At other rates the
window keeps the same place around the frame's own time (4 feature frames before it, 6 from
it: the context the model was trained with at 25 fps). MuseTalk computes with ``int(fps)``
and starts its 10 frames ``2 ceil(50 / int(fps))`` before ``floor(i x 50 / int(fps))``: the same
window for integer rates from 25 to 49 fps, but 6 before and 4 from the frame below 25 fps
(e.g. 24), 2 and 8 from 50 fps on, and at 29.97 fps it computes with 29 fps, so its prompts
fall behind the frames by 3.3 % of the elapsed time (1 s after 30 s). The time here comes
from the frame's timestamp, so variable frame rates need nothing special.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

FEATURE_RATE = 50  # Whisper encoder frames per second (16 kHz, hop 160, conv stride 2)
SAMPLES_PER_FEATURE = 320  # at 16 kHz


def feature_count(n_samples: int) -> int:
    """Whole feature frames in ``n_samples`` of 16 kHz audio: ``floor(n x 50 / 16000)``, as MuseTalk
    keeps (a last, partial one is dropped)."""
    return int(n_samples) // SAMPLES_PER_FEATURE


def frame_count(n_samples: int, fps: Fraction | int) -> int:
    """Video frames MuseTalk makes for ``n_samples`` of 16 kHz audio at a constant ``fps``:
    ``floor(duration x fps)``, the frames shown entirely within the audio."""
    return math.floor(Fraction(int(n_samples), 16000) * Fraction(fps))


def _exact(t: Fraction | float | int) -> Fraction:
    if isinstance(t, Fraction):
        return t
    if isinstance(t, int):
        return Fraction(t)
    # Floats like 0.12 are 0.11999...: snap to the microsecond so floor() sees the intended time.
    return Fraction(round(t * 1_000_000), 1_000_000)


def prompt_window(t: Fraction | float, left: int = 2, right: int = 2) -> tuple[int, int]:
    """Feature indices ``[start, stop)`` of the prompt of a frame shown at ``t`` seconds."""
    c = math.floor(_exact(t) * FEATURE_RATE)
    return c - 2 * left, c + 2 * (right + 1)


def take(features: np.ndarray, start: int, stop: int, total: int | None = None) -> np.ndarray:
    """Feature frames ``[start, stop)`` of ``features`` (``(N, L, D)``), zeros outside the audio;
    flattened to ``((stop - start) * L, D)``.

    :param total: the audio's full length in feature frames, if ``features`` holds only its
        start so far (the caller guarantees the window does not go past what is known).
    """
    n = features.shape[0] if total is None else total
    idx = np.arange(start, stop)
    out = np.zeros((stop - start, *features.shape[1:]), features.dtype)
    ok = (idx >= 0) & (idx < n)
    out[ok] = features[idx[ok]]
    return out.reshape(-1, features.shape[-1])


def audio_prompt(features: np.ndarray, t: Fraction | float, left: int = 2, right: int = 2) -> np.ndarray:
    """The ``(2 (left + right + 1) L, D)`` prompt of a frame at ``t`` s from all features ``(N, L, D)``."""
    start, stop = prompt_window(t, left, right)
    return take(features, start, stop)


class FeatureWindow:
    """The part of a feature stream still needed, for slicing while the audio streams in.

    Features arrive in order (``append``); ``ready(stop)`` says whether a window ending at
    ``stop`` can be cut (all its frames known, or the audio has ended); ``drop_before`` frees
    frames no later window needs.
    """

    def __init__(self) -> None:
        self._base = 0  # feature index of self._data[0]
        self._data: np.ndarray | None = None  # (n, L, D)
        self.total: int | None = None  # known once the stream has ended

    @property
    def end(self) -> int:
        return self._base + (0 if self._data is None else self._data.shape[0])

    def append(self, start: int, features: np.ndarray) -> None:
        if start != self.end:
            raise ValueError(f"features must arrive in order: expected index {self.end}, got {start}")
        self._data = features if self._data is None else np.concatenate([self._data, features])

    def close(self) -> None:
        self.total = self.end

    def ready(self, stop: int) -> bool:
        return self.total is not None or stop <= self.end

    def cut(self, start: int, stop: int) -> np.ndarray:
        """Like :func:`take` over the whole stream."""
        if not self.ready(stop):
            raise ValueError(f"features up to {stop} are not known yet (have {self.end})")
        if self._data is None:
            raise ValueError("no audio features arrived")
        if max(start, 0) < self._base:
            raise ValueError(f"window [{start}, {stop}) reaches feature {max(start, 0)}, already dropped "
                             f"(kept from {self._base}); windows must come in time order")
        known = self.total if self.total is not None else self.end
        return take(self._data, start - self._base, stop - self._base, total=known - self._base)

    def drop_before(self, index: int) -> None:
        """Forget feature frames before ``index``."""
        if self._data is None:
            return
        keep_from = min(max(index, self._base), self.end) - self._base
        if keep_from > 0:
            self._data = self._data[keep_from:].copy()
            self._base += keep_from
