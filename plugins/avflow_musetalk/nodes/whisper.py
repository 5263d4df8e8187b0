"""``musetalk.whisper_features``: Whisper encoder hidden states of the driving audio."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from avflow import AudioChunk, InputError, Node, Port, Tensor, param

from ..layout import WHISPER_MODELS, preflight_model_dir
from ..slicer import FEATURE_RATE, feature_count

SAMPLE_RATE = 16000
SEGMENT_S = 30  # Whisper's input window


def encode_segment(encoder, extractor, samples: np.ndarray, device: str, dtype) -> np.ndarray:
    """Hidden states of every encoder layer for up to 30 s of 16 kHz mono audio.

    :return: ``(T, L, D)`` float32, ``T`` = whole feature frames of the samples (50 per second;
        a last, partial one is dropped, as MuseTalk trims to ``floor(n x 50 / 16000)``),
        ``L`` = layers + 1 (the embeddings first), ``D`` = ``d_model``.
    """
    import torch

    if len(samples) > SEGMENT_S * SAMPLE_RATE:
        raise ValueError(f"a segment holds at most {SEGMENT_S} s of audio, got {len(samples) / SAMPLE_RATE:.2f} s")
    mel = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    with torch.inference_mode():
        hidden = encoder(mel.to(device=device, dtype=dtype), output_hidden_states=True).hidden_states
        stacked = torch.stack(hidden, dim=2)[0]  # (1500, L, D)
        return stacked[:feature_count(len(samples))].float().cpu().numpy()


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz -> 16 kHz (polyphase; the decoder's resampler is preferred)."""
    if rate == SAMPLE_RATE:
        return samples
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(samples, SAMPLE_RATE // g, rate // g).astype(np.float32)


@dataclass(frozen=True)
class WhisperFeaturesConfig:
    models: Path = param(doc="MuseTalk model folder (uses whisper/)")
    version: Literal["v15", "v1"] = param("v15", "MuseTalk version (which files the folder must hold)")
    dtype: Literal["auto", "float16", "float32"] = param("auto", "auto: float16 on CUDA, float32 on CPU")


class WhisperFeatures(Node):
    """Whisper-tiny encoder features of the driving audio, every layer, 50 frames per second.

    Audio is mixed to mono and cut into 30-second segments (Whisper's window), each turned into
    log-mel features by the folder's Whisper feature extractor and encoded; the hidden states of
    all layers (embeddings + each block) are stacked and trimmed to the audio's whole feature
    frames (``floor(n x 50 / 16000)``, as MuseTalk). One
    Tensor per segment, so an hour of audio never sits in memory. Audio should arrive at 16 kHz
    (set ``audio_rate: 16000`` on the decoder); other rates are resampled here.

    Ports:
      - in ``audio`` (AudioChunk): the driving speech.
      - out ``features`` (Tensor): ``data`` (T, layers + 1, d_model) float32, ``pts`` = first feature
        frame, ``time_base`` 1/50 s; ``meta["n_samples"]`` = 16 kHz samples of audio so far.

    Example::

        whisper:
          type: musetalk.whisper_features
          inputs: {audio: audio.audio}
          params: {models: "${models}"}
    """

    type = "musetalk.whisper_features"
    open_alone = True  # loading imports diffusers / transformers, whose lazy imports are not thread-safe
    Config = WhisperFeaturesConfig
    models = WHISPER_MODELS

    @classmethod
    def preflight(cls, config, check):
        """The whole model folder, checked as when the node opens (one list of missing files)."""
        return preflight_model_dir(config)
    inputs = {"audio": Port(AudioChunk, "driving speech")}
    outputs = {"features": Port(Tensor, "Whisper hidden states, one Tensor per 30 s segment")}

    def open(self, ctx) -> None:
        from ..loading import load_whisper, resolve_dtype

        self._dtype = resolve_dtype(self.config.dtype, ctx.device)
        c = self.config
        self._encoder, self._extractor, _ = ctx.resource(
            ("musetalk.whisper", str(c.models), c.version, ctx.device, str(self._dtype)),
            lambda: load_whisper(c.models, ctx.device, self._dtype, c.version))
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self._rate: int | None = None
        self._next_pts: int | None = None  # expected pts of the next chunk, in samples
        self._samples = 0  # 16 kHz samples encoded so far
        self._features = 0  # feature frames emitted so far

    def process(self, port, item: AudioChunk, ctx):
        if self._rate is None:
            self._rate = item.sample_rate
            self._next_pts = item.pts
        elif item.sample_rate != self._rate:
            raise InputError(f"audio sample rate changed from {self._rate} to {item.sample_rate} Hz mid-stream")
        mono = item.samples.mean(axis=0) if item.samples.shape[0] > 1 else item.samples[0]
        mono = np.asarray(mono, np.float32)
        gap = item.pts - self._next_pts
        if gap > 0:  # a hole in the stream: silence keeps later audio at its time
            self._add(np.zeros(gap, np.float32))
        elif gap < 0:  # overlap: keep the samples already taken
            mono = mono[-gap:]
        self._add(mono)
        self._next_pts = item.pts + item.n_samples
        out = []
        segment = SEGMENT_S * self._rate
        while self._buffered >= segment:
            out.append(self._encode(self._take(segment)))
        return {"features": out} if out else None

    def finish(self, ctx):
        if self._buffered:
            return {"features": self._encode(self._take(self._buffered))}
        if not self._samples:
            raise InputError("the driving audio holds no samples")
        return None

    def _add(self, x: np.ndarray) -> None:
        if len(x):
            self._parts.append(x)
            self._buffered += len(x)

    def _take(self, n: int) -> np.ndarray:
        data = np.concatenate(self._parts)
        self._parts = [data[n:]] if len(data) > n else []
        self._buffered = len(data) - n
        return data[:n]

    def _encode(self, samples: np.ndarray) -> Tensor:
        samples = resample(samples, self._rate)
        feats = encode_segment(self._encoder, self._extractor, samples, str(self._encoder.device), self._dtype)
        start = self._features
        self._features += feats.shape[0]
        self._samples += len(samples)
        return Tensor(pts=start, time_base=Fraction(1, FEATURE_RATE), name="whisper", data=feats,
                      meta={"n_samples": self._samples, "sample_rate": SAMPLE_RATE, "layers": feats.shape[1]})

    def close(self, ctx) -> None:
        self._encoder = None
