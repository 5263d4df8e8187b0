"""``media.resize``: resize and crop frames."""

from __future__ import annotations

from dataclasses import dataclass, replace

from avflow import Node, Port, VideoFrame, param

_INTERP = {"area": 3, "linear": 1, "cubic": 2, "lanczos": 4, "nearest": 0}  # cv2.INTER_* values


@dataclass(frozen=True)
class ResizeConfig:
    width: int | None = param(None, "output width in pixels (None: from height, keeping the aspect ratio)", min=2)
    height: int | None = param(None, "output height in pixels (None: from width, keeping the aspect ratio)", min=2)
    crop: tuple[int, int, int, int] | None = param(None, "crop [x, y, w, h] applied before resizing")
    interpolation: str = param("area", "resampling filter", choices=tuple(_INTERP))

    def __post_init__(self):
        if self.crop is not None and (self.crop[2] <= 0 or self.crop[3] <= 0):
            raise ValueError(f"crop width and height must be positive, got {list(self.crop)}")


class Resize(Node):
    """Crop and/or resize frames; with neither width nor height set, only crops.

    Odd computed sizes are rounded to even (H.264 needs even dimensions).

    Ports:
      - in ``frames`` (VideoFrame) -> out ``frames`` (VideoFrame), same timestamps.

    Example::

        small:
          type: media.resize
          inputs: {frames: decode.video}
          params: {width: 640}
    """

    type = "media.resize"
    Config = ResizeConfig
    inputs = {"frames": Port(VideoFrame, "frames to transform")}
    outputs = {"frames": Port(VideoFrame, "transformed frames")}

    def process(self, port, item, ctx):
        import cv2

        img = item.image
        c = self.config
        if c.crop is not None:
            x, y, w, h = c.crop
            H, W = img.shape[:2]
            if x < 0 or y < 0 or x + w > W or y + h > H:
                raise ValueError(f"crop {list(c.crop)} leaves the {W}x{H} frame")
            img = img[y:y + h, x:x + w]
        if c.width or c.height:
            H, W = img.shape[:2]
            w = c.width or int(round(W * c.height / H))
            h = c.height or int(round(H * c.width / W))
            w, h = max(2, w - w % 2), max(2, h - h % 2)
            if (w, h) != (W, H):
                img = cv2.resize(img, (w, h), interpolation=_INTERP[c.interpolation])
        return {"frames": replace(item, image=img)}
