"""``faces.track``: IoU face tracking with gap interpolation, short-track removal and scene cuts."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from avflow import FaceDetections, InputError, Node, NodeContext, Port, TrackedFaces, VideoFrame, param

from .._common import check_frame
from ..tracker import IoUTracker


@dataclass(frozen=True)
class FaceTrackConfig:
    min_iou: float = param(0.3, "least IoU between a track's last box and a detection to continue it",
                           min=0.01, max=1.0)
    max_missed: int = param(10, "frames a face may go undetected and keep its track (the gap is "
                                "interpolated); one more and the track ends", min=0)
    min_track_len: int = param(5, "tracks spanning fewer frames (first to last detection) are dropped", min=1)
    scene_cut: float | None = param(0.3, "Bhattacharyya distance between colour histograms of consecutive "
                                         "frames above which every track is ended (needs the frames "
                                         "port; null: no scene cut detection)", min=0.0, max=1.0)
    max_pending: int = param(64, "detections held while waiting for their frame on the frames port; "
                                 "beyond this they are tracked without scene cut information", min=1)


class FaceTracker(Node):
    """Give every detected face a stable id across frames: an IoU tracker.

    Detections are matched one-to-one to the open tracks (Hungarian assignment on IoU, at least
    ``min_iou``); a face that appears later starts a new track; a track ends once its face has
    been missed for more than ``max_missed`` frames; shorter gaps are filled with boxes
    interpolated linearly (``FaceTrack.interpolated = True``); tracks spanning fewer than
    ``min_track_len`` frames are dropped entirely. Kept tracks are named ``face_0``, ``face_1``,
    ... in the order they are confirmed. When the optional ``frames`` port is connected, a colour
    histogram jump between consecutive frames above ``scene_cut`` ends every track
    (``TrackedFaces.scene_cut = True`` on that frame).

    Exactly one TrackedFaces is emitted per FaceDetections, in order, with the same ``pts``,
    ``time_base`` and ``frame_index``, also for frames without a face. Output lags the input by
    ``max_missed + min_track_len - 1`` frames so that each emitted frame is final; memory is
    bounded by that window, never the whole video.

    Ports:
      - in ``detections`` (FaceDetections): faces per frame, in frame order.
      - in ``frames`` (VideoFrame, optional): the same video, only for scene cut detection.
      - out ``tracks`` (TrackedFaces): tracked faces per frame.

    Params: ``min_iou``, ``max_missed``, ``min_track_len``, ``scene_cut``, ``max_pending``.

    .. code-block:: yaml

        track:
          type: faces.track
          inputs: {detections: detect.detections, frames: decode.video}
          params: {max_missed: 10, min_track_len: 5}
    """

    type = "faces.track"
    Config = FaceTrackConfig
    inputs = {
        "detections": Port(FaceDetections, "faces per frame, in frame order"),
        "frames": Port(VideoFrame, "the video frames, for scene cut detection", optional=True),
    }
    outputs = {"tracks": Port(TrackedFaces, "tracked faces, one per input frame")}

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.tracker: IoUTracker | None = None
        self._pending: deque[FaceDetections] = deque()
        self._cuts: dict[int, bool] = {}
        self._prev_hist: np.ndarray | None = None
        self._last_frame = -1
        self._last_pushed = -1
        self._use_frames = False
        self._warned = False

    def open(self, ctx: NodeContext) -> None:
        cfg = self.config
        self.tracker = IoUTracker(cfg.min_iou, cfg.max_missed, cfg.min_track_len)
        self._pending.clear()
        self._cuts.clear()
        self._prev_hist = None
        self._last_frame = -1
        self._last_pushed = -1
        self._use_frames = cfg.scene_cut is not None and "frames" in ctx.connected_inputs
        self._warned = False

    @property
    def pending(self) -> int:
        """Items held inside the node (detections waiting for a frame, frames in the window)."""
        return len(self._pending) + len(self._cuts) + (self.tracker.window_size if self.tracker else 0)

    def process(self, port: str, item: Any, ctx: NodeContext):
        if port == "frames":
            image = check_frame(item, "frames")
            if item.index <= self._last_frame:
                raise InputError(f"port 'frames': frame index {item.index} after {self._last_frame}; "
                                 "frames must arrive in increasing index order")
            self._last_frame = item.index
            if self._use_frames:
                hist = color_histogram(image)
                cut = self._prev_hist is not None and hist_distance(self._prev_hist, hist) > self.config.scene_cut
                self._prev_hist = hist
                if item.index > self._last_pushed:
                    self._cuts[item.index] = cut
        else:
            if not isinstance(item, FaceDetections):
                raise InputError(f"port 'detections' expects FaceDetections, got {type(item).__name__}")
            self._pending.append(item)
        return self._drain(ctx, final=False)

    def finish(self, ctx: NodeContext):
        out = self._drain(ctx, final=True)["tracks"]
        out.extend(self.tracker.flush())
        return {"tracks": out}

    def _drain(self, ctx: NodeContext, final: bool) -> dict[str, list[TrackedFaces]]:
        out: list[TrackedFaces] = []
        while self._pending:
            det = self._pending[0]
            idx = det.frame_index
            if not self._use_frames:
                cut = False
            elif idx in self._cuts:
                cut = self._cuts.pop(idx)
            elif self._last_frame > idx or final:
                cut = False  # its frame was skipped, or the frames stream ended early
            elif len(self._pending) > self.config.max_pending:
                if not self._warned:
                    ctx.logger.warning("frames port is more than %d frames behind the detections; "
                                       "tracking without scene cut detection until it catches up",
                                       self.config.max_pending)
                    self._warned = True
                cut = False
            else:
                break
            self._pending.popleft()
            out.extend(self.tracker.push(det, scene_cut=cut))
            self._last_pushed = idx
        # Flags of frames whose detections are already tracked will never be read.
        for k in [k for k in self._cuts if k <= self._last_pushed]:
            del self._cuts[k]
        return {"tracks": out}


def color_histogram(image: np.ndarray) -> np.ndarray:
    """A normalised 8x4x4 HSV histogram of a 64x64 thumbnail (cheap, robust to small motion)."""
    import cv2

    # Subsample by striding first: area-averaging a whole HD frame costs more than the rest.
    step = max(1, min(image.shape[:2]) // 128)
    thumb = cv2.resize(np.ascontiguousarray(image[::step, ::step]), (64, 64), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
    return cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)


def hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance, 0 (same) .. 1 (disjoint). Consecutive frames of one shot stay
    below ~0.06 on our test clips; cuts between different clips measure 0.59 or more."""
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))
