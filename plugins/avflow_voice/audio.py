"""16 kHz mono audio for the voice models, from chunks of any rate and layout."""

from __future__ import annotations

import numpy as np

from avflow import AudioChunk

SAMPLE_RATE = 16000


class Mono16k:
    """Audio chunks of any rate and layout -> 16 kHz mono float32, streaming (soxr)."""

    def __init__(self):
        self._rate: int | None = None
        self._stream = None
        self.start: float | None = None  # seconds of the first sample

    def push(self, chunk: AudioChunk) -> np.ndarray:
        samples = np.asarray(chunk.samples, np.float32)
        mono = samples.mean(axis=0) if samples.ndim == 2 else samples
        if self._rate is None:
            self._rate, self.start = int(chunk.sample_rate), chunk.time
            if self._rate != SAMPLE_RATE:
                import soxr

                self._stream = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, dtype="float32")
        elif chunk.sample_rate != self._rate:
            raise ValueError(f"the audio sample rate changed from {self._rate} to {chunk.sample_rate} Hz "
                             f"at {chunk.time:.3f} s")
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
