"""``voice.online``: voices decided as they are heard, from streaming voice embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avflow import Node, Port, param

from ..online import OnlineVoices
from ..payloads import SpeechActivity, VoiceEmbedding, VoiceLabel


@dataclass(frozen=True)
class OnlineClusterConfig:
    threshold: float = param(0.4, "cosine distance to the nearest voice beyond which a window may start a new "
                                  "voice (voice.cluster's cut: 0.4)", min=0.0, max=2.0)
    update: float = param(0.3, "a window this close to its voice also moves the voice's centroid", min=0.0, max=2.0)
    min_new: int = param(3, "consecutive far windows, close to each other, that found a new voice (with "
                            "voice.embed's 0.2 s step: 0.6 s of speech)", min=1)
    max_voices: int = param(16, "at most this many voices; then the nearest voice takes every window", min=1)
    hold: float = param(0.6, "with the speech input: candidate windows are decided after this many seconds of "
                             "silence past the last of them (no window can come before speech resumes); fewer "
                             "than min_new may then found a voice: a new speaker's first utterance may be one window",
                        min=0.0)


class OnlineVoiceClusterer(Node):
    """Voices from streaming voice embeddings, decided as they come: the live ``voice.cluster``.

    Each window (``voice.embed``) goes to the nearest voice's centroid when within ``threshold``,
    the centroid updated with it when within ``update``; ``min_new`` consecutive windows far from
    every voice and close to each other found a new voice (:mod:`avflow_voice.online`, as diart
    does it: centroids, a new voice past a distance threshold, centroid updates). A window is
    labelled once, when it arrives or, as a candidate, at most ``min_new`` windows later, or
    (with the ``speech`` input) after ``hold`` seconds of silence: then candidates close to each
    other and far from every voice found a voice however few they are, so that a new speaker's
    first short utterance is labelled before its frames fall due downstream. Ids (``voice_0``,
    ...) follow the order the voices are found and never change. Memory: a centroid per voice and
    at most ``min_new`` held windows, whatever the length of the input.

    Ports:
      - in ``embeddings`` (VoiceEmbedding): from ``voice.embed``, in time order.
      - in ``speech`` (SpeechActivity, optional): ``voice.activity``'s, the audio's clock.
      - out ``labels`` (VoiceLabel): one per window: its span, its voice id (or null), similarity.

    .. code-block:: yaml

        voices:
          type: voice.online
          inputs: {embeddings: embed.embeddings, speech: vad.speech}
          params: {threshold: 0.4, min_new: 3}
    """

    type = "voice.online"
    Config = OnlineClusterConfig
    inputs = {"embeddings": Port(VoiceEmbedding, "voice embeddings of speech windows"),
              "speech": Port(SpeechActivity, "speech activity (voice.activity): the audio's clock, so that "
                                             "candidates are not held through a silence", optional=True)}
    outputs = {"labels": Port(VoiceLabel, "each window's voice, decided online")}
    queue_size = 64

    def open(self, ctx):
        c = self.config
        self._voices = OnlineVoices(threshold=c.threshold, update=c.update, min_new=c.min_new,
                                    max_voices=c.max_voices)
        self._speech_end = -np.inf  # end of the latest speech heard (the speech input)

    def process(self, port, item, ctx):
        if port == "speech":
            on = np.flatnonzero(np.asarray(item.speech, bool))
            hop = float(item.hop)
            if on.size:
                self._speech_end = item.time + (int(on[-1]) + 1) * hop
            held = self._voices.held
            # no window can come before speech resumes: decide the candidates after `hold` s of silence
            if held and item.time + len(item.speech) * hop >= max(held[-1].end, self._speech_end) + self.config.hold:
                return self._labels(self._voices.expire(), ctx)
            return None
        return self._labels(self._voices.push(item, item.vector), ctx)

    def finish(self, ctx):
        return self._labels(self._voices.flush(), ctx)

    def _labels(self, decided, ctx):
        out = []
        for d in decided:
            w = d.key
            vid = f"voice_{d.voice}" if d.voice is not None else None
            if d.new and w is decided[0].key:
                ctx.logger.info("new voice %s at %.2f s", vid, w.start)
            out.append(VoiceLabel(pts=w.pts, time_base=w.time_base, start=w.start, end=w.end, voice=vid,
                                  similarity=round(d.similarity, 4), new=d.new))
        return {"labels": out} if out else None
