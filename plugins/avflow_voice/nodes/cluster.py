"""``voice.cluster``: voices and their turns from voice embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avflow import Node, Port, param

from .. import vad as _vad
from ..cluster import cluster_voices, merge_small, segment_voices
from ..payloads import SpeechActivity, VoiceEmbedding, VoiceTurns


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
