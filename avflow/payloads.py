"""Payloads: the typed values that flow between node ports.

Every payload carries ``pts`` and ``time_base`` (a :class:`~fractions.Fraction`); its time in
seconds is ``pts * time_base``. Audio/video alignment is always derived from these timestamps,
never from frame counts or an assumed frame rate.

Ports are typed by payload class; an output feeds an input when the output's class is the
input's class or a subclass of it. ``Payload`` itself is "any": an input of that type accepts
everything, and an output of that type (a pass-through node) is checked item by item at run time. Plugins may define their own
payload classes by subclassing :class:`Payload`.

Fields listed in a class's ``tensor_fields`` are numpy arrays of the same shape across items;
the runtime stacks them into one tensor on the node's device when it builds a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


@dataclass
class Payload:
    """Base class: something that happened at ``pts * time_base`` seconds."""

    pts: int
    time_base: Fraction

    tensor_fields: ClassVar[tuple[str, ...]] = ()

    @property
    def time(self) -> float:
        """Presentation time in seconds."""
        return float(self.pts * self.time_base)


@dataclass
class MediaInfo(Payload):
    """What a decoder found in its input; emitted once, before any frame or chunk.

    ``n_frames`` and ``duration`` are estimates from the container when it is not decoded with
    a constant ``fps``; ``fps`` is the nominal (average) rate, or the resampled one.
    """

    path: str
    duration: float
    width: int = 0
    height: int = 0
    fps: float = 0.0
    n_frames: int = 0
    has_video: bool = False
    has_audio: bool = False
    sample_rate: int = 0
    channels: int = 0
    variable_frame_rate: bool = False


@dataclass
class VideoFrame(Payload):
    """One decoded picture. ``image`` is HxWx3 uint8 in RGB order."""

    image: np.ndarray
    index: int = 0  # position in the decoded stream, 0-based
    duration: Fraction | None = None  # seconds this frame is shown, if known

    tensor_fields: ClassVar[tuple[str, ...]] = ("image",)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass
class AudioChunk(Payload):
    """Consecutive audio samples. ``samples`` is float32, shape (channels, n), range [-1, 1].

    ``time_base`` is ``1/sample_rate`` for chunks made by avflow's decoder, so ``pts`` counts
    samples from the start of the media timeline.
    """

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate


@dataclass
class Box:
    """An axis-aligned box in pixels of the frame it was found in: top-left x, y, width, height."""

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    keypoints: np.ndarray | None = None  # (K, 2) pixels, detector-specific order

    def as_xywh(self) -> list[float]:
        return [self.x, self.y, self.w, self.h]

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass
class FaceDetections(Payload):
    """Every face found in one video frame (possibly none)."""

    frame_index: int
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


@dataclass
class FaceTrack:
    """One tracked face in one frame. ``interpolated`` is True where the box was filled in."""

    track_id: str
    box: Box
    interpolated: bool = False
    landmarks: np.ndarray | None = None  # (N, 2) or (N, 3) pixels


@dataclass
class TrackedFaces(Payload):
    """Every tracked face in one video frame, with stable ids across frames."""

    frame_index: int
    width: int
    height: int
    faces: list[FaceTrack] = field(default_factory=list)
    scene_cut: bool = False


@dataclass
class FaceCrop(Payload):
    """One face cut out of one frame and resized. ``image`` is HxWx3 uint8 RGB."""

    track_id: str
    frame_index: int
    image: np.ndarray
    box: Box  # where the crop came from, pixels of the source frame
    landmarks: np.ndarray | None = None  # (N, 2) pixels of the crop

    tensor_fields: ClassVar[tuple[str, ...]] = ("image",)


@dataclass
class Score(Payload):
    """A scalar per track at a point in time (sync confidence, smoothed score, ...)."""

    track_id: str
    frame_index: int
    value: float | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tensor(Payload):
    """A generic array with a name, e.g. a feature window or a latent."""

    name: str
    data: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    tensor_fields: ClassVar[tuple[str, ...]] = ("data",)


@dataclass
class Record(Payload):
    """A structured value (a dict), e.g. a per-frame decision or a summary."""

    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class File(Payload):
    """A file a node wrote (already in place under its final name)."""

    path: Path
    kind: str = ""  # e.g. "video/mp4", "application/json"

