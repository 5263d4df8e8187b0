"""Wav2Lip's mel spectrogram, whole-file and streaming.

Wav2Lip (``audio.py`` + ``hparams.py``) computes, for 16 kHz mono audio:

1. pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]`` (``x[-1] = 0``);
2. ``|STFT|`` with ``n_fft = win = 800`` (50 ms, periodic Hann) and ``hop = 200`` (12.5 ms, so
   80 columns per second), ``center=True``: the signal is padded by ``n_fft // 2`` on both sides
   and column ``t`` is centred on sample ``200 t``, giving ``T = 1 + len // 200`` columns;
3. an 80-band Slaney mel filterbank between 55 and 7600 Hz (``librosa.filters.mel``);
4. ``20 log10(max(1e-5, m)) - 20`` (``min_level_db = -100``, ``ref_level_db = 20``);
5. symmetric normalisation ``clip(8 (S + 100) / 100 - 4, -4, 4)``.

The centre padding mode is the one subtle point: Wav2Lip pins ``librosa==0.7.0``, whose
``stft`` pads with ``reflect``; librosa >= 0.10 pads with zeros (``constant``) by default. The
lip-sync expert was trained on reflect-padded spectrograms, so ``reflect`` is our default; only
the first and last two columns depend on it.

:func:`wav2lip_mel` is the whole-file reference (it calls librosa exactly as Wav2Lip does);
:class:`StreamingMel` produces the same columns from audio pushed in chunks of any size, with
memory bounded by the chunk size (it keeps the pre-emphasis state and the 600-sample STFT
overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MelParams:
    """Wav2Lip's ``hparams`` for the spectrogram (do not change them for the lip-sync expert)."""

    sample_rate: int = 16000
    n_fft: int = 800
    hop: int = 200
    win: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0


WAV2LIP = MelParams()

#: Mel columns per second (16000 / 200 = 80): Wav2Lip's ``int(80. * t)`` column of time ``t``.
COLUMNS_PER_SECOND = WAV2LIP.sample_rate // WAV2LIP.hop
#: Time base of a mel column index.
MEL_TIME_BASE = Fraction(WAV2LIP.hop, WAV2LIP.sample_rate)
PAD_MODES = ("reflect", "constant")


def n_columns(n_samples: int, hop: int = WAV2LIP.hop) -> int:
    """Number of columns of a centred STFT of ``n_samples`` samples: ``1 + n // hop`` (0 if empty)."""
    return 0 if n_samples <= 0 else 1 + n_samples // hop


def preemphasis(x: np.ndarray, k: float = WAV2LIP.preemphasis, prev: float = 0.0) -> np.ndarray:
    """``y[n] = x[n] - k x[n-1]`` in float64; ``prev`` is the sample before ``x[0]`` (0 at the start).

    Same arithmetic as ``scipy.signal.lfilter([1, -k], [1], x)``, but resumable across chunks.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    if x.size:
        y[0] = x[0] - k * prev
        y[1:] = x[1:] - k * x[:-1]
    return y


def amp_to_db(x: np.ndarray, p: MelParams = WAV2LIP) -> np.ndarray:
    """``20 log10(max(min_level, x))`` with ``min_level = 10 ** (min_level_db / 20)`` (Wav2Lip's form)."""
    min_level = np.exp(p.min_level_db / 20 * np.log(10))
    return 20 * np.log10(np.maximum(min_level, x))


def normalize(s_db: np.ndarray, p: MelParams = WAV2LIP) -> np.ndarray:
    """Symmetric normalisation of dB values to ``[-max_abs, max_abs]``, clipped (``-120 dB -> -4``)."""
    m = p.max_abs_value
    return np.clip((2 * m) * ((s_db - p.min_level_db) / (-p.min_level_db)) - m, -m, m)


def mel_basis(p: MelParams = WAV2LIP) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) float32 Slaney filterbank Wav2Lip uses (librosa's
    ``filters.mel``, computed without importing librosa: ``avflow_voice.embed.mel_filters``)."""
    from avflow_voice.embed import mel_filters

    return mel_filters(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)


def magnitude_to_mel(mag: np.ndarray, basis: np.ndarray, p: MelParams = WAV2LIP) -> np.ndarray:
    """|STFT| (freq, T) -> normalised mel (n_mels, T), float32."""
    s = amp_to_db(np.dot(basis, mag), p) - p.ref_level_db
    return normalize(s, p).astype(np.float32)


def _as_mono(wav: Any) -> np.ndarray:
    a = np.asarray(wav)
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 1:
        raise ValueError(f"expected mono audio as a 1-D array or shape (1, n), got shape {a.shape}")
    return a


def wav2lip_mel(wav16k: Any, pad_mode: str = "reflect") -> np.ndarray:
    """Wav2Lip's ``audio.melspectrogram`` of 16 kHz mono audio: float32 (80, 1 + len // 200).

    :param wav16k: samples in [-1, 1], 1-D or (1, n), at 16 kHz.
    :param pad_mode: ``reflect`` (Wav2Lip's pinned librosa 0.7) or ``constant`` (librosa >= 0.10).
    """
    import librosa

    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
    p = WAV2LIP
    x = _as_mono(wav16k)
    if x.size == 0:
        return np.zeros((p.n_mels, 0), np.float32)
    y = preemphasis(x, p.preemphasis)
    d = librosa.stft(y=y, n_fft=p.n_fft, hop_length=p.hop, win_length=p.win, center=True, pad_mode=pad_mode)
    return magnitude_to_mel(np.abs(d), mel_basis(p), p)


class StreamingMel:
    """Wav2Lip's mel spectrogram of audio pushed in chunks; columns equal :func:`wav2lip_mel`'s.

    .. code-block:: python

        sm = StreamingMel()
        cols = [sm.push(chunk) for chunk in chunks] + [sm.finish()]
        mel = np.concatenate(cols, axis=1)           # == wav2lip_mel(np.concatenate(chunks))

    Internally the signal is handled in *padded* coordinates (sample ``j`` of the padded signal
    is input sample ``j - n_fft // 2``), where column ``t`` is ``padded[hop t : hop t + n_fft]``.
    A column is computed as soon as all its samples are real input; the left padding is built
    once ``n_fft // 2 + 1`` samples are in (reflect needs them), the right padding at
    :meth:`finish`. Between calls only the samples of columns not yet computed are kept.
    """

    def __init__(self, pad_mode: str = "reflect", params: MelParams = WAV2LIP):
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
        from avflow_voice.embed import hann

        self.p = params
        self.pad_mode = pad_mode
        self._basis = mel_basis(params)
        # librosa's default window: periodic ("fftbins") Hann of win samples, centred in n_fft.
        win = hann(params.win)
        lpad = (params.n_fft - params.win) // 2
        self._window = np.pad(win, (lpad, params.n_fft - params.win - lpad)).astype(np.float64)
        self._half = params.n_fft // 2
        self._prev = 0.0                 # last raw sample, for pre-emphasis
        self._head: np.ndarray | None = np.zeros(0)  # pre-emphasised samples before the left pad exists
        self._buf = np.zeros(0)          # padded signal from padded index self._buf_start
        self._buf_start = 0
        self.n_samples = 0               # input samples pushed so far
        self.next_column = 0             # index of the next column to emit
        self._finished = False

    def push(self, samples: Any) -> np.ndarray:
        """Add consecutive samples; return the newly complete columns, float32 (80, k)."""
        if self._finished:
            raise RuntimeError("StreamingMel.push() after finish()")
        x = _as_mono(samples)
        if x.size == 0:
            return self._empty()
        y = preemphasis(x, self.p.preemphasis, self._prev)
        self._prev = float(np.float64(x[-1]))
        self.n_samples += x.size
        if self._head is not None:
            self._head = np.concatenate([self._head, y])
            if self._head.size <= self._half:
                return self._empty()
            # Enough input to build the left padding exactly as np.pad would.
            left = self._pad_left(self._head)
            self._buf = np.concatenate([left, self._head])
            self._buf_start = 0
            self._head = None
        else:
            self._buf = np.concatenate([self._buf, y])
        return self._emit(self._buf_start + self._buf.size)

    def finish(self) -> np.ndarray:
        """The input has ended: pad the end and return the remaining columns."""
        if self._finished:
            return self._empty()
        self._finished = True
        if self.n_samples == 0:
            return self._empty()
        if self._head is not None:
            # Shorter than n_fft // 2 + 1 samples: pad the whole signal at once, like librosa.
            self._buf = np.pad(self._head, (self._half, self._half), mode=self.pad_mode)
            self._buf_start = 0
            self._head = None
        else:
            self._buf = np.concatenate([self._buf, self._pad_right(self._buf)])
        return self._emit(self._buf_start + self._buf.size)

    # -- internals -------------------------------------------------------------------------
    def _empty(self) -> np.ndarray:
        return np.zeros((self.p.n_mels, 0), np.float32)

    def _pad_left(self, y: np.ndarray) -> np.ndarray:
        if self.pad_mode == "constant":
            return np.zeros(self._half)
        return y[1:self._half + 1][::-1]  # np.pad "reflect": x[h], ..., x[1] before x[0]

    def _pad_right(self, buf: np.ndarray) -> np.ndarray:
        if self.pad_mode == "constant":
            return np.zeros(self._half)
        return buf[-self._half - 1:-1][::-1]  # x[n-2], ..., x[n-1-h] after x[n-1]

    def _emit(self, available_end: int) -> np.ndarray:
        """Columns whose padded samples all lie before ``available_end``; trims the buffer."""
        p = self.p
        last = (available_end - p.n_fft) // p.hop  # last computable column
        if self._finished:
            last = min(last, n_columns(self.n_samples, p.hop) - 1)
        if last < self.next_column:
            return self._empty()
        lo = self.next_column * p.hop - self._buf_start
        hi = last * p.hop + p.n_fft - self._buf_start
        seg = self._buf[lo:hi]
        frames = np.lib.stride_tricks.sliding_window_view(seg, p.n_fft)[::p.hop]
        mag = np.abs(np.fft.rfft(frames * self._window, n=p.n_fft, axis=1)).T
        out = magnitude_to_mel(mag, self._basis, p)
        self.next_column = last + 1
        keep_from = self.next_column * p.hop
        self._buf = self._buf[keep_from - self._buf_start:].copy()
        self._buf_start = keep_from
        return out
