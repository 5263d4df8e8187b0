"""Payloads of the voice plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avflow.payloads import Payload


@dataclass
class SpeechActivity(Payload):
    """Speech probability of consecutive hops; ``pts * time_base`` is the first hop's start.

    :ivar probs: float32 ``(n,)``, hop ``i`` covers ``[time + i * hop, time + (i + 1) * hop)``.
    :ivar hop: seconds per value (0.032 for Silero VAD).
    :ivar speech: bool ``(n,)``: the decision (threshold with hysteresis, short runs removed).
    """

    probs: np.ndarray
    hop: float
    speech: np.ndarray


@dataclass
class VoiceEmbedding(Payload):
    """One window of speech and its voice embedding; ``pts`` is the window's centre.

    :ivar start: seconds of the window's first speech frame on the input's timeline.
    :ivar end: seconds after its last speech frame (pauses inside were left out of the window).
    :ivar vector: float32 ``(256,)``, L2-normalised.
    :ivar speech: seconds of speech in the window.
    """

    start: float
    end: float
    vector: np.ndarray
    speech: float


@dataclass
class VoiceTurns(Payload):
    """Who was heard when, as voices (emitted once, when the audio has ended).

    :ivar turns: ``[{"voice": "voice_0", "start": s, "end": s}]`` in time order; pauses shorter
        than the clusterer's ``min_pause`` stay inside a turn.
    :ivar voices: ``[{"id": "voice_0", "speech": seconds, "turns": n}]``, by first appearance.
    :ivar speech: ``[(start, end)]`` seconds of speech found by the activity detector.
    :ivar overlaps: ``[{"start", "end", "voices": [a, b]}]`` where a second voice is heard too.
    :ivar centroids: ``{voice id: (256,) float32}``, each voice's mean embedding (L2-normalised).
    """

    turns: list[dict[str, Any]] = field(default_factory=list)
    voices: list[dict[str, Any]] = field(default_factory=list)
    speech: list[tuple[float, float]] = field(default_factory=list)
    overlaps: list[dict[str, Any]] = field(default_factory=list)
    centroids: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class VoiceLabel(Payload):
    """The voice of one embedding window, decided online (``voice.online``); ``pts`` is the
    window's centre.

    :ivar start: seconds of the window's first speech frame.
    :ivar end: seconds after its last speech frame.
    :ivar voice: the voice id (``voice_0``, ...), or None: speech no voice claims yet.
    :ivar similarity: cosine similarity to that voice's centroid when it was labelled.
    :ivar new: this window's group created the voice.
    """

    start: float
    end: float
    voice: str | None
    similarity: float = 0.0
    new: bool = False
