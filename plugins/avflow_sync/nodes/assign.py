"""``sync.assign``: each voice given to the face whose lips follow it; who speaks in every frame."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import Node, Payload, Port, Record, Score, TrackedFaces, param

from ..assign import EvidencePool, assign_faces
from ..decision import decide_sequence
from ..payloads import SyncEvidence
from ..smoothing import smooth_sequence
from .speaker import DEFAULT_THRESHOLD


@dataclass(frozen=True)
class AssignConfig:
    threshold: float | None = param(None, "confidence a face needs to be given a voice (peak minus median "
                                          "of the pooled sync curve); null: the scorer's own (sync.motion "
                                          "0.08, sync.syncnet 0.05)")
    min_frames: int = param(20, "frames of evidence a face needs with a voice to be a candidate (a track that "
                                "shows for a few frames peaks high by chance)", min=1)
    split_min: float = param(1.5, "seconds of speech a part of a voice (voice.cluster's finer groups) needs "
                                  "for its lips to split it from the voice (two similar voices merged)", min=0.0)
    split_margin: float = param(0.1, "how much more confident such a part must be of its face than of the "
                                      "voice's own", min=0.0)
    lip_split: float | None = param(0.1, "two similar voices the audio merged: a voice given one face whose lips "
                                          "another face's also follow, at that face's own offset, is cut in time "
                                          "between the two by a Viterbi pass over their per-frame evidence, a "
                                          "change costing this much (evidence x seconds; null: never)", min=0.0)
    lip_candidate: float = param(0.04, "lip_split: the other face's confidence for the voice must exceed this "
                                       "(a voice of two people has half a peak at each face)", min=0.0)
    lip_min: float = param(4.0, "lip_split: seconds of speech the stretches cut off need in all (the lips' "
                                "evidence is weak on a few seconds)", min=0.0)
    lip_min_turn: float = param(1.0, "lip_split: shortest stretch (s) given to the other face", min=0.0)
    offset_penalty: float = param(0.15, "where a face's A/V offset is searched (not fixed by face_offset), the "
                                        "confidence at each offset is lowered by this much per second of offset: "
                                        "a voice of a few seconds peaks by chance anywhere in the +-0.6 s search, "
                                        "real offsets are mostly small", min=0.0)
    penalty_full: float | None = param(4.0, "offset_penalty applies in full up to this many seconds of evidence and "
                                            "falls in proportion beyond (a long voice's chance peaks are low; a late "
                                            "face's real one, 0.3 s out, is not to be paid for as a short voice's "
                                            "chance peak is; null: in full always)", min=0.1)
    pair_weight: bool = param(True, "weigh each (voice, face) confidence by the frames that pair has (a face seen "
                                     "for a second of a voice's speech does not outweigh one seen throughout)")
    min_pause: float | None = param(0.3, "pauses shorter than this (s) inside one voice's turn stay in the turn: "
                                         "the speech activity's longer pauses are silence in every frame's "
                                         "decision (voice.cluster builds its turns, and the evidence is pooled, "
                                         "with its own bridging), shorter gaps between two stretches of one "
                                         "voice are that voice's; null: voice.cluster's turns as they are",
                                    min=0.0)
    merge_offset: int = param(1, "a voice without a face joins the voice of the face its lips follow when "
                                 "its A/V offset there is within this many frames of that voice's", min=0)
    merge_ratio: float = param(0.5, "and when its confidence there is at least this fraction of that voice's own "
                                     "(one person's two voices follow the same lips about equally; a voice heard "
                                     "off screen agrees with a face's moving lips by chance, less)", min=0.0)
    face_offset: bool = param(True, "fix a face's A/V offset from the voice it is first given, then read every "
                                    "voice's confidence for that face at it (false: searched per voice)")
    offset_min: float = param(3.0, "seconds of evidence the first voice needs for its offset to fix its face's",
                              min=0.0)
    short_speech: float = param(3.0, "with less speech than this (s) in all, voices cannot be told apart (an "
                                     "embedding window is 1.6 s): each frame of speech goes to the face whose "
                                     "smoothed score is highest, as decision=frame decides (needs the scores input)",
                                min=0.0)
    short_window: int = param(9, "with short input: frames of the moving mean of the scores", min=1)
    short_min_turn: int = param(8, "with short input: shortest turn in frames", min=1)
    plot_window: int = param(25, "frames of the moving mean of the per-track curves (as plotted)", min=1)


#: default thresholds by evidence scale (SyncEvidence.scale): motion chosen on the tuning split of
#: avflow.testing.compose.diarization_suite; syncnet a guess (no real weights here to measure it)
THRESHOLDS = {"motion": 0.08, "syncnet": 0.05}


class VoiceAssigner(Node):
    """Give each voice to the face whose lips follow it, then decide every frame from the voices.

    Evidence (``SyncEvidence`` from ``sync.motion`` or ``sync.syncnet``) is pooled per voice and
    face over the frames where the voice speaks and the face is visible (:mod:`avflow_sync.assign`):
    a synchrony curve over audio offsets whose peak minus median is the confidence, and whose
    peak is the face's A/V offset. Voices and faces are paired one to one
    (``linear_sum_assignment``, each pairing weighted by its frames of evidence, so that a few
    seconds with a lucky peak do not take a face from a voice heard for minutes, nor a face seen
    for a moment from one seen throughout: ``pair_weight``); a voice whose best face is not above
    ``threshold`` has no visible face (an off-screen voice). A face given a voice with
    ``offset_min`` seconds of evidence keeps that voice's A/V offset (``face_offset``): the pairing
    is done again with every voice's confidence for that face read at it, not searched anew, so
    that a short voice cannot take a face through a chance peak elsewhere in the search; where a
    face's offset is still searched, each offset's confidence is lowered by ``offset_penalty`` per
    second of offset (two short voices were swapped between their faces by peaks 0.4 s out), in
    full up to ``penalty_full`` seconds of evidence and less beyond (a long voice's chance peaks
    are low; two faces 0.3 s late lost their voices of 10 s to the penalty). Two
    similar voices the audio merged are split next, two ways: a voice whose parts
    (``voice.cluster``'s finer groups of windows) point clearly at another face than its own (at
    least ``split_min`` seconds of speech, ``split_margin`` more confident) is split; and a voice
    whose lips evidence also peaks at another face, at that face's own offset, is cut in time
    between the two faces by their per-frame evidence (``lip_split``: a Viterbi pass, each change
    costing ``lip_split``, no stretch shorter than ``lip_min_turn``), kept only where the voice's
    own face does not follow the stretches cut off (below ``threshold``) and the other face does
    (``split_margin`` more). Then a voice left without a face whose lips peak at another voice's
    face, at that voice's A/V offset (within ``merge_offset`` frames) and with at least
    ``merge_ratio`` of that voice's confidence, joins it: one person the audio cut in two (an
    overlap), whose two voices follow the same lips about equally; a voice heard off screen while
    the face's lips move agrees with them by chance, far less. Every frame's speaker is then the
    face of the voice heard in it, when that face is visible (null otherwise: silence, an
    off-screen voice, or the face gone from view); the speech activity's pauses of ``min_pause``
    or longer are silence, inside a turn too (the turns, built for the voices, bridge more).

    Input with less than ``short_speech`` seconds of speech in all (a clip of a second or two)
    holds too little for voices to be told apart: there each frame of speech goes to the face
    whose ``scores`` (smoothed over ``short_window`` frames) are highest, as ``decision=frame``
    would pick it, and ``data["warnings"]`` says so.

    Ports:
      - in ``evidence`` (SyncEvidence): per track per frame, at every offset.
      - in ``voices`` (Payload): ``voice.cluster``'s ``VoiceTurns`` (``turns``, ``voices``, ``speech``).
      - in ``tracks`` (TrackedFaces): every frame (the frame clock) and who is visible in it.
      - in ``scores`` (Score, optional): per track per frame (``sync.motion``, ``sync.syncnet``); used
        only for short input, see above.
      - out ``active`` (Record): per frame, as ``sync.speaker``'s: ``frame_index``, ``time``, ``active``
        (track id or null), ``voice`` (voice id or null), ``scores`` (per-track curve, as plotted).
      - out ``voices`` (Record): ``data["voices"]``: per voice ``id``, ``speech`` (s), ``speaker``
        (track id or null), ``confidence``, ``offset`` (s, positive: the sound comes late),
        ``evidence`` ({track id: confidence}); ``data["turns"]``, ``data["overlaps"]``,
        ``data["threshold"]``, ``data["warnings"]``.

    Everything is decided when the voices arrive (at the end of the audio): the node holds the
    evidence of every frame (K floats per track per frame, ~1 MB per minute for three faces).

    .. code-block:: yaml

        assign:
          type: sync.assign
          inputs: {evidence: motion.evidence, voices: voices.voices, tracks: track.tracks,
                   scores: motion.scores}
    """

    type = "sync.assign"
    Config = AssignConfig
    inputs = {"evidence": Port(SyncEvidence, "lip/audio agreement per track per frame and offset"),
              "voices": Port(Payload, "voice turns (voice.cluster)"),
              "tracks": Port(TrackedFaces, "every frame's face tracks"),
              "scores": Port(Score, "per-frame sync scores (sync.motion, sync.syncnet): the decision for input "
                                    "with too little speech for voices", optional=True)}
    outputs = {"active": Port(Record, "per frame: the speaking track id (or null) and the voice"),
               "voices": Port(Record, "each voice, its face and the evidence for it")}
    queue_size = 256

    def open(self, ctx):
        self._frames: list[tuple[int, int, Fraction, list[str]]] = []  # index, pts, time_base, tracks
        self._evidence: dict[int, list[SyncEvidence]] = {}
        self._voices = None
        self._scale: str | None = None
        self._offset_of: dict[str, int] = {}  # faces whose A/V offset is fixed (finish)
        self._scores: dict[str, dict[int, float | None]] = {}
        self._score_threshold: float | None = None

    def process(self, port, item, ctx):
        if port == "tracks":
            self._frames.append((item.frame_index, item.pts, Fraction(item.time_base),
                                 [f.track_id for f in item.faces]))
        elif port == "scores":
            self._scores.setdefault(item.track_id, {})[item.frame_index] = item.value
            if self._score_threshold is None and item.extra.get("threshold") is not None:
                self._score_threshold = float(item.extra["threshold"])
        elif port == "evidence":
            self._evidence.setdefault(item.frame_index, []).append(item)
            if self._scale is None:
                self._scale = item.scale
        else:
            self._voices = item
        return None

    def finish(self, ctx):
        c = self.config
        frames = sorted(self._frames)
        times = [float(pts * tb) for _, pts, tb, _ in frames]
        v = self._voices
        turns = [dict(t) for t in (getattr(v, "turns", None) or [])]
        speech = list(getattr(v, "speech", None) or [])
        threshold = c.threshold if c.threshold is not None else THRESHOLDS.get(self._scale or "motion", 0.08)
        voice_ids = [x["id"] for x in (getattr(v, "voices", None) or [])]
        tracks = sorted({t for *_, ids in frames for t in ids})
        frame_turns = self._frame_turns(times, turns)  # fixed; a split or merge relabels the turns

        def assign(ids):
            pool = self._pool(frames, frame_turns, turns)
            return pool, self._assign(pool, ids, tracks, threshold)

        pool, result = assign(voice_ids)
        if c.face_offset:
            self._offset_of = self._face_offsets(result)
            pool, result = assign(voice_ids)
        split = self._split(pool, result, turns, voice_ids, tracks, threshold)
        if split:
            voice_ids = voice_ids + split
            pool, result = assign(voice_ids)
        if c.lip_split is not None:
            cut = self._lip_split(pool, result, turns, frames, times, voice_ids, tracks, threshold)
            if cut:
                voice_ids = voice_ids + cut
                frame_turns = self._frame_turns(times, turns)
                pool, result = assign(voice_ids)
        merged = self._merge(pool, result, turns, voice_ids, tracks, threshold)
        if merged:
            voice_ids = [vid for vid in voice_ids if vid not in merged]
            pool, result = assign(voice_ids)
        frame_voice = [turns[i]["voice"] if i is not None else None for i in frame_turns]
        if c.min_pause is not None:
            frame_voice = self._pauses(times, frame_voice, speech, c.min_pause)
        face_of = {vid: info["speaker"] for vid, info in result["voices"].items()}
        offsets = {info["speaker"]: info["offset_frames"] for info in result["voices"].values() if info["speaker"]}
        curves = self._curves(frames, offsets)
        frame_face = [face_of.get(vid) if vid is not None else None for vid in frame_voice]
        warnings = []
        heard = sum(t.get("speech", t["end"] - t["start"]) for t in turns)
        if 0 < heard < c.short_speech and tracks:
            if self._scores:
                frame_face = self._by_scores(frames, frame_voice)
                warnings.append(f"only {heard:.1f} s of speech: too little to tell voices apart, so each frame's "
                                f"speaker is the face whose lips follow the audio best there")
            else:
                warnings.append(f"only {heard:.1f} s of speech: too little to tell voices apart (connect "
                                f"sync.assign's scores input to decide such input frame by frame)")
        records = []
        for (idx, pts, tb, ids), t, vid, face in zip(frames, times, frame_voice, frame_face):
            active = face if face in ids else None
            records.append(Record(pts=pts, time_base=tb, data={
                "frame_index": idx, "time": t, "active": active, "voice": vid,
                "scores": {tid: curves.get((tid, idx)) for tid in ids}}))
        voices_out = []
        for vid in voice_ids:
            info = result["voices"].get(vid)
            if info is None:
                continue
            mine = [t for t in turns if t["voice"] == vid]
            voices_out.append({"id": vid, "speech": round(sum(t.get("speech", t["end"] - t["start"]) for t in mine), 3),
                               "turns": len(mine), "speaker": info["speaker"],
                               "confidence": info["confidence"], "offset": info["offset"],
                               "evidence": info["evidence"]})
            if info["speaker"] is None:
                ctx.logger.info("%s: no visible face follows it (best %s); an off-screen voice", vid,
                                max(info["evidence"].items(), key=lambda kv: kv[1], default=("none", 0.0))[0])
        summary = Record(pts=0, time_base=Fraction(1), data={
            "voices": voices_out, "turns": turns, "overlaps": list(getattr(v, "overlaps", None) or []),
            "speech": [list(s) for s in speech], "threshold": threshold, "warnings": warnings})
        return {"active": records, "voices": summary}

    @staticmethod
    def _pauses(times: list[float], frame_voice: list[str | None], speech, min_pause: float) -> list[str | None]:
        """Every frame's voice with the speech activity's pauses of ``min_pause`` or longer made
        silence (inside a voice's turn too), and shorter gaps between two stretches of one voice
        given to it."""
        out = list(frame_voice)
        runs = sorted((float(a), float(b)) for a, b in speech)
        gaps = [(b0, a1) for (_, b0), (a1, _) in zip(runs, runs[1:]) if a1 - b0 >= min_pause]
        starts = [g[0] for g in gaps]
        for k, t in enumerate(times):
            g = bisect_right(starts, t) - 1
            if out[k] is not None and g >= 0 and t < gaps[g][1] - 1e-9:
                out[k] = None
        # gaps shorter than min_pause between two stretches of one voice (not the pauses just cut);
        # a gap runs from the frame after the last voiced one to this one (any frame rate)
        last, last_k = None, -1
        for k, v in enumerate(out):
            if v is None:
                continue
            gap = times[k] - times[last_k + 1] if last_k >= 0 else 0.0
            if v == last and 1e-9 < gap < min_pause and all(frame_voice[j] is None for j in range(last_k + 1, k)):
                for j in range(last_k + 1, k):
                    out[j] = v
            last, last_k = v, k
        return out

    @staticmethod
    def _frame_turns(times: list[float], turns: list[dict]) -> list[int | None]:
        """Per frame, the index of the turn it lies in (None: nobody heard)."""
        starts = [t["start"] for t in turns]
        out: list[int | None] = []
        for t in times:
            i = bisect_right(starts, t + 1e-9) - 1
            out.append(i if i >= 0 and t < turns[i]["end"] - 1e-9 else None)
        return out

    def _pool(self, frames, frame_turns, turns) -> EvidencePool:
        """Evidence summed per voice and per part of a voice, for every track."""
        pool = EvidencePool()
        for (idx, *_), ti in zip(frames, frame_turns):
            if ti is None:
                continue
            turn = turns[ti]
            for ev in self._evidence.get(idx, []):
                pool.add(turn["voice"], ev.track_id, ev.offsets, ev.values)
                if turn.get("part"):
                    pool.add(("part", turn["part"]), ev.track_id, ev.offsets, ev.values)
        return pool

    def _confidences(self, pool: EvidencePool, key, tracks) -> tuple[np.ndarray, list]:
        c = self.config
        pooled = [pool.pooled(key, tid) for tid in tracks]
        conf = [p.confidence_at(self._offset_of.get(tid), self._penalty(p)) if p.frames >= c.min_frames else 0.0
                for p, tid in zip(pooled, tracks)]
        return np.array(conf), pooled

    def _penalty(self, pooled) -> float:
        """``offset_penalty`` per frame of offset for the evidence of ``pooled`` (see ``penalty_full``)."""
        c = self.config
        frame_s = self._frame_s()
        seconds = max(pooled.frames, 1) * frame_s
        scale = 1.0 if c.penalty_full is None else min(1.0, c.penalty_full / seconds)
        return c.offset_penalty * frame_s * scale

    def _offset(self, pooled, track: str) -> int:
        """The face's fixed A/V offset (frames), else the one searched with the offset penalty."""
        return self._offset_of.get(track, pooled.offset_with(self._penalty(pooled)))

    def _assign(self, pool: EvidencePool, voice_ids, tracks, threshold) -> dict:
        frame_s = self._frame_s()
        conf = np.zeros((len(voice_ids), len(tracks)))
        pooled = {}
        for i, vid in enumerate(voice_ids):
            conf[i], pooled[vid] = self._confidences(pool, vid, tracks)
        # each voice's say in the pairing: the frames of evidence it has (its speech while faces show)
        weight = np.array([max((p.frames for p in pooled[vid]), default=0) for vid in voice_ids], np.float64)
        pair = (np.array([[p.frames for p in pooled[vid]] for vid in voice_ids], np.float64)
                if self.config.pair_weight else None)
        chosen = assign_faces(conf, threshold, weight, pair)
        out = {}
        for i, vid in enumerate(voice_ids):
            j = chosen[i]
            best = pooled[vid][j] if j is not None else None
            off = self._offset(best, tracks[j]) if best else 0
            out[vid] = {
                "speaker": tracks[j] if j is not None else None,
                "confidence": round(float(conf[i, j] if j is not None else (conf[i].max() if len(tracks) else 0.0)), 4),
                "offset_frames": off,
                "frames": best.frames if best else 0,
                "offset": round(off * frame_s, 3) if best else None,
                "evidence": {t: round(float(conf[i, k]), 4) for k, t in enumerate(tracks)}}
        return {"voices": out}

    def _merge(self, pool, result, turns, voice_ids, tracks, threshold) -> set[str]:
        """One person the audio cut into two voices: a voice left without a face whose lips
        evidence peaks, above ``threshold``, at the face of another voice *and at that voice's
        A/V offset* (within ``merge_offset`` frames; chance peaks fall anywhere in the search)
        joins that voice."""
        c = self.config
        owner = {info["speaker"]: vid for vid, info in result["voices"].items() if info["speaker"]}
        merged: set[str] = set()
        for vid in voice_ids:
            if result["voices"][vid]["speaker"] is not None:
                continue
            conf, pooled = self._confidences(pool, vid, tracks)
            for j in np.argsort(-conf):
                face = tracks[int(j)]
                if conf[j] <= threshold:
                    break
                if face not in owner:
                    continue
                offset = self._offset(pooled[int(j)], face)
                theirs = result["voices"][owner[face]]
                if (abs(offset - theirs["offset_frames"]) <= c.merge_offset
                        and conf[j] >= c.merge_ratio * theirs["confidence"]):
                    for t in turns:
                        if t["voice"] == vid:
                            t["voice"] = owner[face]
                    merged.add(vid)
                break
        return merged

    def _split(self, pool, result, turns, voice_ids, tracks, threshold) -> list[str]:
        """Two similar voices merged: parts of a voice (``voice.cluster``'s finer groups) whose lips
        point clearly at another face than the voice's own become a voice of their own."""
        c = self.config
        if not tracks:
            return []
        seconds: dict[str, float] = {}
        for t in turns:
            if t.get("part"):
                seconds[t["part"]] = seconds.get(t["part"], 0.0) + t.get("speech", t["end"] - t["start"])
        used = [int(v.split("_")[1]) for v in voice_ids if v.split("_")[-1].isdigit()]
        next_id = max(used, default=-1) + 1
        new: list[str] = []
        for vid in voice_ids:
            own = result["voices"][vid]["speaker"]
            parts = sorted({t["part"] for t in turns if t["voice"] == vid and t.get("part")})
            if len(parts) < 2:
                continue
            groups: dict[str, list[str]] = {}
            for part in parts:
                conf, _ = self._confidences(pool, ("part", part), tracks)
                best = int(np.argmax(conf))
                own_conf = conf[tracks.index(own)] if own in tracks else 0.0
                if (tracks[best] != own and conf[best] > threshold and conf[best] - own_conf > c.split_margin
                        and seconds.get(part, 0.0) >= c.split_min):
                    groups.setdefault(tracks[best], []).append(part)
            for face, moved in groups.items():
                if len(moved) == len(parts):
                    continue  # all of the voice points elsewhere: the assignment, not a split
                nid = f"voice_{next_id}"
                next_id += 1
                for t in turns:
                    if t.get("part") in moved:
                        t["voice"] = nid
                new.append(nid)
        return new

    def _lip_split(self, pool, result, turns, frames, times, voice_ids, tracks, threshold) -> list[str]:
        """Two similar voices merged, told apart in time by the lips: a voice given face A whose
        pooled evidence also peaks (above ``lip_candidate``) at another face B, at B's own offset,
        is cut where B's lips follow it better than A's (both read at their own offsets; a Viterbi
        pass over the two faces' per-frame evidence, ``lip_split`` per change, stretches of at
        least ``lip_min_turn``). B's stretches become a voice of their own when they hold
        ``lip_min`` seconds, A does not follow them (pooled there, at most ``threshold``) and B
        does, ``split_margin`` more; the rest, ``split_min`` seconds or more, stays A's. ``turns``
        is edited in place (turns are cut where the voice changes); returns the new voices."""
        c = self.config
        frame_s = self._frame_s()
        used = [int(v.split("_")[1]) for v in voice_ids if v.split("_")[-1].isdigit()]
        next_id = max(used, default=-1) + 1
        new: list[str] = []
        frame_turns = self._frame_turns(times, turns)  # again after each cut, which renumbers turns
        for vid in list(voice_ids):
            face = result["voices"][vid]["speaker"]
            if face is None:
                continue
            # the other face: the most evidence (confidence x frames) at its own offset, read there
            # without the offset penalty (half a peak, at an offset of its own, is what is sought)
            best = (0.0, None, 0)
            for tid in tracks:
                p = pool.pooled(vid, tid)
                if tid == face or p.frames < c.min_frames:
                    continue
                off = self._offset(p, tid)
                conf = p.confidence_at(off)
                if conf > c.lip_candidate and conf * p.frames > best[0]:
                    best = (conf * p.frames, tid, off)
            if best[1] is None:
                continue
            other = best[1]
            offsets = {face: result["voices"][vid]["offset_frames"], other: best[2]}
            rows = [k for k, ti in enumerate(frame_turns) if ti is not None and turns[ti]["voice"] == vid]
            per_frame = []
            for k in rows:
                d = {tid: self._value_at(frames[k][0], tid, off) for tid, off in offsets.items()}
                # where either face is out of view the lips cannot tell the two apart
                per_frame.append(d if None not in d.values() else dict.fromkeys(d, 0.0))
            # "nobody" (worth -1e3 a frame) never wins: the voice is heard in every one of these frames
            labels = decide_sequence(per_frame, -1e3, method="viterbi", switch_cost=c.lip_split, pause_cost=c.lip_split,
                                     delay=len(rows) + 1, frame_s=frame_s,
                                     min_turn=max(1, round(c.lip_min_turn / frame_s)))
            moved = [k for k, lab in zip(rows, labels) if lab == other]
            if len(moved) * frame_s < c.lip_min or (len(rows) - len(moved)) * frame_s < c.split_min:
                continue
            # the test of the cut, over each side's frames pooled: where the other face took over,
            # the voice's own face must not follow it (below threshold) and the other must, clearly
            sides = EvidencePool()
            moved_set = set(moved)
            for k in rows:
                for ev in self._evidence.get(frames[k][0], []):
                    if ev.track_id in offsets:
                        sides.add(k in moved_set, ev.track_id, ev.offsets, ev.values)
            own_there = sides.pooled(True, face).confidence_at(offsets[face])
            other_there = sides.pooled(True, other).confidence_at(offsets[other])
            if own_there > threshold or other_there - own_there <= c.split_margin:
                continue
            nid = f"voice_{next_id}"
            next_id += 1
            self._cut_turns(turns, frames, frame_turns, moved_set, vid, nid)
            frame_turns = self._frame_turns(times, turns)
            new.append(nid)
        return new

    def _value_at(self, frame_index: int, track: str, offset: int) -> float | None:
        """``track``'s evidence in frame ``frame_index`` at ``offset`` (None: none there)."""
        for ev in self._evidence.get(frame_index, []):
            if ev.track_id == track:
                return ev.value_at(offset)
        return None

    @staticmethod
    def _cut_turns(turns, frames, frame_turns, moved: set[int], vid: str, nid: str) -> None:
        """Cut ``vid``'s turns where frames (rows of ``frames``) in ``moved`` begin or end; those
        stretches become ``nid``'s."""
        out = []
        by_turn: dict[int, list[int]] = {}
        for k, ti in enumerate(frame_turns):
            if ti is not None and turns[ti]["voice"] == vid:
                by_turn.setdefault(ti, []).append(k)
        for ti, turn in enumerate(turns):
            rows = by_turn.get(ti)
            if not rows:
                out.append(turn)
                continue
            pieces, start, label = [], turn["start"], rows[0] in moved
            for k in rows[1:]:
                if (k in moved) != label:
                    at = float(frames[k][1] * frames[k][2])
                    pieces.append((start, at, label))
                    start, label = at, k in moved
            pieces.append((start, turn["end"], label))
            length = max(turn["end"] - turn["start"], 1e-9)
            for a, b, is_new in pieces:
                piece = dict(turn, start=a, end=b, voice=nid if is_new else vid)
                if "speech" in turn:
                    piece["speech"] = turn["speech"] * (b - a) / length
                if is_new:
                    piece.pop("part", None)  # the voice.cluster part it came from is the old voice's
                out.append(piece)
        turns[:] = out

    def _by_scores(self, frames, frame_voice) -> list[str | None]:
        """Per frame, the speaker as ``sync.speaker`` picks it from the scores smoothed over
        ``short_window`` frames (hysteresis at the scorer's threshold, ``short_min_turn``), nobody
        where no voice is heard."""
        c = self.config
        smoothed = {tid: smooth_sequence([by_frame.get(idx) for idx, *_ in frames], c.short_window)
                    for tid, by_frame in self._scores.items()}
        per_frame = [{tid: vals[i] for tid, vals in smoothed.items() if tid in ids and vals[i] is not None}
                     for i, (_, _, _, ids) in enumerate(frames)]
        # the scorer's own threshold (Score.extra), as sync.speaker takes it
        threshold = self._score_threshold if self._score_threshold is not None else DEFAULT_THRESHOLD
        silent = [vid is None for vid in frame_voice]
        labels = decide_sequence(per_frame, threshold, min_turn=c.short_min_turn, silent=silent)
        # the minimum turn may fill a short pause with the speaker before it: nobody speaks there
        return [None if mute else label for label, mute in zip(labels, silent)]

    def _face_offsets(self, result) -> dict[str, int]:
        """Faces whose A/V offset (frames) the first assignment fixed: those given a voice with
        ``offset_min`` seconds of evidence. A face's offset is a property of the recording, not of
        who is heard; searching it anew for each voice and part lets chance peaks, anywhere in
        the +-0.6 s search, decide short voices (a small voice took a silent face at 0.6 s)."""
        frame_s = self._frame_s()
        return {info["speaker"]: info["offset_frames"] for info in result["voices"].values()
                if info["speaker"] and info["frames"] * frame_s >= self.config.offset_min}

    def _frame_s(self) -> float:
        for evs in self._evidence.values():
            return abs(float(evs[0].frame_s))
        return 0.04

    def _curves(self, frames, offsets: dict[str, int]) -> dict[tuple[str, int], float | None]:
        """Per track and frame: the evidence at the track's offset, as a moving mean (plotted)."""
        w = self.config.plot_window
        series: dict[str, list[tuple[int, float]]] = {}
        for idx, *_ in frames:
            for ev in self._evidence.get(idx, []):
                off = offsets.get(ev.track_id)
                if off is None:
                    value = float(ev.values[int(np.argmin(np.abs(ev.offsets)))])
                else:
                    value = ev.value_at(off)
                    if value is None:
                        continue
                series.setdefault(ev.track_id, []).append((idx, value))
        out: dict[tuple[str, int], float | None] = {}
        for tid, pts in series.items():
            vals = np.array([v for _, v in pts])
            kernel = np.ones(w) / w
            smooth = np.convolve(vals, kernel, mode="same") / np.maximum(
                np.convolve(np.ones(len(vals)), kernel, mode="same"), 1e-9)
            out.update({(tid, idx): round(float(s), 4) for (idx, _), s in zip(pts, smooth)})
        return out
