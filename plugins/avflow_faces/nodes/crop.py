"""``faces.crop``: square face crops, resized for a scorer (SyncNet 96x96, lower half, ...)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from avflow import Box, FaceCrop, Node, NodeContext, Port, TrackedFaces, VideoFrame, param

from .._common import FrameJoin
from ..geometry import crop_region, cut_padded


@dataclass(frozen=True)
class FaceCropConfig:
    expand: float = param(0.2, "grow the face box by this fraction before squaring it (0.2: 20%)",
                          min=0.0, max=3.0)
    size: int = param(96, "side of the square crop in pixels after resizing", min=8, max=4096)
    region: Literal["full", "lower_half"] = param(
        "full", "'full': the size x size square; 'lower_half': its bottom size//2 rows (size//2 x size), "
                "the mouth region Wav2Lip's SyncNet takes", choices=("full", "lower_half"))
    smooth: int = param(0, "centred moving average of each track's box over this many frames before "
                           "cropping (steadier crops; output lags by smooth//2 frames); 0 or 1: none",
                        min=0, max=101)
    max_pending: int = param(256, "frames held while waiting for their tracks", min=1)


class FaceCropper(Node):
    """Cut every tracked face out of its frame as a square crop of ``size`` pixels.

    The track's box is expanded by ``expand``, made square around its centre, cut out (border
    pixels replicated where the square leaves the frame), and resized with ``cv2.INTER_AREA``
    (``INTER_LINEAR`` when enlarging). ``region: lower_half`` keeps only the bottom half of the
    square: ``size // 2`` rows by ``size`` columns (48x96 at the default size, Wav2Lip SyncNet's
    input). ``FaceCrop.box`` is the part of the frame the crop shows (it may reach outside the
    frame); ``FaceCrop.landmarks`` are the track's landmarks ``(N, 2)`` in crop pixels when the
    track has landmarks. One FaceCrop per face per frame, in frame order then track order.

    Streamed: frames wait (at most ``max_pending``) until their TrackedFaces arrive; with
    ``smooth`` a few more are held for the moving average. Never the whole video.

    Ports:
      - in ``frames`` (VideoFrame): the video the tracks were made from.
      - in ``tracks`` (TrackedFaces): tracked faces per frame (landmarks optional).
      - out ``crops`` (FaceCrop): one crop per tracked face per frame.

    Params: ``expand``, ``size``, ``region``, ``smooth``, ``max_pending``.

    .. code-block:: yaml

        crop:
          type: faces.crop
          inputs: {frames: decode.video, tracks: track.tracks}
          params: {size: 96, region: lower_half, expand: 0.2}
    """

    type = "faces.crop"
    Config = FaceCropConfig
    inputs = {
        "frames": Port(VideoFrame, "RGB video frames"),
        "tracks": Port(TrackedFaces, "tracked faces of the same video"),
    }
    outputs = {"crops": Port(FaceCrop, "one square (or lower-half) crop per tracked face per frame")}

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.join: FrameJoin | None = None
        self._buf: deque[list] = deque()  # [frame or None, tracks]; the first `_done` already emitted
        self._done = 0

    def open(self, ctx: NodeContext) -> None:
        self.join = FrameJoin(self.config.max_pending, logger=ctx.logger, on_missing="its faces are not cropped")
        self._buf.clear()
        self._done = 0

    @property
    def pending(self) -> int:
        return (len(self.join) if self.join else 0) + len(self._buf)

    def process(self, port: str, item: Any, ctx: NodeContext):
        pairs = self.join.add(port, item)
        return {"crops": self._push(pairs, ctx, final=False)}

    def finish(self, ctx: NodeContext):
        return {"crops": self._push(self.join.flush(), ctx, final=True)}

    # -- smoothing window --------------------------------------------------------------------
    def _push(self, pairs, ctx: NodeContext, final: bool) -> list[FaceCrop]:
        half = int(self.config.smooth) // 2 if self.config.smooth > 1 else 0
        out: list[FaceCrop] = []
        for frame, tracks in pairs:
            if frame is not None:  # FrameJoin has checked its size and logged a missing one
                self._buf.append([frame, tracks])
        while len(self._buf) - self._done > (0 if final else half):
            out.extend(self._emit(self._done, half))
            self._buf[self._done][0] = None  # history only needs the boxes
            self._done += 1
            while self._done > half:
                self._buf.popleft()
                self._done -= 1
        return out

    def _emit(self, pos: int, half: int) -> list[FaceCrop]:
        frame, tracks = self._buf[pos]
        lo, hi = max(0, pos - half), min(len(self._buf), pos + half + 1)
        crops = []
        for face in tracks.faces:
            box = face.box
            if half:
                box = _mean_box([f.box for k in range(lo, hi) for f in self._buf[k][1].faces
                                 if f.track_id == face.track_id])
            crops.append(self.crop(frame, face.track_id, box, face.landmarks))
        return crops

    # -- one crop ------------------------------------------------------------------------------
    def crop(self, frame: VideoFrame, track_id: str, box: Box, landmarks: np.ndarray | None = None) -> FaceCrop:
        """The FaceCrop of ``box`` in ``frame`` (see the class docstring)."""
        import cv2

        cfg = self.config
        size = int(cfg.size)
        x0, y0, side = crop_region(box, float(cfg.expand))
        patch = cut_padded(frame.image, x0, y0, side)
        interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
        image = cv2.resize(patch, (size, size), interpolation=interp)
        scale = size / side
        top = 0
        src = Box(float(x0), float(y0), float(side), float(side), score=box.score)
        if cfg.region == "lower_half":
            top = size // 2
            image = image[top:]
            src = Box(float(x0), y0 + top / scale, float(side), (size - top) / scale, score=box.score)
        lm = None
        if landmarks is not None:
            lm = ((np.asarray(landmarks, np.float32)[:, :2] - np.array([x0, y0], np.float32)) * scale
                  - np.array([0.0, top], np.float32)).astype(np.float32)
        return FaceCrop(pts=frame.pts, time_base=frame.time_base, track_id=track_id, frame_index=frame.index,
                        image=np.ascontiguousarray(image), box=src, landmarks=lm)


def _mean_box(boxes: list[Box]) -> Box:
    a = np.array([[b.x + b.w / 2, b.y + b.h / 2, b.w, b.h] for b in boxes], np.float64).mean(axis=0)
    return Box(float(a[0] - a[2] / 2), float(a[1] - a[3] / 2), float(a[2]), float(a[3]),
               score=float(np.mean([b.score for b in boxes])))
