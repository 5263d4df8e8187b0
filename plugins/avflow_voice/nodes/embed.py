"""``voice.embed``: voice embeddings of speech windows (Resemblyzer's GE2E encoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import AudioChunk, Node, Port, param

from .. import embed as _embed
from .. import vad as _vad
from ..audio import Mono16k
from ..payloads import SpeechActivity, VoiceEmbedding


@dataclass(frozen=True)
class EmbedConfig:
    window: float = param(1.6, "seconds of speech per embedding window (Resemblyzer's partials: 1.6)",
                          min=0.5, max=6.0)
    step: float = param(0.2, "seconds of speech between window starts", min=0.05, max=6.0)
    min_speech: float = param(0.5, "an utterance this long (s) gets a window even if shorter than window",
                              min=0.1)
    max_pause: float = param(0.45, "a pause this long (s) ends an utterance: no window spans it, so the end of "
                                   "a turn is not embedded with the start of the next; shorter pauses are cut "
                                   "out of the windows (0.3 left two thirds of some turns without a window)",
                             min=0.0)
    batch_size: int = param(32, "windows per encoder call", min=1)


class VoiceEmbedder(Node):
    """Voice embeddings of speech windows from Resemblyzer's GE2E encoder (the weights its wheel ships).

    The 40-band mel power spectrum of the 16 kHz mono audio (:class:`avflow_voice.embed.MelStream`,
    Resemblyzer's filter bank) is computed as the audio streams; frames the activity detector
    calls speech are queued with their times, and every ``step`` seconds of speech the last
    ``window`` seconds of it become one window (pauses are left out, as Resemblyzer's own
    ``preprocess_wav`` does, but every window keeps its real start, end and centre). A pause of
    ``max_pause`` or more ends an utterance: windows never span it (the end of one turn is not
    embedded with the start of the next), an utterance's last window ends with it, and one
    shorter than ``window`` but at least ``min_speech`` long is one window. Windows are embedded
    ``batch_size`` at a time. Cost: about 4 ms of CPU per window (one thread).

    Ports:
      - in ``audio`` (AudioChunk): the soundtrack (any rate and layout; resampled to 16 kHz mono).
      - in ``speech`` (SpeechActivity): from ``voice.activity``.
      - out ``embeddings`` (VoiceEmbedding): one per window, in time order.

    .. code-block:: yaml

        embed:
          type: voice.embed
          inputs: {audio: decode.audio, speech: vad.speech}
          params: {window: 1.6, step: 0.2}
    """

    type = "voice.embed"
    Config = EmbedConfig
    inputs = {"audio": Port(AudioChunk, "the soundtrack"),
              "speech": Port(SpeechActivity, "speech activity (voice.activity)")}
    outputs = {"embeddings": Port(VoiceEmbedding, "one voice embedding per speech window")}
    queue_size = 64

    def open(self, ctx):
        self._encoder = ctx.resource(("voice.embed", "resemblyzer", ctx.device), lambda: _embed.load_encoder(
            "cuda" if str(ctx.device).startswith("cuda") else "cpu"))
        self._audio = Mono16k()
        self._mel = _embed.MelStream()
        self._mels: list[np.ndarray] = []  # mel frames not yet classified
        self._mel_next = 0  # index of self._mels[0]
        self._speech: list[bool] = []  # VAD decisions not yet used
        self._speech_start: float | None = None  # time of self._speech[0]
        self._hop = _vad.HOP_S
        self._frames: list[np.ndarray] = []  # speech mel frames (the tail a window can still use)
        self._times: list[float] = []
        self._since = 0  # speech frames since the last window of this utterance
        self._windows: list[tuple[np.ndarray, list[float]]] = []
        self._any_window = False  # the current utterance has a window
        self._gap = 0  # non-speech frames since the last speech frame
        c = self.config
        self._win = int(round(c.window / _embed.FRAME_S))
        self._step = max(1, int(round(c.step / _embed.FRAME_S)))
        self._max_gap = max(1, int(round(c.max_pause / _embed.FRAME_S)))
        self._min_frames = int(round(c.min_speech / _embed.FRAME_S))

    def process(self, port, item, ctx):
        if port == "audio":
            mono = self._audio.push(item)
            self._mels.extend(self._mel.push(mono))
        else:
            if self._speech_start is None:
                self._speech_start = item.time
            self._speech.extend(item.speech.tolist())
            self._hop = item.hop
        self._classify()
        return self._embed(final=False)

    def finish(self, ctx):
        if self._audio.start is not None:
            self._mels.extend(self._mel.push(self._audio.flush(), final=True))
        self._classify(final=True)
        self._end_utterance()
        return self._embed(final=True)

    def _end_utterance(self) -> None:
        """The utterance's last window ends with it (or it is one window, if long enough)."""
        if self._frames and (self._since >= self._step // 2 if self._any_window
                             else len(self._frames) >= self._min_frames):
            self._windows.append((np.stack(self._frames[-self._win:]), self._times[-self._win:]))
        self._frames, self._times = [], []
        self._since, self._any_window = 0, False

    def _classify(self, final: bool = False) -> None:
        """Move mel frames whose time the speech decisions cover into the speech queue."""
        if self._audio.start is None or self._speech_start is None:
            if final:
                self._mels.clear()
            return
        t0 = self._audio.start
        used = 0
        for k, frame in enumerate(self._mels):
            t = t0 + (self._mel_next + k) * _embed.FRAME_S
            hop = int(math.floor((t - self._speech_start) / self._hop))
            if hop >= len(self._speech):
                if not final:
                    break
                is_speech = False
            else:
                is_speech = hop >= 0 and self._speech[hop]
            used = k + 1
            if not is_speech:
                self._gap += 1
                if self._gap == self._max_gap:
                    self._end_utterance()
            else:
                self._gap = 0
                self._frames.append(frame)
                self._times.append(t)
                self._since += 1
                if len(self._frames) >= self._win and (not self._any_window or self._since >= self._step):
                    self._windows.append((np.stack(self._frames[-self._win:]), self._times[-self._win:]))
                    self._any_window, self._since = True, 0
                    del self._frames[: -self._win]
                    del self._times[: -self._win]
        del self._mels[:used]
        self._mel_next += used
        # speech decisions older than the next mel frame are no longer needed
        t_next = t0 + self._mel_next * _embed.FRAME_S
        drop = max(0, int(math.floor((t_next - self._speech_start) / self._hop)) - 1)
        if drop:
            del self._speech[:drop]
            self._speech_start += drop * self._hop

    def _embed(self, final: bool):
        if not self._windows or (not final and len(self._windows) < self.config.batch_size):
            return None
        out = []
        while self._windows:
            batch, self._windows = self._windows[: self.config.batch_size], self._windows[self.config.batch_size:]
            groups: dict[int, list[int]] = {}
            for i, (mel, _) in enumerate(batch):
                groups.setdefault(len(mel), []).append(i)  # a short last window is its own batch
            vectors: dict[int, np.ndarray] = {}
            for idx in groups.values():
                emb = _embed.embed_windows(self._encoder, np.stack([batch[i][0] for i in idx]))
                vectors.update(zip(idx, emb))
            for i, (_, times) in enumerate(batch):
                centre = float(np.median(times))
                out.append(VoiceEmbedding(pts=round(centre * 1000), time_base=Fraction(1, 1000),
                                          start=float(times[0]), end=float(times[-1]) + _embed.FRAME_S,
                                          vector=vectors[i], speech=len(times) * _embed.FRAME_S))
        return {"embeddings": out}
