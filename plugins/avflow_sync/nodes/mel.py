"""``sync.mel``: Wav2Lip's mel spectrogram of a 16 kHz mono audio stream."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

from avflow.errors import InputError
from avflow.node import Node, NodeContext, Port, param
from avflow.payloads import AudioChunk, Tensor

from ..mel import MEL_TIME_BASE, WAV2LIP, StreamingMel

_MAX_FILL = 10 * WAV2LIP.sample_rate  # zeros pushed per step when bridging a gap in the audio


@dataclass(frozen=True)
class MelConfig:
    pad_mode: Literal["reflect", "constant"] = param(
        "reflect", "STFT centre padding: reflect (Wav2Lip's pinned librosa 0.7, what the lip-sync expert "
        "was trained on) or constant (zeros, librosa >= 0.10's default)", choices=("reflect", "constant"))


class MelSpectrogram(Node):
    """Wav2Lip's mel spectrogram of a 16 kHz mono audio stream, 80 columns per second.

    As Wav2Lip computes it: 16 kHz, n_fft 800, hop 200, window 800, 80 mels 55-7600 Hz,
    pre-emphasis 0.97, dB with ref 20 and floor -100, symmetric normalisation to [-4, 4].

    The columns are exactly those of the whole-file computation (:func:`avflow_sync.mel.wav2lip_mel`),
    whatever the chunk sizes: the pre-emphasis state, the STFT overlap and the centre padding at
    both ends are handled. Memory is bounded by the chunk size.

    Ports:
        audio (AudioChunk): 16 kHz mono audio; other rates or layouts are an input error (set
            the decoder's ``audio_rate: 16000`` and ``audio_channels: 1``). A gap in the chunks'
            timestamps is filled with silence, so column times stay on the media timeline.
    Outputs:
        mel (Tensor): ``name="mel"``, ``data`` float32 (80, n): the columns computed from this
            chunk; ``pts`` = index of the first column (80 per second, counted from the first
            sample), ``time_base`` = 200/16000 s; ``meta["audio_start_sample"]``: the first
            sample's position on the media timeline, in 16 kHz samples.
    Params:
        pad_mode: ``reflect`` (default) or ``constant``.

    .. code-block:: yaml

        mel:
          type: sync.mel
          inputs: {audio: decode.audio}      # decode: media.decode with audio_rate 16000, audio_channels 1
    """

    type = "sync.mel"
    Config = MelConfig
    inputs = {"audio": Port(AudioChunk, "16 kHz mono audio (media.decode audio_rate=16000 audio_channels=1)")}
    outputs = {"mel": Port(Tensor, "Wav2Lip mel columns: data float32 (80, n), pts = first column, 80 per second")}

    def open(self, ctx: NodeContext) -> None:
        self._mel = StreamingMel(self.config.pad_mode)
        self._start: int | None = None  # first sample, 16 kHz samples on the media timeline
        self._pushed = 0

    def process(self, port: str, item: AudioChunk, ctx: NodeContext):
        sr = WAV2LIP.sample_rate
        if item.sample_rate != sr or item.channels != 1:
            raise InputError(f"sync.mel needs {sr} Hz mono audio, got {item.sample_rate} Hz with {item.channels} "
                             f"channel(s): set the decoder's audio_rate=16000 audio_channels=1")
        samples = item.samples[0]
        if not np.issubdtype(samples.dtype, np.floating):
            raise InputError(f"sync.mel needs float samples in [-1, 1], got {samples.dtype}")
        at = round(Fraction(item.pts) * Fraction(item.time_base) * sr)
        if self._start is None:
            self._start = at
        gap = at - (self._start + self._pushed)
        cols = []
        if gap > 1:  # missing audio: fill with silence to stay on the timeline
            ctx.logger.debug("audio gap of %d samples at %.3f s filled with silence", gap, at / sr)
            while gap > 0:
                n = min(gap, _MAX_FILL)
                cols.append(self._mel.push(np.zeros(n, np.float32)))
                self._pushed += n
                gap -= n
        elif gap < -1:  # overlap with what we already have
            samples = samples[-gap:]
        if samples.size:
            cols.append(self._mel.push(samples))
            self._pushed += samples.size
        return self._emit(cols)

    def finish(self, ctx: NodeContext):
        return self._emit([self._mel.finish()])

    def _emit(self, cols: list[np.ndarray]):
        cols = [c for c in cols if c.shape[1]]
        if not cols:
            return None
        data = np.concatenate(cols, axis=1) if len(cols) > 1 else cols[0]
        first = self._mel.next_column - data.shape[1]
        return {"mel": Tensor(pts=first, time_base=MEL_TIME_BASE, name="mel", data=data,
                              meta={"audio_start_sample": int(self._start or 0),
                                    "sample_rate": WAV2LIP.sample_rate, "hop": WAV2LIP.hop})}
