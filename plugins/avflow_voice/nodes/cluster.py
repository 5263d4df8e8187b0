"""``voice.cluster``: voices and their turns from voice embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import AudioChunk, Node, Port, param

from .. import vad as _vad
from ..boundaries import Cepstra, refine_changes
from ..cluster import _centroids, cluster_voices, merge_small, segment_voices
from ..payloads import SpeechActivity, VoiceEmbedding, VoiceTurns


@dataclass(frozen=True)
class ClusterConfig:
    num_speakers: int | None = param(None, "the number of voices, if known", min=1)
    min_speakers: int = param(1, "at least this many voices", min=1)
    max_speakers: int | None = param(None, "at most this many voices", min=1)
    threshold: float = param(0.35, "cosine distance at which the voice hierarchy is cut (average linkage)",
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
    part_threshold: float = param(0.25, "within a voice, windows are grouped again at this finer cosine distance "
                                        "(parts; sync.assign splits a voice whose parts' lips point at "
                                        "different faces)", min=0.0, max=2.0)
    fine_switch_cost: float = param(0.3, "with the fine input: cost of a change of voice between consecutive "
                                         "short windows, in cosine similarity", min=0.0)
    fine_split: float | None = param(0.41, "with the fine input: a voice whose short windows fall into groups "
                                           "this far apart (cosine distance, average linkage), each of min_voice "
                                           "seconds or more, becomes one voice per group: two similar people the "
                                           "long windows merged (null: never)", min=0.0, max=2.0)
    max_items: int = param(2000, "windows clustered directly; more are first summarised by k-means "
                                 "(memory stays bounded on long input)", min=10)
    refine: float = param(0.4, "with the audio input: each change between two touching turns of different "
                               "voices may move this far (s) to where the spectrum changes voice; 0: off",
                          min=0.0, max=2.0)
    refine_components: int = param(8, "with the audio input: Gaussians in each voice's spectral model", min=1)


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

    With ``fine`` connected (a second ``voice.embed`` of shorter windows, e.g. 0.8 s every 0.1 s),
    the voices are still found on the long windows, but each 32 ms takes its voice from a Viterbi
    pass of the short windows against those voices (``fine_switch_cost``): a long window across
    a change without a pause embeds a mixture, and the first and last half-window of every
    utterance can only follow its first or last window, so short turns after a change were lost.
    Two similar voices can come out as one voice of the long windows (their windows across
    changes of voice are mixtures that bridge the two); a voice whose short windows fall into
    groups more than ``fine_split`` apart is then split into one voice per group, and the short
    windows are labelled again against every voice (unless ``num_speakers`` is given).

    With ``audio`` connected, each change between two touching turns of different voices is then
    moved, within ``refine`` seconds, to where the audio's MFCCs stop fitting the first voice's
    spectral model and start fitting the second's (:mod:`avflow_voice.boundaries`: a Gaussian
    mixture per voice fitted on its own speech, a change-point search over 10 ms frames). On the
    32 tuning fixtures of ``diarization_suite`` this put 66 % of the changes of speaker within
    0.1 s of the truth (median error 0.04 s), the short windows alone 47 % (0.12 s), both with
    the voices cut at 0.4; 62 % at the default 0.35 (``bench/README.md``). The audio's MFCCs are
    kept until the end (19 float16 per 10 ms, ~14 MB per hour).

    Ports:
      - in ``embeddings`` (VoiceEmbedding): from ``voice.embed``.
      - in ``speech`` (SpeechActivity): from ``voice.activity``.
      - in ``fine`` (VoiceEmbedding, optional): shorter windows, to place the changes of voice.
      - in ``audio`` (AudioChunk, optional): the soundtrack, any rate and layout, to place the
        changes of voice from the spectrum (``refine``).
      - out ``voices`` (VoiceTurns): once, at the end.

    .. code-block:: yaml

        voices:
          type: voice.cluster
          inputs: {embeddings: embed.embeddings, speech: vad.speech, fine: embed_fine.embeddings,
                   audio: decode.audio}
          params: {max_speakers: 8}
    """

    type = "voice.cluster"
    Config = ClusterConfig
    inputs = {"embeddings": Port(VoiceEmbedding, "voice embeddings of speech windows"),
              "speech": Port(SpeechActivity, "speech activity"),
              "fine": Port(VoiceEmbedding, "embeddings of shorter windows, to place the changes of voice",
                           optional=True),
              "audio": Port(AudioChunk, "the soundtrack, to place the changes of voice from the spectrum",
                            optional=True)}
    outputs = {"voices": Port(VoiceTurns, "voice turns, once the audio has ended")}
    queue_size = 64

    def open(self, ctx):
        self._vectors: list[np.ndarray] = []
        self._centres: list[float] = []
        self._spans: list[tuple[float, float]] = []
        self._speech_runs: list[list[float]] = []  # [start, end] of speech
        self._hop = _vad.HOP_S
        self._fine: list[tuple[np.ndarray, float, tuple[float, float]]] = []
        self._cepstra: Cepstra | None = None

    def process(self, port, item, ctx):
        if port == "audio":
            if self.config.refine > 0:
                if self._cepstra is None:
                    self._cepstra = Cepstra()
                self._cepstra.push(item)
            return None
        if port == "fine":
            self._fine.append((np.asarray(item.vector, np.float32), item.time, (item.start, item.end)))
            return None
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
        spans = np.array([self._spans[i] for i in order], np.float64).reshape(-1, 2)
        hops = self._hops_of_speech()
        nearest = self._window_of(centres, spans, hops)
        seconds = np.bincount(nearest, minlength=len(emb)) * self._hop  # speech each window stands for
        voices = cluster_voices(emb, threshold=c.threshold, num_speakers=c.num_speakers, weights=seconds,
                                min_speakers=c.min_speakers, max_speakers=c.max_speakers, max_items=c.max_items)
        if c.num_speakers is None:
            voices = merge_small(voices, emb, seconds, c.min_voice, keep=c.min_speakers)
        sim = emb.astype(np.float64) @ voices.centroids.T
        labels = segment_voices(sim, c.switch_cost)
        parts = self._parts(emb, labels, seconds)
        hop_labels, hop_windows = self._hop_labels(centres, spans, labels, sim, hops)
        hop_parts = parts[hop_windows]
        centroids = voices.centroids
        if self._fine and (voices.count > 1 or c.fine_split is not None):
            fine_labels, origin, centroids = self._fine_labels(voices.centroids, hops)
            if voices.count > 1 or len(origin) > 1:
                hop_labels = fine_labels
                hop_parts = self._parts_of(hops, origin[hop_labels], centres, labels, parts)
            else:
                centroids = voices.centroids
        turns = self._turns(hops, hop_labels, hop_parts)
        if self._cepstra is not None and len({t["voice"] for t in turns}) > 1:
            self._cepstra.finish()
            times, features = self._cepstra.frames()
            turns = refine_changes(turns, times, features, search=c.refine, components=c.refine_components,
                                   touching=2 * self._hop)
        ids = self._ids(turns)
        for t in turns:
            t["part"] = f"{ids[t['voice']]}.{t['part']}"
            t["voice"] = ids[t["voice"]]
        listed = []
        for k, vid in sorted(((k, v) for k, v in ids.items()), key=lambda kv: int(kv[1].split("_")[1])):
            mine = [t for t in turns if t["voice"] == vid]
            listed.append({"id": vid, "speech": round(sum(t["speech"] for t in mine), 3), "turns": len(mine),
                           "parts": sorted({t["part"] for t in mine})})
        overlaps = self._overlaps(centres, sim, labels, ids)
        ctx.logger.info("%d voices in %.1f s of speech (%d windows)", len(listed),
                        sum(b - a for a, b in speech), len(emb))
        centroids = {vid: centroids[k].astype(np.float32) for k, vid in ids.items()}
        return {"voices": VoiceTurns(pts=0, time_base=Fraction(1), turns=turns, voices=listed,
                                     speech=speech, overlaps=overlaps, centroids=centroids)}

    def _fine_labels(self, centroids: np.ndarray, hops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The voice of each hop from the short windows (``fine`` input): each labelled by a Viterbi
        pass over its similarity to the voices found on the long windows, ``fine_switch_cost``
        per change. A 1.6 s window across a change without a pause is a mixture, and the first and
        last 0.8 s of an utterance can only take the label of its first or last window; shorter
        windows place the change, the long ones having said which voices there are.

        With ``fine_split``, a voice whose short windows fall into groups further apart than it
        (:meth:`_split_fine`) becomes several voices, and the short windows are labelled again.
        Returns the hop labels, each voice's voice on the long windows (``origin``: a voice split
        off names the one it came from) and the centroids."""
        c = self.config
        order = np.argsort([t for _, t, _ in self._fine], kind="stable")
        emb = np.stack([self._fine[i][0] for i in order]).astype(np.float64)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        centres = np.array([self._fine[i][1] for i in order])
        spans = np.array([self._fine[i][2] for i in order], np.float64)
        sim = emb @ centroids.T
        labels = segment_voices(sim, c.fine_switch_cost)
        origin = np.arange(len(centroids))
        if c.fine_split is not None and c.num_speakers is None:
            seconds = np.bincount(self._window_of(centres, spans, hops), minlength=len(emb)) * self._hop
            split = self._split_fine(emb, labels, seconds, centroids)
            if split is not None:
                origin, centroids = split
                sim = emb @ centroids.T
                labels = segment_voices(sim, c.fine_switch_cost)
        return self._hop_labels(centres, spans, labels, sim, hops)[0], origin, centroids

    def _split_fine(self, emb: np.ndarray, labels: np.ndarray, seconds: np.ndarray, centroids: np.ndarray):
        """Two similar voices the long windows merged: within each voice, its short windows
        clustered (average linkage) at ``fine_split``; groups of ``min_voice`` seconds or more
        become voices of their own (at most ``max_speakers`` in all). On the tuning fixtures the
        short windows of one person stayed within 0.38 of each other (average linkage), two
        similar people merged into one voice came apart at 0.38-0.46. Returns (``origin``: per
        voice, the voice of the long windows it came from; every voice's centroid, the mean of
        its short windows) or None when no voice splits."""
        c = self.config
        k0 = len(centroids)
        new = labels.copy()
        origin = list(range(k0))
        for k in range(k0):
            idx = np.flatnonzero(labels == k)
            if len(idx) < 4:
                continue
            sub = cluster_voices(emb[idx], threshold=c.fine_split, weights=seconds[idx], max_items=c.max_items)
            sub = merge_small(sub, emb[idx], seconds[idx], c.min_voice)
            totals = np.bincount(sub.labels, weights=seconds[idx], minlength=sub.count)
            for g in np.argsort(-totals, kind="stable")[1:]:
                if c.max_speakers is not None and len(origin) >= c.max_speakers:
                    break
                new[idx[sub.labels == g]] = len(origin)
                origin.append(k)
        if len(origin) == k0:
            return None
        out = _centroids(emb, new, len(origin), np.maximum(seconds, 1e-3))
        empty = np.bincount(new, minlength=len(origin)) == 0
        out[empty] = centroids[np.array(origin)[empty]]
        return np.array(origin), out

    @staticmethod
    def _parts_of(hops, hop_labels, centres, labels, parts) -> np.ndarray:
        """Each hop's part: that of the nearest long window of the hop's voice."""
        out = np.zeros(len(hops), np.int64)
        for k in np.unique(hop_labels):
            mine = np.flatnonzero(labels == k)
            at = np.flatnonzero(hop_labels == k)
            if mine.size == 0:
                continue
            pos = np.clip(np.searchsorted(centres[mine], hops[at]), 1, max(1, mine.size - 1))
            left, right = mine[np.maximum(pos - 1, 0)], mine[np.minimum(pos, mine.size - 1)]
            pick = np.where(np.abs(centres[left] - hops[at]) <= np.abs(centres[right] - hops[at]), left, right)
            out[at] = parts[pick]
        return out

    def _hops_of_speech(self) -> np.ndarray:
        """Centre times of every 32 ms hop of speech."""
        mids = [a + (np.arange(max(1, int(round((b - a) / self._hop)))) + 0.5) * self._hop
                for a, b in self._speech_runs]
        return np.concatenate(mids) if mids else np.zeros(0)

    def _parts(self, emb: np.ndarray, labels: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Within each voice, groups of windows clustered at the finer ``part_threshold``: the
        pieces ``sync.assign`` checks against the faces (two similar voices merged into one show
        up as parts whose lips point at different faces)."""
        parts = np.zeros(len(emb), np.int64)
        for k in np.unique(labels):
            idx = np.flatnonzero(labels == k)
            if len(idx) > 1:
                sub = cluster_voices(emb[idx], threshold=self.config.part_threshold, weights=seconds[idx],
                                     max_items=self.config.max_items)
                parts[idx] = merge_small(sub, emb[idx], seconds[idx], self.config.min_voice).labels
        return parts

    def _turns(self, hops: np.ndarray, voice: np.ndarray, part: np.ndarray) -> list[dict]:
        """Runs of hops of one voice and part; pauses shorter than ``min_pause`` bridged."""
        turns: list[dict] = []
        hop = self._hop
        for i, t in enumerate(hops.tolist()):
            s, e = t - hop / 2, t + hop / 2
            last = turns[-1] if turns else None
            if (last is not None and last["voice"] == int(voice[i]) and last["part"] == int(part[i])
                    and s - last["end"] < self.config.min_pause + 1e-9):
                last["end"], last["speech"] = e, last["speech"] + hop
            else:
                turns.append({"voice": int(voice[i]), "part": int(part[i]), "start": s, "end": e, "speech": hop})
        return [{"voice": t["voice"], "part": t["part"], "start": round(t["start"], 3), "end": round(t["end"], 3),
                 "speech": round(t["speech"], 3)} for t in turns]

    @staticmethod
    def _neighbours(centres: np.ndarray, spans: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per time, the window centred last before it and first after it (-1: none), each kept
        only if its span holds the time, unless neither does (a short burst between
        utterances: then the nearest window). Windows are sorted by centre: O(n log m)."""
        starts, ends = spans[:, 0], spans[:, 1]
        m = len(centres)
        b = np.searchsorted(centres, times, side="right")
        a = b - 1
        a_ok = (a >= 0) & (starts[np.clip(a, 0, m - 1)] <= times) & (times < ends[np.clip(a, 0, m - 1)])
        b_ok = (b < m) & (starts[np.clip(b, 0, m - 1)] <= times) & (times < ends[np.clip(b, 0, m - 1)])
        neither = ~a_ok & ~b_ok
        da = np.where(a >= 0, times - centres[np.clip(a, 0, m - 1)], np.inf)
        db = np.where(b < m, centres[np.clip(b, 0, m - 1)] - times, np.inf)
        near = np.where(da <= db, a, b)
        a = np.where(a_ok, a, np.where(neither, near, -1))
        b = np.where(b_ok & ~neither, b, -1)
        return a, b

    def _window_of(self, centres: np.ndarray, spans: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Per time, the nearest of its neighbour windows (:meth:`_neighbours`)."""
        a, b = self._neighbours(centres, spans, times)
        da = np.where(a >= 0, np.abs(times - centres[np.maximum(a, 0)]), np.inf)
        db = np.where(b >= 0, np.abs(centres[np.maximum(b, 0)] - times), np.inf)
        return np.where(da <= db, a, b)

    def _hop_labels(self, centres: np.ndarray, spans: np.ndarray, labels: np.ndarray, sim: np.ndarray,
                    times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The voice of each time, and the window it follows: of its neighbour windows
        (:meth:`_neighbours`), the nearest; where the two neighbours' voices differ, the voice
        whose similarity, interpolated between the two centres, is higher, so that a change
        falls where the centred windows' similarities cross."""
        a, b = self._neighbours(centres, spans, times)
        used = self._window_of(centres, spans, times)
        out = labels[used].copy()
        both = (a >= 0) & (b >= 0)
        both[both] = labels[a[both]] != labels[b[both]]
        if both.any():
            ia, ib, t = a[both], b[both], times[both]
            w = (t - centres[ia]) / np.maximum(centres[ib] - centres[ia], 1e-9)
            va, vb = labels[ia], labels[ib]
            score_a = (1 - w) * sim[ia, va] + w * sim[ib, va]
            score_b = (1 - w) * sim[ia, vb] + w * sim[ib, vb]
            pick_a = score_a >= score_b
            out[both] = np.where(pick_a, va, vb)
            used[both] = np.where(pick_a, ia, ib)
        return out, used

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
