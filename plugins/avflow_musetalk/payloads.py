"""Payloads of the lip-sync chain: one source frame, enriched stage by stage.

A frame travels ``face_region -> crop -> vae_encode -> audio_prompts -> unet -> vae_decode ->
blend`` as one object, carrying the full source picture along, so no node has to join two
video streams (and hold one of them) to paste the generated face back. Each stage's class
names the arrays that stage batches (``tensor_fields``); frames without a face carry zero
placeholders of the same shape, so a batch always stacks, and the models skip them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, TypeVar

import numpy as np

from avflow import Payload

T = TypeVar("T", bound="FaceFrame")


@dataclass
class FaceFrame(Payload):
    """A source frame with its MuseTalk face region (``box`` None: no face, passed through).

    ``pts``/``time_base`` are the frame's time on the *output* timeline once
    ``musetalk.audio_prompts`` has placed it (0 = start of the driving audio); before that,
    the source video's own timestamps.
    """

    image: np.ndarray  # HxWx3 uint8 RGB, the whole source frame
    index: int = 0  # position in the source video
    out_index: int = -1  # position in the generated video (set by musetalk.audio_prompts)
    n_out: int | None = None  # frames the run generates, once the audio's end is known (for progress)
    duration: Fraction | None = None  # seconds this frame is shown, if known
    box: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2: MuseTalk's crop region
    landmarks: np.ndarray | None = None  # (68, 2) float32 frame pixels (iBUG order, from the face mesh)
    crop: np.ndarray | None = None  # (S, S, 3) uint8: the region resized to the model's input
    latents: np.ndarray | None = None  # (2C, h, w) float32: masked-half latents, then reference latents
    prompt: np.ndarray | None = None  # (10 * layers, d_model) float32: the frame's audio prompt
    pred: np.ndarray | None = None  # (C, h, w) float32: generated latents
    face: np.ndarray | None = None  # (S, S, 3) uint8: generated face

    @property
    def has_face(self) -> bool:
        return self.box is not None


@dataclass
class CropFrame(FaceFrame):
    """A frame with its face crop (``crop`` batched by ``musetalk.vae_encode``)."""

    tensor_fields: ClassVar[tuple[str, ...]] = ("crop",)


@dataclass
class EncodedFrame(FaceFrame):
    """A frame with its UNet input latents, not yet placed on the audio timeline."""


@dataclass
class PromptFrame(FaceFrame):
    """A frame placed on the output timeline with its audio prompt (batched by ``musetalk.unet``)."""

    tensor_fields: ClassVar[tuple[str, ...]] = ("latents", "prompt")


@dataclass
class PredFrame(FaceFrame):
    """A frame with its generated latents (``pred`` batched by ``musetalk.vae_decode``)."""

    tensor_fields: ClassVar[tuple[str, ...]] = ("pred",)


@dataclass
class GeneratedFrame(FaceFrame):
    """A frame with its generated face, ready to be pasted back by ``musetalk.blend``."""


def advance(item: FaceFrame, cls: type[T], **changes: Any) -> T:
    """The same frame as the next stage's class, with ``changes`` applied.

    Arrays a later stage no longer needs are dropped by passing them as ``None``.
    """
    values = {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.init}
    values.update(changes)
    return cls(**values)
