"""``datasets.shard_writer``: one video's coefficients and audio as ``shard.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from avflow import AudioChunk, File, InputError, Node, Port, param

from ..layout import COEF_KEYS, SAMPLE_RATE, check_fps, to_pcm16
from ..payloads import FaceCoefficients


@dataclass(frozen=True)
class ShardWriterConfig:
    path: str = param("shard.npz", "file written in the output directory (atomically)")
    fps: float = param(25.0, "coefficient frame rate; 16000/fps must be whole", min=1e-3)

    def __post_init__(self) -> None:
        check_fps(self.fps)


class ShardWriter(Node):
    """Write one video's coefficients and 16 kHz mono audio as a shard for ``datasets.build``.

    Audio is placed on the coefficients' timeline by timestamps: sample 0 of the shard is the
    time of the first coefficient frame (earlier audio is dropped, missing audio is silence).
    Samples are stored as 16-bit PCM, as the LMDB's FLAC will hold them. ``n_frames`` is
    ``min(coefficient frames, samples // (16000 / fps))``. Shard contents:
    :mod:`avflow_datasets.shard`.

    Ports:
      - in ``coefs`` (FaceCoefficients): per-frame coefficients.
      - in ``audio`` (AudioChunk): 16 kHz audio (``media.decode`` with ``audio_rate: 16000``).
      - out ``shard`` (File): the written shard.

    Example::

        shard:
          type: datasets.shard_writer
          inputs: {coefs: coefs.coefs, audio: decode.audio}
          params: {path: shard.npz, fps: 25}
    """

    type = "datasets.shard_writer"
    Config = ShardWriterConfig
    inputs = {"coefs": Port(FaceCoefficients, "per-frame coefficients"),
              "audio": Port(AudioChunk, "16 kHz audio")}
    outputs = {"shard": Port(File, "shard.npz with coefficients and audio")}
    queue_size = 256

    def open(self, ctx) -> None:
        self._coefs: list[FaceCoefficients] = []
        self._audio: list[AudioChunk] = []

    def process(self, port: str, item: Any, ctx) -> None:
        if port == "coefs":
            self._coefs.append(item)
            return
        if item.sample_rate != SAMPLE_RATE:
            raise InputError(f"audio is {item.sample_rate} Hz; the dataset needs {SAMPLE_RATE} Hz "
                             "(set media.decode audio_rate: 16000)")
        self._audio.append(item)

    def _audio_from(self, t0: Fraction) -> np.ndarray:
        """Mono samples starting at time ``t0``, placed by each chunk's timestamp."""
        if not self._audio:
            return np.zeros(0, np.float32)
        starts = [int(round((c.pts * c.time_base - t0) * SAMPLE_RATE)) for c in self._audio]
        end = max(s + c.n_samples for s, c in zip(starts, self._audio))
        out = np.zeros(max(end, 0), np.float32)
        for s, c in zip(starts, self._audio):
            mono = c.samples.mean(axis=0) if c.channels > 1 else c.samples[0]
            a, b = max(s, 0), s + c.n_samples
            if b > a:
                out[a:b] = mono[a - s:]
        return out

    def finish(self, ctx) -> dict[str, File]:
        from ..shard import write_shard

        if not self._coefs:
            raise InputError("no coefficient frame reached datasets.shard_writer")
        if not self._audio or sum(c.n_samples for c in self._audio) == 0:
            raise InputError("no audio: the video has no audio samples")
        coefs = sorted(self._coefs, key=lambda c: c.frame_index)
        t0 = Fraction(coefs[0].pts) * coefs[0].time_base
        arrays = {k: np.stack([getattr(c, k) for c in coefs]).astype(np.float32) for k in COEF_KEYS}
        found = np.array([c.face_found for c in coefs])
        pcm = to_pcm16(self._audio_from(t0))
        path = ctx.output_path(self.config.path)
        write_shard(path, arrays, found, pcm, self.config.fps)
        return {"shard": File(pts=coefs[0].pts, time_base=coefs[0].time_base, path=path,
                              kind="application/x-npz")}
