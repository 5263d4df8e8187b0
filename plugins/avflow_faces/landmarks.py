"""``faces.landmarks``: MediaPipe Face Mesh on every tracked face."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avflow import Box, FaceTrack, InputError, Node, NodeContext, Port, TrackedFaces, VideoFrame, param

from ._common import FrameJoin, check_frame
from .geometry import clip_box, expand_box, iou_matrix, square_box
from .mesh import N_LANDMARKS


@dataclass(frozen=True)
class FaceLandmarksConfig:
    expand: float = param(0.5, "the mesh runs on a square crop this much larger than the track's box "
                               "(0.5: 50%)", min=0.0, max=3.0)
    min_confidence: float = param(0.5, "MediaPipe face mesh detection confidence", min=0.0, max=1.0)
    min_iou: float = param(0.2, "least IoU between the mesh's bounding box and the track's box for the "
                                "landmarks to be given to that track", min=0.0, max=1.0)
    max_pending: int = param(256, "frames held while waiting for their tracks", min=1)


class FaceLandmarks(Node):
    """Add MediaPipe Face Mesh landmarks to every tracked face.

    For each face of each TrackedFaces, the mesh runs on a square crop around the face's box
    (expanded by ``expand``), so with several people in one frame each track gets the landmarks of
    its own face: among the meshes found in the crop, the one overlapping the track's box best
    (IoU at least ``min_iou``) is kept. ``FaceTrack.landmarks`` becomes a ``(468, 3)`` float32 array
    in pixels of the frame (z on the scale of x), or None where the mesh found no matching face.
    Index constants for the lips and a ``mouth_opening`` measure are in :mod:`avflow_faces.mesh`.

    Frames and tracks may arrive out of step (the tracker lags): frames are buffered by index
    (at most ``max_pending``) and tracks are emitted in order, one out per TrackedFaces in.

    Ports:
      - in ``frames`` (VideoFrame): the video the tracks were made from.
      - in ``tracks`` (TrackedFaces): tracked faces per frame.
      - out ``tracks`` (TrackedFaces): the same, with ``landmarks`` set.

    Params: ``expand``, ``min_confidence``, ``min_iou``, ``max_pending``.

    .. code-block:: yaml

        mesh:
          type: faces.landmarks
          inputs: {frames: decode.video, tracks: track.tracks}
    """

    type = "faces.landmarks"
    Config = FaceLandmarksConfig
    inputs = {
        "frames": Port(VideoFrame, "RGB video frames"),
        "tracks": Port(TrackedFaces, "tracked faces of the same video"),
    }
    outputs = {"tracks": Port(TrackedFaces, "tracked faces with (468, 3) landmarks in frame pixels")}

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._mesh = None
        self.join: FrameJoin | None = None
        self._warned = False

    def open(self, ctx: NodeContext) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, refine_landmarks=False,
            min_detection_confidence=float(self.config.min_confidence))
        self.join = FrameJoin(self.config.max_pending)
        self._warned = False

    def close(self, ctx: NodeContext) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def process(self, port: str, item: Any, ctx: NodeContext):
        if port == "frames":
            check_frame(item, "frames")
            pairs = self.join.add_frame(item)
        else:
            pairs = self.join.add_tracks(item)
        return {"tracks": [self._annotate(f, t, ctx) for f, t in pairs]}

    def finish(self, ctx: NodeContext):
        return {"tracks": [self._annotate(f, t, ctx) for f, t in self.join.flush()]}

    def _annotate(self, frame: VideoFrame | None, tracks: TrackedFaces, ctx: NodeContext) -> TrackedFaces:
        if frame is None:
            if tracks.faces and not self._warned:
                ctx.logger.warning("no frame %d on the frames port: its faces get no landmarks",
                                   tracks.frame_index)
                self._warned = True
            return replace(tracks, faces=[replace(f, landmarks=None) for f in tracks.faces])
        image = frame.image
        if (image.shape[1], image.shape[0]) != (tracks.width, tracks.height):
            raise InputError(f"frame {frame.index} is {image.shape[1]}x{image.shape[0]} but its tracks are for "
                             f"{tracks.width}x{tracks.height}: connect the frames the tracks were made from")
        faces = [replace(f, landmarks=self.landmarks_for(image, f.box)) for f in tracks.faces]
        return replace(tracks, faces=faces)

    def landmarks_for(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """``(468, 3)`` float32 landmarks in ``image`` pixels of the face in ``box``, or None."""
        h, w = image.shape[:2]
        region = clip_box(square_box(expand_box(box, float(self.config.expand))), w, h)
        if region is None:
            return None
        x0, y0 = int(np.floor(region.x)), int(np.floor(region.y))
        x1, y1 = int(np.ceil(region.x + region.w)), int(np.ceil(region.y + region.h))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        result = self._mesh.process(crop)
        best, best_iou = None, float(self.config.min_iou)
        cw, ch = x1 - x0, y1 - y0
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x * cw + x0, p.y * ch + y0, p.z * cw) for p in face.landmark], np.float32)
            if pts.shape[0] < N_LANDMARKS:
                continue
            pts = pts[:N_LANDMARKS]
            lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
            mesh_box = Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
            iou = float(iou_matrix([mesh_box], [box])[0, 0])
            if iou >= best_iou:
                best, best_iou = pts, iou
        return best
