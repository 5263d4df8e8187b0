"""``faces.landmarks``: MediaPipe Face Mesh on every tracked face."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avflow import Box, Node, NodeContext, Port, TrackedFaces, VideoFrame, param

from .._common import FrameJoin
from ..geometry import clip_box, expand_box, iou_matrix, square_box
from ..mesh import mesh_points


@dataclass(frozen=True)
class FaceLandmarksConfig:
    expand: float = param(0.5, "the mesh runs on a square crop this much larger than the track's box "
                               "(0.5: 50%)", min=0.0, max=3.0)
    min_confidence: float = param(0.5, "MediaPipe face mesh detection confidence", min=0.0, max=1.0)
    min_iou: float = param(0.2, "least IoU between the mesh's bounding box and the track's box for the "
                                "landmarks to be given to that track", min=0.0, max=1.0)
    max_pending: int = param(256, "frames held while waiting for their tracks", min=1)
    video_mode: bool = param(True, "follow each track with its own mesh, placed from the previous frame's "
                                   "landmarks (MediaPipe's video mode; the mesh's face detector runs only "
                                   "when the face is lost): a third cheaper and steadier; false: detect in "
                                   "every crop")
    forget_after: int = param(25, "frames a track may be absent before its video-mode mesh is released",
                              min=1)
    max_followers: int = param(8, "video mode: at most this many tracks have their own mesh; further "
                                  "tracks are measured the static way", min=0)


@dataclass
class _Follower:
    """One track's video-mode mesh and the crop it sees (kept while the face stays inside it)."""

    mesh: Any  # None while the face is lost (then measured the static way)
    square: Box  # the unclipped square crop the mesh was started on
    region: tuple[int, int, int, int]  # the square clipped to the frame: x0, y0, x1, y1
    last_seen: int = 0


class FaceLandmarks(Node):
    """Add MediaPipe Face Mesh landmarks to every tracked face.

    For each face of each TrackedFaces, the mesh runs on a square crop around the face's box
    (expanded by ``expand``), so with several people in one frame each track gets the landmarks of
    its own face: among the meshes found in the crop, the one overlapping the track's box best
    (IoU at least ``min_iou``) is kept. ``FaceTrack.landmarks`` becomes a ``(468, 3)`` float32 array
    in pixels of the frame (z on the scale of x), or None where the mesh found no matching face.
    Index constants for the lips and a ``mouth_opening`` measure are in :mod:`avflow_faces.mesh`.

    With ``video_mode`` (the default) every track gets its own mesh that follows the face from
    frame to frame on a crop that stays put while the face stays well inside it, as MediaPipe
    does on video: its face detector runs only when the face is lost. Measured on 10 s of 720p
    with 4 faces: 2.4 instead of 3.7 CPU s, and landmarks steady enough to lift the diarize
    graph's frame accuracy on a three-talker fixture from 0.63 to 0.87. A mesh that loses the
    face or lands on another one (a neighbour in the crop) is dropped; the track is then measured
    the static way until its face is found again. Meshes of tracks gone for ``forget_after``
    frames are released, and at most ``max_followers`` tracks have one (~20 MB and two threads
    each): a crowd beyond that is measured the static way.

    Frames and tracks may arrive out of step (the tracker lags): frames are buffered by index
    (at most ``max_pending``) and tracks are emitted in order, one out per TrackedFaces in.

    Ports:
      - in ``frames`` (VideoFrame): the video the tracks were made from.
      - in ``tracks`` (TrackedFaces): tracked faces per frame.
      - out ``tracks`` (TrackedFaces): the same, with ``landmarks`` set.

    Params: ``expand``, ``min_confidence``, ``min_iou``, ``max_pending``, ``video_mode``,
    ``forget_after``, ``max_followers``.

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
        self._followers: dict[str, _Follower] = {}
        self.join: FrameJoin | None = None

    def open(self, ctx: NodeContext) -> None:
        self._mesh = self._new_mesh(static=True)
        self._followers = {}
        self.join = FrameJoin(self.config.max_pending, logger=ctx.logger, on_missing="its faces get no landmarks")

    def close(self, ctx: NodeContext) -> None:
        for tid in list(self._followers):
            self._release(tid)
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def _new_mesh(self, static: bool):
        from ..models import face_mesh

        # Two faces in a static crop so that a neighbour cannot hide the track's own face; one in
        # video mode, where the crop is the track's and a wrong face restarts the mesh.
        return face_mesh(static, max_faces=2 if static else 1, min_detection_confidence=self.config.min_confidence)

    def process(self, port: str, item: Any, ctx: NodeContext):
        pairs = self.join.add(port, item)
        return {"tracks": [self._annotate(f, t, ctx) for f, t in pairs]}

    def finish(self, ctx: NodeContext):
        return {"tracks": [self._annotate(f, t, ctx) for f, t in self.join.flush()]}

    def _annotate(self, frame: VideoFrame | None, tracks: TrackedFaces, ctx: NodeContext) -> TrackedFaces:
        if frame is None:  # FrameJoin has logged it
            return replace(tracks, faces=[replace(f, landmarks=None) for f in tracks.faces])
        image = frame.image
        if not self.config.video_mode:
            faces = [replace(f, landmarks=self.landmarks_for(image, f.box)) for f in tracks.faces]
            return replace(tracks, faces=faces)
        faces = [replace(f, landmarks=self._follow(image, f.track_id, f.box, tracks.frame_index))
                 for f in tracks.faces]
        self._forget(tracks.frame_index)
        return replace(tracks, faces=faces)

    def landmarks_for(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """``(468, 3)`` float32 landmarks in ``image`` pixels of the face in ``box``, or None
        (the static way: the mesh detects the face in the crop)."""
        h, w = image.shape[:2]
        region = _pixel_region(self._square(box), w, h)
        return None if region is None else self._measure(self._mesh, image, region, box)

    # -- video mode --------------------------------------------------------------------------
    def _follow(self, image: np.ndarray, track_id: str, box: Box, index: int) -> np.ndarray | None:
        h, w = image.shape[:2]
        follower = self._followers.get(track_id)
        if follower is not None and follower.mesh is None:
            # Lost: measured the static way until the face is found again (starting a video-mode
            # mesh costs ~25 ms, too much to repeat on every frame of a turned-away face).
            follower.last_seen = index
            found = self.landmarks_for(image, box)
            if found is not None:
                del self._followers[track_id]  # a fresh mesh follows it from the next frame
            return found
        if follower is not None and not _still_fits(follower.square, box, float(self.config.expand)):
            # The face left its crop: the previous landmarks say nothing about the new one.
            self._release(track_id)
            follower = None
        if follower is None:
            if sum(f.mesh is not None for f in self._followers.values()) >= self.config.max_followers:
                return self.landmarks_for(image, box)
            square = self._square(box)
            region = _pixel_region(square, w, h)
            if region is None:
                return None
            follower = _Follower(self._new_mesh(static=False), square, region)
            self._followers[track_id] = follower
        follower.last_seen = index
        found = self._measure(follower.mesh, image, follower.region, box)
        if found is None:
            # Lost, or following a neighbour's face: measure this frame the static way.
            follower.mesh.close()
            follower.mesh = None
            found = self.landmarks_for(image, box)
            if found is not None:
                del self._followers[track_id]
        return found

    def _release(self, track_id: str) -> None:
        follower = self._followers.pop(track_id)
        if follower.mesh is not None:
            follower.mesh.close()

    def _forget(self, index: int) -> None:
        for tid in [t for t, f in self._followers.items() if index - f.last_seen > self.config.forget_after]:
            self._release(tid)

    # -- one crop ----------------------------------------------------------------------------
    def _square(self, box: Box) -> Box:
        return square_box(expand_box(box, float(self.config.expand)))

    def _measure(self, mesh, image: np.ndarray, region: tuple[int, int, int, int], box: Box) -> np.ndarray | None:
        """Run ``mesh`` on ``region`` of ``image``; the landmarks that overlap ``box`` best, or None."""
        x0, y0, x1, y1 = region
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        result = mesh.process(crop)
        best, best_iou = None, float(self.config.min_iou)
        offset = np.array([x0, y0, 0.0], np.float32)
        for face in result.multi_face_landmarks or []:
            pts = mesh_points(face, x1 - x0, y1 - y0)
            if pts is None:
                continue
            pts += offset
            lo, hi = pts[:, :2].min(axis=0), pts[:, :2].max(axis=0)
            mesh_box = Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
            iou = float(iou_matrix([mesh_box], [box])[0, 0])
            if iou >= best_iou:
                best, best_iou = pts, iou
        return best


def _pixel_region(square: Box, w: int, h: int) -> tuple[int, int, int, int] | None:
    """Integer crop ``(x0, y0, x1, y1)`` of ``square`` clipped to a ``w`` x ``h`` frame, or None if tiny."""
    region = clip_box(square, w, h)
    if region is None:
        return None
    x0, y0 = int(np.floor(region.x)), int(np.floor(region.y))
    x1, y1 = int(np.ceil(region.x + region.w)), int(np.ceil(region.y + region.h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def _still_fits(square: Box, box: Box, expand: float) -> bool:
    """Whether a face now at ``box`` is still well framed by the crop ``square`` made for it:
    centre within 10% of the crop's side, size within 15%."""
    side = square.w
    want = max(box.w, box.h) * (1.0 + expand)
    dx = abs((box.x + box.w / 2) - (square.x + side / 2))
    dy = abs((box.y + box.h / 2) - (square.y + side / 2))
    return dx <= 0.1 * side and dy <= 0.1 * side and 0.85 * side <= want <= 1.15 * side
