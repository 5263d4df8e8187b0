"""``sync.live_assign``: who speaks now, decided online with a bounded delay."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import Node, Payload, Port, Record, Score, TrackedFaces, param

from ..assign import EvidencePool, assign_faces
from ..payloads import SyncEvidence
from .assign import THRESHOLDS

_HISTORY = 4.0  # seconds of speech runs and voice labels kept behind the oldest undecided frame
_BURST = 1.5  # seconds from a window that a short burst of speech may be to take its voice
_SETTLED = 100  # frames of evidence after which a pairing's offset is the stream's


@dataclass(frozen=True)
class LiveAssignConfig:
    latency: float = param(2.0, "every frame is decided at most this many seconds after it was heard", min=0.1)
    margin: float = param(0.1, "decide this much before the deadline, for the time the decision takes to "
                                "reach the files", min=0.0)
    wall_clock: bool = param(True, "also decide by the wall clock (live input: a frame is due latency - margin "
                                   "after it was heard, however far the other inputs are); false: by media "
                                   "time only")
    threshold: float | None = param(None, "confidence a face needs to be given a voice (as sync.assign's); "
                                          "null: the scorer's own (sync.motion 0.08, sync.syncnet 0.05)")
    min_frames: int = param(12, "frames of evidence a face needs with a voice to be a candidate", min=1)
    min_pause: float = param(0.3, "pauses shorter than this (s) between speech of one voice keep the voice "
                                  "(as sync.assign's)", min=0.0)
    weigh_until: float | None = param(1.0, "in the pairing a voice's choice counts by its seconds of evidence up "
                                           "to this many, then all alike (live, every voice is young: the voice "
                                           "heard longer so far, often an off-screen one, would take a face on a "
                                           "chance peak from the voice whose lips follow; sync.assign weighs all "
                                           "of it); null: no cap", min=0.0)
    stay: float = param(0.05, "a voice keeps its face unless another face's confidence beats it by this much "
                              "(early evidence is thin: no flicker between two faces)", min=0.0)
    near: float | None = param(0.12, "the sync peak of a voice and a face counts within this many seconds of "
                                     "the stream's A/V offset (0 until a pairing has 100 frames, then the "
                                     "best-established pairing's) until the pairing has search_after seconds: on a "
                                     "few frames a chance peak elsewhere in the search outdoes the true one; null: "
                                     "anywhere, as sync.assign", min=0.0)
    search_after: float | None = param(3.0, "seconds of evidence a voice needs with a face for the peak to be "
                                            "sought over every offset, as sync.assign seeks it (less "
                                            "offset_penalty per second of offset): a face whose audio is late "
                                            "by an offset of its own is found; null: always near", min=0.0)
    offset_penalty: float = param(0.15, "with search_after: the confidence at each offset is lowered by this much "
                                        "per second of offset (sync.assign's)", min=0.0)
    early: float = param(3.0, "until a voice has this many seconds of evidence with a face, its frames go to "
                               "the face whose scores (the scores input) over the voice's frames so far are "
                               "highest: a voice's first pairing rests on little evidence", min=0.0)
    early_threshold: float | None = param(None, "while a voice is early, the mean score a face needs to be its "
                                                "speaker; null: half the scorer's recommended threshold "
                                                "(sync.motion: 0.1; a mean over a voice's frames is steadier "
                                                "than one over 9 frames)", min=0.0)
    early_span: float = param(1.0, "a voice's first this many seconds (media time from its first frame) go to any "
                                   "face by the scores; later early frames only to a face no other voice holds "
                                   "(one voice per face, as the pairing has it: an off-screen voice's lips are "
                                   "the visible face's, out of sync, whose mean score passes by chance)", min=0.0)
    label_by: str = param("similarity", "a frame's voice: that of the window most similar to its voice among "
                                        "those holding the frame (similarity: at a change of voice, the windows "
                                        "holding both voices are the least similar) or of the one centred nearest "
                                        "it (centre)", choices=("similarity", "centre"))
    forget: float = param(30.0, "a face track unseen for this many seconds leaves the pairing (bounded "
                                "memory: tracks come and go on endless input)", min=1.0)


class LiveVoiceAssigner(Node):
    """Decide every frame online: the voice heard and the face whose lips follow that voice.

    The live counterpart of ``sync.assign``, on the same evidence (``SyncEvidence``) and the same
    pairing (:mod:`avflow_sync.assign`: evidence pooled per voice and face, confidence = peak minus
    median over audio offsets, voices and faces paired one to one by ``linear_sum_assignment``,
    each voice weighted by its frames of evidence, here only up to ``weigh_until`` seconds), but
    updated as evidence comes in: the voices are ``voice.online``'s labels, the pool grows frame
    by frame, and each frame is decided once, when it falls due, with what is known then. A
    frame at media time ``t`` falls due when the input reaches ``t + latency`` or, on live
    input, when the wall clock reaches the moment ``t`` was heard plus ``latency - margin``
    (that moment: the earliest arrival of the speech activity, less its media time), whichever
    comes first. Its voice is that of the window
    (``voice.online``) most similar to its voice among those holding it (``label_by``: the
    windows across a change of voice hold both and are the least similar, so a change lands
    where the windows of one voice meet, not 0.4-0.8 s late where the encoder turns), where the
    activity detector hears speech (or a pause shorter than ``min_pause`` inside one voice's
    speech); its speaker is that voice's face when visible. A frame's evidence is pooled only
    where every window holding it has one voice (not at a change of voice, where the windows hold
    both), and a pooled curve's peak counts only ``near`` the stream's A/V offset (that of the
    pairing with the most evidence, once it has 100 frames; 0 before) until the pairing has
    ``search_after`` seconds of evidence: on a few seconds a chance peak at another offset often
    beats the true one; past them the peak is sought over every offset as ``sync.assign`` seeks
    it (``offset_penalty``), so that a face whose audio is late by an offset of its own is found.
    A voice keeps its face unless another beats it by ``stay``. Memory: the pool is a sum per
    voice and face (tracks unseen for ``forget`` s are dropped), the frames not yet decided, and
    a few seconds of speech and labels.

    Ports:
      - in ``evidence`` (SyncEvidence): per track per frame, at every offset (``sync.motion``).
      - in ``labels`` (Payload): ``voice.online``'s ``VoiceLabel`` per window (``start``, ``end``, ``voice``).
      - in ``speech`` (Payload): ``voice.activity``'s ``SpeechActivity`` (``speech``, ``hop``).
      - in ``tracks`` (TrackedFaces): every frame (the frames to decide) and who is visible in it.
      - in ``scores`` (Score, optional): ``sync.motion``'s per-frame scores; until a voice has
        ``early`` seconds of evidence with a face, its frames go to the visible face whose scores,
        averaged over the voice's frames so far (those decided, and those ahead whose voice is
        known), are highest and above ``early_threshold`` (else to the voice's pairing); past the
        voice's first ``early_span`` seconds, only a face that the pairing gives to no other voice.
      - out ``active`` (Record): per frame, as ``sync.assign``'s (``frame_index``, ``time``, ``active``,
        ``voice``, ``scores``: each visible track's confidence for the voice), plus ``delay`` (wall
        seconds from the moment heard to the decision, null on input faster than real time),
        ``lag`` (media seconds the input had reached past the frame) and ``confidence``.
      - out ``voices`` (Record): ``sync.assign``'s summary (``voices``: id, speech, speaker,
        confidence, offset, evidence), whenever a voice's face changes, and at the end.

    .. code-block:: yaml

        assign:
          type: sync.live_assign
          inputs: {evidence: motion.evidence, labels: voices.labels, speech: vad.speech, tracks: track.tracks,
                   scores: motion.scores}
          params: {latency: 2.0}
    """

    type = "sync.live_assign"
    Config = LiveAssignConfig
    inputs = {"evidence": Port(SyncEvidence, "lip/audio agreement per track per frame and offset"),
              "labels": Port(Payload, "each window's voice (voice.online)"),
              "speech": Port(Payload, "speech activity (voice.activity)"),
              "tracks": Port(TrackedFaces, "every frame's face tracks"),
              "scores": Port(Score, "per-frame sync scores (sync.motion): the decision while a voice's "
                                    "evidence is thin (early)", optional=True)}
    outputs = {"active": Port(Record, "per frame, as it is decided: the speaking track id (or null) and the voice"),
               "voices": Port(Record, "each voice, its face and the evidence for it (on change, and at the end)")}
    queue_size = 256

    def open(self, ctx):
        self._pending: deque[dict] = deque()  # frames not yet decided, in order
        self._decided: deque[tuple[int, str | None]] = deque(maxlen=512)  # for evidence arriving late
        self._runs: deque[list[float]] = deque()  # [start, end] of speech, merged
        self._speech_until = -np.inf  # media time up to which speech activity is known
        self._labels_until = -np.inf  # centre of the latest voice label
        self._labels: deque = deque()
        self._reach = 0.0  # seconds past t that a window holding t may be centred (the longest half-window seen)
        self._pool = EvidencePool()
        self._scale: str | None = None
        self._frame_s = 0.04
        self._clock = -np.inf  # the furthest media time any input has reached
        self._origin: float | None = None  # monotonic wall time of media time 0 (live input)
        self._seen: dict[str, float] = {}  # track id -> last media time visible
        self._faces: dict[str, dict] = {}  # voice id -> its pairing, as of the last assignment
        self._dirty = True
        self._av_offset = 0.0  # seconds the sound comes after the picture, once a pairing has settled
        self._speech_s: dict[str, float] = {}
        self._reported: dict[str, str | None] = {}
        self._scores: dict[int, dict[str, float]] = {}  # frame index -> track -> score (recent frames)
        self._score_threshold = 0.2
        self._voice_scores: dict[str, dict[str, list]] = {}  # voice -> track -> [sum, count] of decided frames' scores
        self._scored = False  # whether the scores input sends anything
        self._first: dict[str, float] = {}  # voice -> media time of its first decided frame

    # -- input ------------------------------------------------------------------------------
    def process(self, port, item, ctx):
        now = time.monotonic()
        if port == "tracks":
            self._pending.append({"index": item.frame_index, "pts": item.pts, "tb": Fraction(item.time_base),
                                  "time": item.time, "tracks": [f.track_id for f in item.faces], "evidence": []})
            for f in item.faces:
                self._seen[f.track_id] = item.time
            self._clock = max(self._clock, item.time)
        elif port == "evidence":
            self._evidence(item)
        elif port == "scores":
            self._scored = True
            if item.value is not None:
                self._scores.setdefault(item.frame_index, {})[item.track_id] = float(item.value)
            if item.extra.get("threshold") is not None:
                self._score_threshold = float(item.extra["threshold"])
        elif port == "labels":
            self._labels.append(item)
            self._reach = max(self._reach, item.end - item.time + 0.1)  # the longest half-window, 0.1 s to spare
            self._clock = max(self._clock, item.end)
            self._labels_until = max(self._labels_until, item.time)
        else:
            self._speech(item, now)
        return self._decide(now, final=False)

    def finish(self, ctx):
        return self._decide(time.monotonic(), final=True)

    def _speech(self, item, now: float) -> None:
        t0, hop = item.time, float(item.hop)
        for i, on in enumerate(np.asarray(item.speech, bool).tolist()):
            if not on:
                continue
            s = t0 + i * hop
            if self._runs and s - self._runs[-1][1] < 1e-6:
                self._runs[-1][1] = s + hop
            else:
                self._runs.append([s, s + hop])
        end = t0 + len(item.speech) * hop
        self._speech_until = max(self._speech_until, end)
        self._clock = max(self._clock, end)
        origin = now - end  # when media time 0 was live, as seen from here (the earliest is the best guess)
        self._origin = origin if self._origin is None else min(self._origin, origin)

    def _evidence(self, ev: SyncEvidence) -> None:
        if self._scale is None:
            self._scale, self._frame_s = ev.scale, abs(float(ev.frame_s)) or 0.04
        for fr in self._pending:
            if fr["index"] == ev.frame_index:
                if self._known(fr["time"]):  # pooled now: the frames after a due one count for it
                    self._add(self._pure_voice(fr["time"]), ev)
                else:
                    fr["evidence"].append(ev)
                return
        for idx, voice in self._decided:  # the frame was decided before its evidence came
            if idx == ev.frame_index:
                self._add(voice, ev)
                return

    def _known(self, t: float) -> bool:
        """Whether the voice at ``t`` is known already: the speech and every window that may hold
        ``t`` are in."""
        return self._speech_until >= t + self.config.min_pause and self._labels_until >= t + self._reach

    def _pure_voice(self, t: float) -> str | None:
        """The voice at ``t`` if every window holding ``t`` has it: only such frames are pooled, so
        that the frames around a change of voice, where windows hold both voices, do not lend one
        voice's lips to the other."""
        if self._in_speech(t) != "speech":
            return None
        voices = {w.voice for w in self._labels if w.start <= t < w.end}
        return voices.pop() if len(voices) == 1 else None

    def _add(self, voice: str | None, ev: SyncEvidence) -> None:
        if voice is not None:
            self._pool.add(voice, ev.track_id, ev.offsets, ev.values)
            self._dirty = True

    # -- deciding ---------------------------------------------------------------------------
    def _due(self, t: float, now: float) -> bool:
        c = self.config
        if self._clock >= t + c.latency:
            return True
        return c.wall_clock and self._origin is not None and now >= self._origin + t + c.latency - c.margin

    def _decide(self, now: float, final: bool):
        active = []
        while self._pending and (final or self._due(self._pending[0]["time"], now)):
            fr = self._pending.popleft()
            active.append(self._decide_frame(fr, now))
        self._prune()
        out = {}
        if active:
            out["active"] = active
        summary = self._summary(final)
        if summary is not None:
            out["voices"] = summary
        return out or None

    def _decide_frame(self, fr: dict, now: float) -> Record:
        t = fr["time"]
        voice = self._voice_at(t)
        pure = self._pure_voice(t)
        for ev in fr["evidence"]:
            self._add(pure, ev)
        self._decided.append((fr["index"], pure))
        faces = self._assignment()
        pairing = faces.get(voice) if voice is not None else None
        face = pairing["speaker"] if pairing else None
        if voice is not None:
            self._first.setdefault(voice, t)
        if voice is not None and self._scored and self._early(voice):
            held = self._held(voice, faces) if t - self._first[voice] > self.config.early_span else set()
            face = self._by_voice_scores(voice, fr, held) or face
        if voice is not None:
            self._add_scores(self._voice_scores.setdefault(voice, {}), fr)
        speaker = face if face in fr["tracks"] else None
        if voice is not None:
            self._speech_s[voice] = self._speech_s.get(voice, 0.0) + self._frame_s
        evidence = pairing["evidence"] if pairing else {}
        delay = round(now - (self._origin + t), 3) if self._origin is not None else None
        return Record(pts=fr["pts"], time_base=fr["tb"], data={
            "frame_index": fr["index"], "time": t, "active": speaker, "voice": voice,
            "scores": {tid: evidence.get(tid) for tid in fr["tracks"]},
            "confidence": pairing["confidence"] if pairing and speaker else None,
            "delay": delay if delay is not None and delay >= 0 else None,
            "lag": round(float(self._clock - t), 3) if np.isfinite(self._clock) else 0.0})

    def _early(self, voice: str) -> bool:
        """Whether ``voice`` has less than ``early`` seconds of evidence with any face (after that,
        a voice without a face is off screen, not undecided)."""
        frames = max((self._pool.pooled(voice, tid).frames for tid in self._seen), default=0)
        return frames * self._frame_s < self.config.early

    def _add_scores(self, sums: dict[str, list], fr: dict) -> None:
        for tid, value in self._scores.get(fr["index"], {}).items():
            acc = sums.setdefault(tid, [0.0, 0])
            acc[0] += value
            acc[1] += 1

    @staticmethod
    def _held(voice: str, faces: dict[str, dict]) -> set[str]:
        """The faces the pairing gives to voices other than ``voice``."""
        return {f["speaker"] for v, f in faces.items() if v != voice and f["speaker"] is not None}

    def _by_voice_scores(self, voice: str, fr: dict, exclude: set[str] = frozenset()) -> str | None:
        """The visible track whose scores, averaged over the frames of ``voice`` so far (those
        decided, ``fr``, and those ahead whose voice is known already), are highest and above
        ``early_threshold`` (None: none is). A mean over the voice's frames, not over a few frames
        around ``fr``: two faces whose lips both move take turns at the top frame by frame."""
        sums = {tid: list(acc) for tid, acc in self._voice_scores.get(voice, {}).items()}
        self._add_scores(sums, fr)
        for ahead in self._pending:
            if not self._known(ahead["time"]):
                break
            if self._voice_at(ahead["time"]) == voice:
                self._add_scores(sums, ahead)
        c = self.config
        threshold = c.early_threshold if c.early_threshold is not None else self._score_threshold / 2
        best = (threshold, None)
        for tid in fr["tracks"]:
            if tid in exclude:
                continue
            total, n = sums.get(tid, (0.0, 0))
            if n and total / n > best[0]:
                best = (total / n, tid)
        return best[1]

    def _in_speech(self, t: float) -> str:
        """'speech', 'pause' (a pause shorter than min_pause between runs) or 'silence' at ``t``."""
        before = after = None
        for s, e in self._runs:
            if s <= t < e:
                return "speech"
            if e <= t:
                before = e
            elif s > t and after is None:
                after = s
        if before is not None and after is not None and after - before < self.config.min_pause:
            return "pause"
        return "silence"

    def _voice_of(self, t: float) -> str | None:
        """The voice of the window most similar to its voice (``label_by``) or centred nearest
        ``t`` among those holding it; speech no window holds (a burst too short for one) takes the
        nearest window's within ``_BURST`` s, as ``voice.cluster`` gives it the nearest window's."""
        holding = [w for w in self._labels if w.start <= t < w.end]
        if self.config.label_by == "similarity" and any(w.voice is not None for w in holding):
            return max((w for w in holding if w.voice is not None), key=lambda w: w.similarity).voice
        near = holding or [w for w in self._labels if abs(w.time - t) < _BURST]
        return min(near, key=lambda w: abs(w.time - t)).voice if near else None

    def _voice_at(self, t: float) -> str | None:
        where = self._in_speech(t)
        if where == "silence":
            return None
        if where == "speech":
            return self._voice_of(t)
        # a short pause: the voice goes on if the speech on both sides is the same voice's
        before = max((e for s, e in self._runs if e <= t), default=None)
        after = min((s for s, e in self._runs if s > t), default=None)
        a = self._voice_of(before - 1e-3) if before is not None else None
        b = self._voice_of(after + 1e-3) if after is not None else None
        return a if a is not None and a == b else None

    def _assignment(self) -> dict[str, dict]:
        if not self._dirty:
            return self._faces
        c = self.config
        threshold = self._threshold()
        voices = sorted(self._pool.keys(), key=_voice_key)
        tracks = sorted(self._seen)
        conf = np.zeros((len(voices), len(tracks)))
        weight = np.zeros(len(voices))
        pooled, read_at = {}, {}
        for i, v in enumerate(voices):
            for j, tid in enumerate(tracks):
                p = self._pool.pooled(v, tid)
                pooled[v, tid] = p
                value, read_at[v, tid] = self._confidence(p)
                conf[i, j] = value if p.frames >= c.min_frames else 0.0
                weight[i] = max(weight[i], p.frames)
        held = conf.copy()  # the current pairings get a head start of `stay`
        for i, v in enumerate(voices):
            current = self._faces.get(v, {}).get("speaker")
            if current in tracks and held[i, tracks.index(current)] > 0:
                held[i, tracks.index(current)] += c.stay
        if c.weigh_until is not None:
            weight = np.minimum(weight, max(c.weigh_until / self._frame_s, 1.0))
        chosen = assign_faces(held, threshold, weight) if len(voices) else []
        faces = {}
        for i, v in enumerate(voices):
            j = chosen[i]
            at = read_at[v, tracks[j]] if j is not None else None
            faces[v] = {"speaker": tracks[j] if j is not None else None,
                        "confidence": round(float(conf[i, j] if j is not None else (conf[i].max() if len(tracks) else 0.0)), 4),
                        "offset": round(at * self._frame_s, 3) if at is not None else None,
                        "evidence": {tid: round(float(conf[i, k]), 4) for k, tid in enumerate(tracks)}}
        self._faces, self._dirty = faces, False
        settled = [(pooled[v, f["speaker"]].frames, read_at[v, f["speaker"]]) for v, f in faces.items()
                   if f["speaker"] is not None and pooled[v, f["speaker"]].frames >= _SETTLED]
        if settled:  # the stream's A/V offset, from its best-established pairing (where it was read)
            self._av_offset = max(settled)[1] * self._frame_s
        return faces

    def _confidence(self, p) -> tuple[float, int | None]:
        """The pooled curve's peak near the stream's A/V offset (``near``) minus its median; past
        ``search_after`` seconds of evidence, the peak over every offset less ``offset_penalty``,
        as ``sync.assign`` seeks it (a face whose audio is late by an offset of its own). Also the
        offset (frames) the peak was read at, which the voice's summary reports (None: no curve)."""
        c = self.config
        near = c.near
        if p.curve.size == 0:
            return 0.0, None
        if near is None or p.curve.size < 3:
            return p.confidence, p.offset
        if c.search_after is not None and p.frames * self._frame_s >= c.search_after:
            penalty = c.offset_penalty * self._frame_s
            return p.confidence_at(None, penalty), p.offset_with(penalty)
        return p.peak_near(self._av_offset / self._frame_s, near / self._frame_s)

    def _threshold(self) -> float:
        c = self.config
        return c.threshold if c.threshold is not None else THRESHOLDS.get(self._scale or "motion", 0.08)

    def _summary(self, final: bool) -> Record | None:
        current = {v: f["speaker"] for v, f in self._faces.items()}
        if not final and current == self._reported:
            return None
        self._reported = current
        voices = sorted(set(self._faces) | set(self._speech_s), key=_voice_key)
        listed = [{"id": v, "speech": round(self._speech_s.get(v, 0.0), 3), **{
            k: self._faces.get(v, {}).get(k) for k in ("speaker", "confidence", "offset")},
            "evidence": self._faces.get(v, {}).get("evidence", {})} for v in voices]
        return Record(pts=0, time_base=Fraction(1), data={"voices": listed, "turns": [], "overlaps": [],
                                                          "speech": [], "threshold": self._threshold()})

    def _prune(self) -> None:
        """Keep a few seconds of speech and labels behind the oldest undecided frame; forget faces
        unseen for ``forget`` seconds."""
        oldest = self._pending[0]["time"] if self._pending else self._clock
        if not np.isfinite(oldest):
            return
        keep = oldest - _HISTORY
        while self._runs and self._runs[0][1] < keep:
            self._runs.popleft()
        while self._labels and self._labels[0].end < keep:
            self._labels.popleft()
        if self._scores:  # bounded: the scores of the frames not yet decided
            first = self._pending[0]["index"] if self._pending else (self._decided[-1][0] + 1 if self._decided else 0)
            for i in [i for i in self._scores if i < first]:
                del self._scores[i]
        gone = [tid for tid, t in self._seen.items() if t < self._clock - self.config.forget]
        for tid in gone:
            del self._seen[tid]
            self._pool.drop_track(tid)
            for sums in self._voice_scores.values():
                sums.pop(tid, None)
            self._dirty = True


def _voice_key(vid: str) -> tuple:
    head, _, num = str(vid).rpartition("_")
    return (head, int(num)) if num.isdigit() else (str(vid), -1)
