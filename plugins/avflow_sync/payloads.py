"""Payloads of the sync plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from avflow.payloads import Payload


@dataclass
class SyncWindow(Payload):
    """One audio-visual window of one face track, ready for SyncNet (Wav2Lip's ``syncnet_T = 5``).

    ``pts``/``time_base`` are those of the window's *centre* frame (``frame_index + 2``), the
    frame its score describes.

    :ivar track_id: face track.
    :ivar frame_index: first of the 5 consecutive frames.
    :ivar video: uint8 (15, 48, 96): the lower halves of 5 crops, frame-major, 3 colour channels
        each in ``channel_order`` (Wav2Lip's expert was trained on OpenCV's BGR); the scorer
        divides by 255.
    :ivar mel: float32 (K, 80, 16): the 16 mel columns paired with the frames, for each of
        ``K = 2 N + 1`` audio offsets ``-N .. N`` frames (index ``N`` is offset 0, Wav2Lip's
        pairing; ``K = 1`` without an offset search).
    :ivar mel_valid: bool (K,): whether that offset's columns exist (offset 0 always does).
    :ivar mel_start: first mel column at offset 0 (``int(80 * t)``, ``t`` the first frame's
        time from the start of the audio).
    """

    track_id: str
    frame_index: int
    video: np.ndarray
    mel: np.ndarray
    mel_valid: np.ndarray
    mel_start: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    tensor_fields: ClassVar[tuple[str, ...]] = ("video", "mel", "mel_valid")

    @property
    def centre_index(self) -> int:
        return self.frame_index + 2

    @property
    def n_offsets(self) -> int:
        return int(self.mel.shape[0])


@dataclass
class SyncEvidence(Payload):
    """How well one face's lips agree with the audio around one frame, at each audio offset.

    The mean of ``values`` over many frames is a pooled synchrony curve: its peak says at which
    offset the face is in sync with the audio and how clearly (``sync.assign`` pools it over each
    voice's speech). ``pts``/``time_base`` are the frame's.

    :ivar track_id: face track.
    :ivar frame_index: the frame.
    :ivar offsets: int ``(K,)`` audio offsets in frames (positive: the sound comes after the picture).
    :ivar values: float32 ``(K,)`` agreement at each offset, higher is more in sync; the scorer's
        own scale (``sync.motion``: products of locally normalised lip and audio signals, whose
        mean over frames is a correlation; ``sync.syncnet``: cosine similarity).
    :ivar frame_s: seconds per frame (offsets in seconds: ``offsets * frame_s``).
    :ivar scale: the producer's scale, ``"motion"`` or ``"syncnet"`` (its confidence threshold).
    """

    track_id: str
    frame_index: int
    offsets: np.ndarray
    values: np.ndarray
    frame_s: float = 0.04
    scale: str = "motion"

    def value_at(self, offset: int) -> float | None:
        """The agreement at ``offset`` (frames); None where the search did not reach it."""
        hit = np.flatnonzero(self.offsets == offset)
        return float(self.values[hit[0]]) if hit.size else None
