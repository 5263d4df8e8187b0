"""The voice plugin's nodes: ``voice.activity``, ``voice.embed``, ``voice.cluster``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import AudioChunk, Node, Port, param

from . import embed as _embed
from . import vad as _vad
from .cluster import cluster_voices, merge_small, segment_voices
from .payloads import SpeechActivity, VoiceEmbedding, VoiceTurns


class _Mono16k:
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
            if self._rate != _vad.SAMPLE_RATE:
                import soxr

                self._stream = soxr.ResampleStream(self._rate, _vad.SAMPLE_RATE, 1, dtype="float32")
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


class SpeechActivityDetector(Node):
    """Speech activity every 32 ms from Silero VAD (MIT; the weights its wheel ships).

    Audio of any rate and layout is mixed to mono and resampled to 16 kHz (soxr) as it streams;
    Silero's network (:mod:`avflow_voice.vad`) gives a probability per 512 samples. Speech
    starts at ``threshold``, goes on until ``neg_threshold`` (Silero's own defaults), and runs
    shorter than ``min_speech`` / ``min_silence`` are absorbed by their neighbours. Runs with the
    thread count the graph gives (importing ``silero_vad`` would set one thread for the whole
    process; this node never imports it). Cost: about 5 ms of CPU per second of audio.

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
        self._vad = _vad.StreamingVAD(model)
        self._audio = _Mono16k()
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


@dataclass(frozen=True)
class EmbedConfig:
    window: float = param(1.6, "seconds of speech per embedding window (Resemblyzer's partials: 1.6)",
                          min=0.5, max=6.0)
    step: float = param(0.2, "seconds of speech between window starts", min=0.05, max=6.0)
    min_speech: float = param(0.5, "an utterance this long (s) gets a window even if shorter than window",
                              min=0.1)
    max_pause: float = param(0.3, "a pause this long (s) ends an utterance: no window spans it, so the end of "
                                  "a turn is not embedded with the start of the next", min=0.0)
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
        self._audio = _Mono16k()
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
            self._add_mel(self._mel.push(mono))
        else:
            if self._speech_start is None:
                self._speech_start = item.time
            self._speech.extend(item.speech.tolist())
            self._hop = item.hop
        self._classify()
        return self._embed(final=False)

    def finish(self, ctx):
        if self._audio.start is not None:
            self._add_mel(self._mel.push(self._audio.flush(), final=True))
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

    def _add_mel(self, frames: np.ndarray) -> None:
        self._mels.extend(frames)

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


@dataclass(frozen=True)
class ClusterConfig:
    num_speakers: int | None = param(None, "the number of voices, if known", min=1)
    min_speakers: int = param(1, "at least this many voices", min=1)
    max_speakers: int | None = param(None, "at most this many voices", min=1)
    threshold: float = param(0.4, "cosine distance at which the voice hierarchy is cut (average linkage)",
                             min=0.0, max=2.0)
    switch_cost: float = param(0.3, "cost of a change of voice between consecutive windows, in cosine "
                                    "similarity: a window must resemble another voice by this much more, "
                                    "summed over the windows, to start a turn", min=0.0)
    min_voice: float = param(1.0, "a voice with less speech (s) than this is merged into the nearest one",
                             min=0.0)
    min_pause: float = param(0.5, "pauses shorter than this (s) inside one voice's turn stay in the turn",
                             min=0.0)
    overlap_similarity: float = param(0.75, "windows this similar to a second voice as well, for at least "
                                            "overlap_min seconds, are recorded as overlapping speech",
                                      min=0.0, max=1.0)
    overlap_min: float = param(1.0, "shortest recorded overlap (s)", min=0.0)
    max_items: int = param(2000, "windows clustered directly; more are first summarised by k-means "
                                 "(memory stays bounded on long input)", min=10)


class VoiceClusterer(Node):
    """Voices from voice embeddings: who was heard when, as anonymous voices (``voice_0``, ...).

    At the end of the audio (:mod:`avflow_voice.cluster`): the windows are clustered (scipy's
    average-linkage hierarchy on cosine distance, cut at ``threshold`` or at ``num_speakers``,
    within ``min_speakers..max_speakers``; beyond ``max_items`` windows k-means summarises them
    first), voices with less than ``min_voice`` seconds are merged into their nearest neighbour,
    then a Viterbi pass over every window's similarity to each voice (``switch_cost`` per change)
    gives each window one voice. Each 32 ms of speech takes the voice of the nearest window centre,
    so a change of voice falls where the similarities of the centred windows cross; runs of one
    voice separated by pauses shorter than ``min_pause`` form one turn. Ids follow the first time
    a voice is heard, and the same voice after a long gap has the same id.

    Ports:
      - in ``embeddings`` (VoiceEmbedding): from ``voice.embed``.
      - in ``speech`` (SpeechActivity): from ``voice.activity``.
      - out ``voices`` (VoiceTurns): once, at the end.

    .. code-block:: yaml

        voices:
          type: voice.cluster
          inputs: {embeddings: embed.embeddings, speech: vad.speech}
          params: {max_speakers: 8}
    """

    type = "voice.cluster"
    Config = ClusterConfig
    inputs = {"embeddings": Port(VoiceEmbedding, "voice embeddings of speech windows"),
              "speech": Port(SpeechActivity, "speech activity")}
    outputs = {"voices": Port(VoiceTurns, "voice turns, once the audio has ended")}
    queue_size = 64

    def open(self, ctx):
        self._vectors: list[np.ndarray] = []
        self._centres: list[float] = []
        self._spans: list[tuple[float, float]] = []
        self._speech_runs: list[list[float]] = []  # [start, end] of speech
        self._hop = _vad.HOP_S
        self._hops: list[tuple[float, bool]] = []  # (start, speech) per 32 ms, speech only kept

    def process(self, port, item, ctx):
        if port == "embeddings":
            self._vectors.append(np.asarray(item.vector, np.float32))
            self._centres.append(item.time)
            self._spans.append((item.start, item.end))
            return None
        self._hop = item.hop
        t0 = item.time
        for i, s in enumerate(item.speech.tolist()):
            if not s:
                continue
            t = t0 + i * item.hop
            if self._speech_runs and abs(self._speech_runs[-1][1] - t) < 1e-6:
                self._speech_runs[-1][1] = t + item.hop
            else:
                self._speech_runs.append([t, t + item.hop])
        return None

    def finish(self, ctx):
        c = self.config
        speech = [(round(a, 3), round(b, 3)) for a, b in self._speech_runs]
        if not self._vectors:
            if speech:
                ctx.logger.info("voice.cluster: %.1f s of speech, too little for a voice embedding", 
                                sum(b - a for a, b in speech))
            return {"voices": VoiceTurns(pts=0, time_base=Fraction(1), speech=speech)}
        emb = np.stack(self._vectors)
        centres = np.array(self._centres)
        order = np.argsort(centres, kind="stable")
        emb, centres = emb[order], centres[order]
        self._spans = [self._spans[i] for i in order]
        voices = cluster_voices(emb, threshold=c.threshold, num_speakers=c.num_speakers,
                                min_speakers=c.min_speakers, max_speakers=c.max_speakers, max_items=c.max_items)
        if c.num_speakers is None:
            step = float(np.median(np.diff(centres))) if len(centres) > 1 else 1.0
            voices = merge_small(voices, emb, np.full(len(emb), step), c.min_voice, keep=c.min_speakers)
        sim = emb.astype(np.float64) @ voices.centroids.T
        labels = segment_voices(sim, c.switch_cost)
        turns = self._turns(centres, labels, sim)
        ids = self._ids(turns)
        for t in turns:
            t["voice"] = ids[t["voice"]]
        listed = []
        for k, vid in sorted(((k, v) for k, v in ids.items()), key=lambda kv: int(kv[1].split("_")[1])):
            mine = [t for t in turns if t["voice"] == vid]
            listed.append({"id": vid, "speech": round(sum(t["speech"] for t in mine), 3), "turns": len(mine)})
        overlaps = self._overlaps(centres, sim, labels, ids)
        ctx.logger.info("%d voices in %.1f s of speech (%d windows)", len(listed),
                        sum(b - a for a, b in speech), len(emb))
        return {"voices": VoiceTurns(pts=0, time_base=Fraction(1), turns=turns, voices=listed,
                                     speech=speech, overlaps=overlaps)}

    def _turns(self, centres: np.ndarray, labels: np.ndarray, sim: np.ndarray) -> list[dict]:
        """Speech runs cut where the nearest window's voice changes, then short pauses bridged."""
        pieces: list[list] = []  # [voice, start, end, speech seconds]
        hop = self._hop
        for a, b in self._speech_runs:
            n = max(1, int(round((b - a) / hop)))
            mids = a + (np.arange(n) + 0.5) * hop
            lab = self._hop_labels(centres, labels, sim, mids)
            start = 0
            for i in range(1, n + 1):
                if i == n or lab[i] != lab[start]:
                    pieces.append([int(lab[start]), a + start * hop, a + i * hop, (i - start) * hop])
                    start = i
        turns: list[dict] = []
        for voice, s, e, sp in pieces:
            last = turns[-1] if turns else None
            if last is not None and last["voice"] == voice and s - last["end"] < self.config.min_pause + 1e-9:
                last["end"], last["speech"] = e, last["speech"] + sp
            else:
                turns.append({"voice": voice, "start": s, "end": e, "speech": sp})
        return [{"voice": t["voice"], "start": round(t["start"], 3), "end": round(t["end"], 3),
                 "speech": round(t["speech"], 3)} for t in turns]

    def _hop_labels(self, centres: np.ndarray, labels: np.ndarray, sim: np.ndarray,
                    times: np.ndarray) -> np.ndarray:
        """The voice of each time: of the windows whose span holds it (any window if none does:
        a short burst between utterances), the nearest centre before and after it; where their
        voices differ, the one whose similarity, interpolated between the two centres, is higher,
        so that a change falls where the centred windows' similarities cross."""
        starts = np.array([s for s, _ in self._spans])
        ends = np.array([e for _, e in self._spans])
        out = np.zeros(len(times), np.int64)
        for i, t in enumerate(times):
            inside = np.flatnonzero((starts <= t) & (t < ends))
            pool = inside if inside.size else np.arange(len(centres))
            before, after = pool[centres[pool] <= t], pool[centres[pool] > t]
            a = before[np.argmax(centres[before])] if before.size else None
            b = after[np.argmin(centres[after])] if after.size else None
            if a is None or b is None or labels[a] == labels[b]:
                out[i] = labels[a if a is not None else b]
                continue
            w = (t - centres[a]) / max(centres[b] - centres[a], 1e-9)
            va, vb = labels[a], labels[b]
            score_a = (1 - w) * sim[a, va] + w * sim[b, va]
            score_b = (1 - w) * sim[a, vb] + w * sim[b, vb]
            out[i] = va if score_a >= score_b else vb
        return out

    @staticmethod
    def _ids(turns: list[dict]) -> dict[int, str]:
        ids: dict[int, str] = {}
        for t in turns:
            ids.setdefault(t["voice"], f"voice_{len(ids)}")
        return ids

    def _overlaps(self, centres, sim, labels, ids) -> list[dict]:
        c = self.config
        if sim.shape[1] < 2:
            return []
        ranked = np.sort(sim, axis=1)
        second = np.argsort(sim, axis=1)[:, -2]
        both = ranked[:, -2] >= c.overlap_similarity
        out, i = [], 0
        while i < len(both):
            if not both[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(both) and both[j + 1] and labels[j + 1] == labels[i] and second[j + 1] == second[i]:
                j += 1
            if centres[j] - centres[i] >= c.overlap_min and labels[i] in ids and second[i] in ids:
                out.append({"start": round(float(centres[i]), 3), "end": round(float(centres[j]), 3),
                            "voices": [ids[int(labels[i])], ids[int(second[i])]]})
            i = j + 1
        return out
