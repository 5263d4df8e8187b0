"""``musetalk.blend``: paste the generated face back into its source frame."""

from __future__ import annotations

from dataclasses import dataclass

from avflow import Node, Port, VideoFrame, param

from ..geometry import blend_mask, paste_face
from ..payloads import GeneratedFrame


@dataclass(frozen=True)
class BlendConfig:
    feather: float = param(0.08, "soft edge of the mouth-and-jaw mask, as a fraction of the face box height",
                           min=0.0, max=0.5)
    expand: float = param(1.06, "how far the mask reaches past the jaw line (1: on it), so a mouth opening "
                                "wider than the source's is covered", min=0.8, max=1.5)


class Blend(Node):
    """Paste each generated face back through a feathered mouth-and-jaw mask.

    MuseTalk blends through a face-parsing model's mask (not available here); the mask is built
    from the landmarks instead (:func:`avflow_musetalk.geometry.blend_mask`): the jaw region
    below the box's centre line, fading to zero before the jaw line and the box edges. Every
    pixel outside the face box, and inside it where the mask is 0, is exactly the input's;
    frames without a face are passed through untouched.

    Ports:
      - in ``frames`` (GeneratedFrame): frames with their generated face.
      - out ``frames`` (VideoFrame): the output video's frames (``index`` = output position).

    Example::

        blend:
          type: musetalk.blend
          inputs: {frames: decode_face.frames}
          params: {feather: 0.08}
    """

    type = "musetalk.blend"
    Config = BlendConfig
    inputs = {"frames": Port(GeneratedFrame, "frames with a generated face")}
    outputs = {"frames": Port(VideoFrame, "lip-synced frames")}
    queue_size = 8

    def process(self, port, item: GeneratedFrame, ctx):
        image = item.image
        if item.box is not None and item.face is not None:
            mask = blend_mask(item.box, item.landmarks, self.config.feather, self.config.expand)
            image = paste_face(image, item.face, item.box, mask)
        return {"frames": VideoFrame(pts=item.pts, time_base=item.time_base, image=image,
                                     index=item.out_index, duration=item.duration)}
