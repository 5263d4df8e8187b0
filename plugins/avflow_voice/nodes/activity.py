"""``voice.activity``: speech activity every 32 ms (Silero VAD)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import AudioChunk, Node, Port, param

from .. import vad as _vad
from ..audio import Mono16k
from ..payloads import SpeechActivity


class _RunFilter:
    """Streaming minimum run lengths for a boolean sequence: a run shorter than its minimum
    (``min_true`` for speech, ``min_false`` for silence) takes the value of the run before it."""

    def __init__(self, min_true: int, min_false: int):
        self.need = {True: max(1, min_true), False: max(1, min_false)}
        self.current = False
        self._pending = 0

    def push(self, values: np.ndarray) -> list[bool]:
        out: list[bool] = []
        for v in values.tolist():
            if v == self.current:
                out.extend([self.current] * (self._pending + 1))  # a short excursion is absorbed
                self._pending = 0
                continue
            self._pending += 1
            if self._pending >= self.need[v]:
                out.extend([v] * self._pending)
                self.current, self._pending = v, 0
        return out

    def flush(self) -> list[bool]:
        out, self._pending = [self.current] * self._pending, 0
        return out


@dataclass(frozen=True)
class ActivityConfig:
    threshold: float = param(0.5, "speech probability at which speech starts", min=0.0, max=1.0)
    neg_threshold: float = param(0.35, "speech goes on until the probability falls below this (hysteresis)",
                                 min=0.0, max=1.0)
    min_speech: float = param(0.1, "shortest speech (s); shorter bursts are silence", min=0.0)
    min_silence: float = param(0.1, "shortest silence (s); shorter gaps inside speech are speech", min=0.0)
    batch: float = param(0.5, "seconds of audio per network call: decisions come this much later, and each "
                              "call costs ~5 ms however short (0.5 s: a fifth of the CPU of 0.1 s calls)",
                         min=0.032, max=10.0)


class SpeechActivityDetector(Node):
    """Speech activity every 32 ms from Silero VAD (MIT; the weights its wheel ships).

    Audio of any rate and layout is mixed to mono and resampled to 16 kHz (soxr) as it streams;
    Silero's network (:mod:`avflow_voice.vad`) gives a probability per 512 samples. Speech
    starts at ``threshold``, goes on until ``neg_threshold`` (Silero's own defaults), and runs
    shorter than ``min_speech`` / ``min_silence`` are absorbed by their neighbours. Runs with the
    thread count the graph gives (importing ``silero_vad`` would set one thread for the whole
    process; this node never imports it). The network runs on ``batch`` seconds at a time (a
    call costs ~5 ms of CPU however short, so 0.1 s calls cost 50 ms per second of audio, 0.5 s
    ones about 12 ms).

    Ports:
      - in ``audio`` (AudioChunk): any rate, any channels.
      - out ``speech`` (SpeechActivity): probabilities and decisions, one payload per input chunk
        (decisions lag the audio by ``min_speech``/``min_silence``).

    .. code-block:: yaml

        vad:
          type: voice.activity
          inputs: {audio: decode.audio}
    """

    type = "voice.activity"
    Config = ActivityConfig
    inputs = {"audio": Port(AudioChunk, "the soundtrack, any rate and layout")}
    outputs = {"speech": Port(SpeechActivity, "speech probability and decision per 32 ms")}

    def open(self, ctx):
        model = ctx.resource(("voice.activity", "silero-vad"), _vad.load_vad)
        self._vad = _vad.StreamingVAD(model, min_chunks=round(self.config.batch / _vad.HOP_S))
        self._audio = Mono16k()
        hop = _vad.HOP_S
        c = self.config
        self._runs = _RunFilter(round(c.min_speech / hop), round(c.min_silence / hop))
        self._probs: list[float] = []  # computed, not yet decided
        self._on = False
        self._emitted = 0  # hops emitted

    def process(self, port, item, ctx):
        return self._emit(self._vad.push(self._audio.push(item)), final=False)

    def finish(self, ctx):
        if self._audio.start is None:
            return None
        probs = np.concatenate([self._vad.push(self._audio.flush()), self._vad.flush()])
        return self._emit(probs, final=True)

    def _emit(self, probs: np.ndarray, final: bool):
        c = self.config
        raw = []
        for p in probs.tolist():
            self._on = p >= c.threshold or (self._on and p >= c.neg_threshold)
            raw.append(self._on)
        self._probs.extend(probs.tolist())
        decided = self._runs.push(np.array(raw, bool))
        if final:
            decided += self._runs.flush()
        if not decided:
            return None
        n = len(decided)
        start = self._audio.start + self._emitted * _vad.HOP_S
        out = SpeechActivity(pts=round(start * _vad.SAMPLE_RATE), time_base=Fraction(1, _vad.SAMPLE_RATE),
                             probs=np.array(self._probs[:n], np.float32), hop=_vad.HOP_S,
                             speech=np.array(decided, bool))
        del self._probs[:n]
        self._emitted += n
        return {"speech": out}
