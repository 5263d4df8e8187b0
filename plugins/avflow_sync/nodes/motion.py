"""``sync.motion``: audio-visual synchrony from lip landmarks and the audio, with no weights."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median

import numpy as np

from avflow import AudioChunk, Node, Port, Score, TrackedFaces, param

from ..motion_features import BANDS, N_SIGNALS, BandEnvelope, mouth_signals, window_sync
from ..payloads import SyncEvidence


# The "nobody speaks" threshold suited to this scale, on scores smoothed over ~9 frames;
# recommended to sync.speaker through Score.extra["threshold"].
SPEAKER_THRESHOLD = 0.2


@dataclass(frozen=True)
class MotionScorerConfig:
    window: float = param(1.5, "length (s) of each correlation window", min=0.2, max=10.0)
    edge: float = param(0.25, "how far (s) the one-sided windows reach past the frame", min=0.0, max=5.0)
    adaptive: bool = param(True, "per frame, use the centred, the ending or the starting window, whichever "
                                 "singles out one track most clearly (sharp speaker changes); false: centred")
    max_lag: float = param(0.08, "audio/video offsets (s) searched, both ways", min=0.0, max=1.0)
    min_motion: float = param(0.005, "floor of the mouth signals' standard deviation, in eye-distance units: "
                                     "a face that moves less scores near 0", min=0.0)
    agc: float = param(2.0, "length (s) of the audio level normalisation; 0: off", min=0.0, max=10.0)
    speech_db: float = param(30.0, "audio more than this many dB below the recent loud level is silence",
                             min=0.0, max=120.0)
    floor_db: float = param(-65.0, "audio below this level (dBFS) is always silence", max=0.0)
    bridge: float = param(0.2, "pauses shorter than this (s) still count as speech", min=0.0, max=5.0)
    level_decay: float = param(1.0, "how fast (dB/s) the reference loud level falls in quiet passages", min=0.0)
    evidence_offset: float = param(0.6, "evidence: audio offsets (s) searched both ways (syncnet_python "
                                        "searches +-15 frames)", min=0.0, max=2.0)


class _Signals:
    """The mouth signals of the frames the scorer holds, as one array ``(frames, tracks, S)`` (NaN:
    no landmarks), so that a window's are a slice rather than a loop over frames. Rows follow
    ``MotionScorer._frames``; columns are tracks, those no held frame shows dropped when the rows
    are compacted (live input meets new tracks for hours)."""

    def __init__(self):
        self.cols: dict[str, int] = {}
        self._data = np.full((64, 0, N_SIGNALS), np.nan)
        self._head = 0  # row of the oldest held frame
        self._rows = 0

    def append(self, tracks: list[tuple[str, np.ndarray | None]]) -> None:
        if self._head + self._rows == len(self._data) or any(tid not in self.cols for tid, _ in tracks):
            self._compact([tid for tid, _ in tracks])
        row = self._data[self._head + self._rows]
        row[:] = np.nan
        for tid, sig in tracks:
            if sig is not None:
                row[self.cols[tid]] = sig
        self._rows += 1

    def drop(self, n: int) -> None:
        """Forget the ``n`` oldest rows."""
        n = min(n, self._rows)
        self._head += n
        self._rows -= n

    def window(self, ids: list[str], lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` (counted from the oldest held) of the tracks ``ids``, in that order."""
        rows = self._data[self._head + lo: self._head + hi]
        cols = [self.cols.get(t) for t in ids]
        if None not in cols:
            return rows[:, cols]
        out = np.full((len(rows), len(ids), N_SIGNALS), np.nan)
        for k, c in enumerate(cols):
            if c is not None:
                out[:, k] = rows[:, c]
        return out

    def _compact(self, current: list[str]) -> None:
        """Rows moved to the start of a new array; columns kept for the tracks the held rows show
        and those of ``current`` (the frame being added)."""
        held = self._data[self._head: self._head + self._rows]
        seen = np.isfinite(held[..., 0]).any(axis=0)
        old = [tid for tid, c in sorted(self.cols.items(), key=lambda kv: kv[1]) if seen[c] or tid in current]
        new = [tid for tid in dict.fromkeys(current) if tid not in self.cols]
        data = np.full((max(64, 2 * (self._rows + 1)), len(old) + len(new), N_SIGNALS), np.nan)
        data[: self._rows, : len(old)] = held[:, [self.cols[t] for t in old]]
        self.cols = {tid: k for k, tid in enumerate(old + new)}
        self._data, self._head = data, 0


class MotionScorer(Node):
    """Score how well each face's lip motion is in sync with the audio (the default scorer).

    No model weights. For every tracked face with face-mesh landmarks, three mouth signals
    (lower-lip drop 1-14, jaw opening 168-152, inner-lip gap 13-14, each over the outer
    eye-corner distance) are paired with the audio envelope in a band (1.5-3 kHz, 0.8-1.5 kHz,
    3-6 kHz respectively; 10 ms hops averaged over each frame's interval, found from the
    timestamps; each band divided by its running mean over ``agc`` seconds). A frame's score is
    the normalised cross-correlation of each pair over ``window`` seconds, each pair at its best
    audio/video offset within ``max_lag``, averaged over the pairs. With ``adaptive`` the window
    is the centred one, the one ending ``edge`` after the frame or the one starting ``edge``
    before it, whichever singles out one track most clearly, so that a change of speaker does
    not blur over a whole window. The correlation is then multiplied by the speech activity
    around the frame: 1 in speech, 0 in silence (more than ``speech_db`` below the recent loud
    level, or below ``floor_db``); pauses shorter than ``bridge`` are bridged.

    What the values mean: in [-1, 1]. A speaker typically scores 0.3-0.8; a person whose lips
    move but not with this audio (someone else's turn, chewing, a smile) scores around 0, and so
    does a still face (motion below ``min_motion``); everybody scores 0 in silence. On the
    smoothed score (``sync.smooth``, ~9 frames) a threshold of 0.2 separates "a visible face
    speaks" from "nobody"; every score recommends it to ``sync.speaker`` as
    ``extra["threshold"]``.

    Audio of any rate and channel count is used as it comes (channels averaged, bands computed
    at the native rate, no resampling). Timestamps align audio and video, so any frame rate,
    variable ones included, works. Streaming: a frame's scores are emitted once the tracks and
    the audio reach ``window - edge + max_lag + agc / 2 + bridge / 2`` seconds (2.4 s by default)
    past it; the node holds the frames of twice that, and the audio hops of that plus 1 s.
    Cost: about 3 ms of CPU per frame for three faces with scores and evidence (numpy, one
    core; the 120 s benchmark input: 8.8 CPU s).

    Ports:
      - ``tracks`` (TrackedFaces): faces with ``landmarks`` (468 or 478 face-mesh points, pixels).
      - ``audio`` (AudioChunk): the soundtrack.
      - ``evidence`` (SyncEvidence, optional): per track per frame, the product of its mouth signals
        and the audio bands at every offset within ``evidence_offset``, each signal centred and
        scaled over ``window`` seconds around the frame (its motion floored at ``min_motion``), so
        that their mean over a voice's frames is that voice's correlation with the lips, at any
        face size; ``sync.assign`` pools it.
      - ``scores`` (Score): one per track per frame it appears in, ``value`` in [-1, 1], None where
        the track has no landmarks in that frame (or in fewer than half of the window's frames);
        ``extra``: ``sync`` (the correlation), ``lag`` (seconds the audio is shifted, positive:
        the sound comes after the picture), ``speech`` (the activity factor), ``threshold``
        (0.2, the recommended "nobody" threshold).

    Params: window (1.5 s), edge (0.25 s), adaptive (true), max_lag (0.08 s), min_motion
    (0.005), agc (2 s), speech_db (30), floor_db (-65), bridge (0.2 s), level_decay (1 dB/s).

    .. code-block:: yaml

        motion:
          type: sync.motion
          params: {window: 1.5, max_lag: 0.08}
          inputs: {tracks: landmarks.tracks, audio: decode.audio}
    """

    type = "sync.motion"
    Config = MotionScorerConfig
    inputs = {"tracks": Port(TrackedFaces, "tracked faces with face-mesh landmarks"),
              "audio": Port(AudioChunk, "the audio, any rate and channel count")}
    outputs = {"scores": Port(Score, "sync score per track per frame, in [-1, 1] (None: no landmarks)"),
               "evidence": Port(SyncEvidence, "lip/audio agreement per track per frame at every audio offset")}
    queue_size = 128

    def open(self, ctx) -> None:
        self._want_scores = "scores" in ctx.connected_outputs
        self._want_evidence = "evidence" in ctx.connected_outputs
        self._frames: list[dict] = []  # frames still needed, in order
        self._signals = _Signals()  # their mouth signals, one row per frame
        self._base = 0  # absolute position of _frames[0]
        self._emitted = 0  # absolute position of the next frame to score
        self._audio_done = 0  # absolute position of the next frame without final audio features
        self._env: BandEnvelope | None = None
        self._hop_cursor = 0
        self._peak = -math.inf
        self._intervals: list[float] = []
        self._step: float | None = None

    # -- input ------------------------------------------------------------------------------
    def process(self, port, item, ctx):
        if port == "audio":
            self._push_audio(item)
        else:
            self._push_frame(item)
        self._settle_audio(final=False)
        return self._emit(final=False)

    def finish(self, ctx):
        if self._env is None and self._frames:
            ctx.logger.warning("sync.motion: no audio arrived; every score is 0")
        self._settle_audio(final=True)
        return self._emit(final=True)

    def _push_audio(self, chunk: AudioChunk) -> None:
        samples = np.asarray(chunk.samples, dtype=np.float32)
        mono = samples.mean(axis=0) if samples.ndim == 2 else samples
        if self._env is None:
            self._env = BandEnvelope(chunk.sample_rate)
        elif chunk.sample_rate != self._env.sample_rate:
            raise ValueError(f"sync.motion: the audio sample rate changed from {self._env.sample_rate} "
                             f"to {chunk.sample_rate} Hz at {chunk.time:.3f} s")
        self._env.push(mono, int(round(chunk.time * chunk.sample_rate)))

    def _push_frame(self, item: TrackedFaces) -> None:
        if self._frames:
            step = item.time - self._frames[-1]["time"]
            if step > 0:
                self._intervals.append(step)
                del self._intervals[:-50]
        tracks = [(f.track_id, mouth_signals(f.landmarks)) for f in item.faces]
        # the signals themselves live in _signals; the frame keeps which tracks it shows and
        # which of them have landmarks there
        self._frames.append({"time": item.time, "pts": item.pts, "time_base": item.time_base,
                             "index": item.frame_index, "tracks": [(tid, sig is not None) for tid, sig in tracks],
                             "amp": None, "level": -math.inf, "peak": -math.inf})
        self._signals.append(tracks)

    # -- timing -------------------------------------------------------------------------------
    def _dt(self) -> float:
        """Frame interval (s): the median of recent ones, kept unless it changes by more than 2 %
        (window sizes in frames must not flicker between two roundings)."""
        if self._intervals:
            current = median(self._intervals)
            if self._step is None or abs(current - self._step) > 0.02 * self._step:
                self._step = current
        return self._step if self._step is not None else 0.04

    def _nframes(self, seconds: float) -> int:
        return int(math.floor(seconds / self._dt() + 0.5 - 1e-6))

    def _extents(self) -> dict[str, int]:
        cfg = self.config
        width = max(3, self._nframes(cfg.window))
        ext = {"width": width, "edge": min(width - 1, self._nframes(cfg.edge)), "lag": self._nframes(cfg.max_lag),
               "agc": self._nframes(cfg.agc / 2) if cfg.agc > 0 else 0, "bridge": self._nframes(cfg.bridge / 2)}
        side = width - ext["edge"] if cfg.adaptive else (width + 1) // 2
        ext["reach"] = side + ext["lag"] + ext["agc"] + ext["bridge"]
        ext["offset"] = self._nframes(cfg.evidence_offset)
        if self._want_evidence:
            ext["reach"] = max(ext["reach"], width // 2 + ext["offset"] + ext["agc"])
        return ext

    # -- audio features per frame ---------------------------------------------------------------
    def _settle_audio(self, final: bool) -> None:
        """Give each frame whose interval the audio now covers its band amplitudes and level."""
        env = self._env
        while self._audio_done < self._base + len(self._frames):
            pos = self._audio_done - self._base
            frame = self._frames[pos]
            if pos + 1 < len(self._frames):
                t1 = self._frames[pos + 1]["time"]
            elif final:
                t1 = frame["time"] + self._dt()
            else:
                return  # the frame's end is not known yet
            if not final and (env is None or env.covered_until < t1):
                return  # wait for the audio of this frame
            powers = None
            if env is not None and env.times and frame["time"] <= env.times[-1] + 0.05:
                powers, self._hop_cursor = env.frame_powers(frame["time"], t1, self._hop_cursor)
            if powers is not None:
                frame["amp"] = np.sqrt(np.maximum(powers[: len(BANDS)], 0.0))
                frame["level"] = 10.0 * math.log10(float(powers[len(BANDS)]) + 1e-12)
            else:  # no audio there: silence
                frame["amp"] = np.zeros(len(BANDS))
            self._peak = max(frame["level"], self._peak - self.config.level_decay * max(0.0, t1 - frame["time"]))
            frame["peak"] = self._peak
            self._audio_done += 1

    # -- scoring ------------------------------------------------------------------------------
    def _emit(self, final: bool):
        out: list[Score] = []
        evidence: list[SyncEvidence] = []
        ext = self._extents()
        while self._emitted < self._audio_done:
            if not final and self._emitted + ext["reach"] >= self._audio_done:
                break
            scores, ev = self._score_frame(self._emitted, ext)
            out.extend(scores)
            evidence.extend(ev)
            self._emitted += 1
        drop = self._emitted - ext["reach"] - 1 - self._base  # frames no later window needs
        if drop > 0:
            del self._frames[:drop]
            self._signals.drop(drop)
            self._base += drop
            if self._env is not None and self._frames:
                self._hop_cursor = max(0, self._hop_cursor - self._env.prune(self._frames[0]["time"] - 1.0))
        result = {}
        if out and self._want_scores:
            result["scores"] = out
        if evidence:
            result["evidence"] = evidence
        return result or None

    def _score_frame(self, pos: int, ext: dict[str, int]) -> tuple[list[Score], list[SyncEvidence]]:
        cfg = self.config
        frame = self._frames[pos - self._base]
        frame["_pos"] = pos
        ids = [tid for tid, _ in frame["tracks"]]
        if not ids:
            return [], []
        if not self._want_scores:
            # Evidence alone needs only the lips of the frames within its window (or its audio
            # offsets) and nothing of a frame whose faces have no landmarks.
            if not any(has for _, has in frame["tracks"]):
                return [], []
            side = max(ext["width"] // 2, ext["offset"])
            lo, hi = max(self._base, pos - side), min(self._audio_done, pos + side + 1)
            visual = self._visual(ids, lo, hi)
            return [], self._evidence(frame, visual, len(BANDS), pos - lo, ext)
        lo = max(self._base, pos - ext["reach"])
        hi = min(self._audio_done, pos + ext["reach"] + 1)
        local = self._frames[lo - self._base: hi - self._base]
        n, c = len(local), pos - lo
        col = {tid: k for k, tid in enumerate(ids)}
        visual = self._visual(ids, lo, hi)
        amp = np.stack([fr["amp"] for fr in local])  # (n, S)
        level = np.array([fr["level"] for fr in local])
        ref = max(frame["peak"], float(np.max(level[c:])))
        threshold = max(ref - cfg.speech_db, cfg.floor_db)
        if ext["agc"] > 0:
            # Divide each band by its local mean, floored at the silence level so that pauses
            # stay quiet instead of being raised to the level of speech.
            a = ext["agc"]
            kernel = np.ones(2 * a + 1) / (2 * a + 1)
            padded = np.pad(amp, ((a, a), (0, 0)), mode="edge")
            mean = np.stack([np.convolve(padded[:, s], kernel, mode="valid") for s in range(amp.shape[1])], axis=1)
            amp = amp / np.maximum(mean, 10.0 ** (threshold / 20.0))
        evidence = self._evidence(frame, visual, amp.shape[1], c, ext) if self._want_evidence else []
        # speech activity around the frame: a soft threshold (6 dB ramp), short pauses bridged
        active = np.clip((level - threshold) / 6.0, 0.0, 1.0)
        b = ext["bridge"]
        speech = float(np.max(active[max(0, c - b): c + b + 1]))

        width, edge, lag = ext["width"], ext["edge"], ext["lag"]
        windows = [(c - width // 2, c - width // 2 + width)]
        if cfg.adaptive:
            windows += [(c - (width - edge) + 1, c + edge + 1), (c - edge, c - edge + width)]
        best = None
        for wlo, whi in windows:
            wlo, whi = max(0, wlo), min(n, whi)
            if whi - wlo < 3:
                continue
            r = window_sync(visual, amp, wlo, whi, lag, cfg.min_motion, per_signal=True)  # (lags, tracks, S)
            filled = np.where(np.isfinite(r), r, -np.inf)
            # each mouth signal at its own best offset (their timing differs by a frame or two)
            score = filled.max(axis=0).mean(axis=1)
            at = np.argmax(filled.mean(axis=2), axis=0)
            ranked = np.sort(score[np.isfinite(score)])[::-1]
            if ranked.size == 0:
                continue
            # how clearly the best track stands out (from the runner-up, or from "nobody" = 0)
            margin = ranked[0] - max(ranked[1] if ranked.size > 1 else -np.inf, 0.0)
            if best is None or margin > best[0]:
                best = (margin, score, at - lag)
        dt = self._dt()
        scores = []
        for tid, has in frame["tracks"]:
            k = col[tid]
            value, extra = None, {"speech": speech, "threshold": SPEAKER_THRESHOLD}
            if has and best is not None and np.isfinite(best[1][k]):
                sync = float(best[1][k])
                value = sync * speech
                extra.update(sync=sync, lag=float(best[2][k]) * dt)
            scores.append(Score(pts=frame["pts"], time_base=frame["time_base"], track_id=tid,
                                frame_index=frame["index"], value=value, extra=extra))
        return scores, evidence

    def _visual(self, ids: list[str], lo: int, hi: int) -> np.ndarray:
        """``(hi - lo, len(ids), N_SIGNALS)`` mouth signals of frames ``[lo, hi)`` (absolute), NaN where missing."""
        return self._signals.window(ids, lo - self._base, hi - self._base)

    def _audio_z(self, pos: int, half: int) -> np.ndarray:
        """Band amplitudes of frame ``pos`` (absolute) z-scored over the frames within ``half``."""
        fr = self._frames[pos - self._base]
        z = fr.get("z")
        if z is None:
            lo, hi = max(self._base, pos - half), min(self._audio_done, pos + half + 1)
            seg = np.stack([f["amp"] for f in self._frames[lo - self._base: hi - self._base]])
            z = fr["z"] = (fr["amp"] - seg.mean(axis=0)) / np.maximum(seg.std(axis=0), 1e-9)
        return z

    def _evidence(self, frame: dict, visual: np.ndarray, n_bands: int, c: int,
                  ext: dict[str, int]) -> list[SyncEvidence]:
        """Per track: mean over the mouth signals of x(c) * a(c + L) for every offset L, both
        centred and scaled over the ``window`` around the frame (lips) or around c + L (audio:
        the band amplitudes, each frame's z-score computed once and kept with the frame)."""
        n = visual.shape[0]
        half, k = ext["width"] // 2, ext["offset"]
        lo, hi = max(0, c - half), min(n, c + half + 1)
        around = visual[lo:hi]  # (w, m, S)
        present = np.isfinite(around[..., 0])
        counts = present.sum(axis=0)  # (m,)
        filled = np.where(present[..., None], around, 0.0)
        n_ok = np.maximum(counts, 1)[:, None]
        mean = filled.sum(axis=0) / n_ok
        std = np.sqrt(np.maximum((np.where(present[..., None], around - mean, 0.0) ** 2).sum(axis=0) / n_ok, 0.0))
        x = (visual[c] - mean) / np.maximum(std, self.config.min_motion)  # (m, S)
        offsets = np.arange(-k, k + 1)
        a = np.full((len(offsets), n_bands), np.nan)
        centre = frame["_pos"]
        for j, off in enumerate(offsets):
            if 0 <= c + off < n:
                a[j] = self._audio_z(centre + off, half)
        values = np.einsum("ms,ks->mk", np.nan_to_num(x), np.nan_to_num(a)) / n_bands
        valid = np.isfinite(a[:, 0])
        dt = self._dt()
        out = []
        for j, (tid, has) in enumerate(frame["tracks"]):
            if not has or counts[j] < max(3, (hi - lo) // 2):
                continue
            out.append(SyncEvidence(pts=frame["pts"], time_base=frame["time_base"], track_id=tid,
                                    frame_index=frame["index"], offsets=offsets[valid].astype(np.int64),
                                    values=values[j, valid].astype(np.float32), frame_s=dt))
        return out
