"""``faces.landmarks``: MediaPipe Face Mesh on every tracked face."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avflow import Box, Node, NodeContext, Payload, Port, TrackedFaces, VideoFrame, param

from .._common import FrameJoin, SpeechSpans
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
    every_n: int = param(1, "run the mesh on every N-th frame only; the landmarks of the frames in between "
                            "are interpolated linearly between the measured frames on either side (None "
                            "where either side has none)", min=1, max=8)
    interpolate: bool = param(True, "every_n > 1: frames in between get landmarks interpolated from the "
                                    "measured frames around them; false: None")
    speech_margin: float = param(1.0, "with speech connected: frames farther than this (s) from any speech "
                                      "get no mesh (landmarks None)", min=0.0, max=10.0)
    threads: int = param(1, "video mode: the faces of a frame are measured by this many threads at once "
                             "(each face has its own mesh; MediaPipe works in its own threads, without "
                             "the GIL)", min=1, max=16)


@dataclass
class _Pending:
    """A frame's tracks on their way out: measured (sampled frames), or waiting to be interpolated."""

    tracks: TrackedFaces
    frame: VideoFrame | None  # sampled frames, until measured
    sampled: bool
    landmarks: dict[str, np.ndarray | None] | None = None  # by track id, once measured


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
    each): a crowd beyond that is measured the static way. The followed faces of a frame can be
    measured by ``threads`` threads at once. The default is one: MediaPipe already works in its
    own threads (the calling thread spends 0.5 of a mesh's 4 CPU ms), and on 2 cores shared with
    the rest of the diarize graph two callers cost more CPU (3 faces: 13.6-15.9 instead of 10.9-
    11.3 ms a frame) for no faster frames; with more cores than nodes busy, raise it.

    Lip evidence seldom needs every frame or every second. With ``every_n`` = N > 1 the mesh runs
    on every N-th frame (by frame index) and the landmarks in between are interpolated linearly
    from the measured frames on both sides, so every frame still gets landmarks (a face measured
    on one side only gets None): the mesh's cost divided by N, at the price of N - 1 frames of
    extra latency. With ``speech`` connected (``voice.activity``'s SpeechActivity, or any payload
    with a bool array ``speech``, one value per ``hop`` seconds from its ``time``), frames farther
    than ``speech_margin`` seconds from any speech get no mesh at all (landmarks None): where
    nobody speaks the lips are no evidence. A frame then waits until the speech decisions reach
    ``speech_margin`` past it.

    Frames and tracks may arrive out of step (the tracker lags): frames are buffered by index
    (at most ``max_pending``) and tracks are emitted in order, one out per TrackedFaces in.

    Ports:
      - in ``frames`` (VideoFrame): the video the tracks were made from.
      - in ``tracks`` (TrackedFaces): tracked faces per frame.
      - in ``speech`` (Payload, optional): speech activity; no mesh far from speech.
      - out ``tracks`` (TrackedFaces): the same, with ``landmarks`` set.

    Params: ``expand``, ``min_confidence``, ``min_iou``, ``max_pending``, ``video_mode``,
    ``forget_after``, ``max_followers``, ``every_n``, ``speech_margin``, ``threads``.

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
        "speech": Port(Payload, "speech activity (voice.activity): bool ``speech`` per ``hop`` s from ``time``",
                       optional=True),
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
        self._queue: deque[_Pending] = deque()
        self._last_sample: _Pending | None = None  # the latest measured sampled frame emitted
        self._pool = None  # made when a frame first has several followed faces
        self._gated = "speech" in ctx.connected_inputs
        self._speech = SpeechSpans()
        self.meshed = 0  # frames the mesh ran on (for tests and profiles)

    def close(self, ctx: NodeContext) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
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
        if port == "speech":
            self._speech.add(item)
        else:
            self._queue_pairs(self.join.add(port, item))
        return self._advance(final=False)

    def end(self, port: str, ctx: NodeContext):
        if port == "speech":
            self._speech.end()
            return self._advance(final=False)
        return None

    def finish(self, ctx: NodeContext):
        self._speech.end()
        self._queue_pairs(self.join.flush())
        return self._advance(final=True)

    # -- which frames are measured ----------------------------------------------------------
    def _queue_pairs(self, pairs) -> None:
        n = int(self.config.every_n)
        for frame, tracks in pairs:
            sampled = tracks.frame_index % n == 0
            # Frames in between are never measured: their pixels are not kept.
            self._queue.append(_Pending(tracks, frame if sampled else None, sampled))

    def _wanted(self, t: float, final: bool) -> bool | None:
        """Whether the lips of a frame at ``t`` s matter (speech within the margin); None: not known yet."""
        if not self._gated:
            return True
        if final:
            self._speech.end()
        return self._speech.near(t, float(self.config.speech_margin))

    def _advance(self, final: bool):
        """Measure the sampled frames that can be, then emit every frame that is complete, in order."""
        for item in self._queue:
            if not item.sampled or item.landmarks is not None:
                continue
            wanted = self._wanted(item.tracks.time, final)
            if wanted is None:
                break  # later frames wait too: the meshes follow the faces in frame order
            item.landmarks = self._measure_frame(item.frame, item.tracks) if wanted else {}
            item.frame = None
        out = []
        while self._queue:
            item = self._queue[0]
            if item.sampled:
                if item.landmarks is None:
                    break
                self._last_sample = item
                lms = item.landmarks
            else:
                nxt = next((q for q in self._queue if q.sampled), None)
                if nxt is None and not final:
                    break
                if nxt is not None and nxt.landmarks is None:
                    break
                lms = self._between(item.tracks, self._last_sample, nxt) if self.config.interpolate else {}
            self._queue.popleft()
            out.append(replace(item.tracks, faces=[replace(f, landmarks=lms.get(f.track_id))
                                                   for f in item.tracks.faces]))
        return {"tracks": out} if out else None

    @staticmethod
    def _between(tracks: TrackedFaces, before: _Pending | None, after: _Pending | None) -> dict:
        """Landmarks of an unmeasured frame: linear between the measured frames around it."""
        if before is None or after is None:
            return {}
        a, b, i = before.tracks.frame_index, after.tracks.frame_index, tracks.frame_index
        w = (i - a) / (b - a)
        out = {}
        for f in tracks.faces:
            p, q = before.landmarks.get(f.track_id), after.landmarks.get(f.track_id)
            if p is not None and q is not None:
                out[f.track_id] = (p + (q - p) * np.float32(w)).astype(np.float32)
        return out

    def _measure_frame(self, frame: VideoFrame | None, tracks: TrackedFaces) -> dict[str, np.ndarray | None]:
        out = {f.track_id: None for f in tracks.faces}
        if frame is not None and tracks.faces:  # no frame: FrameJoin has logged it
            self.meshed += 1
            image = frame.image
            if not self.config.video_mode:
                out = {f.track_id: self.landmarks_for(image, f.box) for f in tracks.faces}
            else:
                out = self._follow_all(image, tracks.faces, tracks.frame_index)
        if self.config.video_mode:
            self._forget(tracks.frame_index)
        return out

    def landmarks_for(self, image: np.ndarray, box: Box) -> np.ndarray | None:
        """``(468, 3)`` float32 landmarks in ``image`` pixels of the face in ``box``, or None
        (the static way: the mesh detects the face in the crop)."""
        h, w = image.shape[:2]
        region = _pixel_region(self._square(box), w, h)
        return None if region is None else self._measure(self._mesh, image, region, box)

    # -- video mode --------------------------------------------------------------------------
    def _follow_all(self, image: np.ndarray, faces, index: int) -> dict[str, np.ndarray | None]:
        """Landmarks of every face of a frame, each followed by its own video-mode mesh. The
        followers are chosen one face after the other, then their meshes run side by side
        (``threads``), then the faces they lost are measured the static way: the same results as
        one face after the other."""
        h, w = image.shape[:2]
        plans: list[tuple[Any, _Follower | None, str]] = []
        for face in faces:
            tid, box = face.track_id, face.box
            follower = self._followers.get(tid)
            if follower is not None and follower.mesh is None:
                # Lost: measured the static way until the face is found again (starting a video-mode
                # mesh costs ~25 ms, too much to repeat on every frame of a turned-away face).
                follower.last_seen = index
                plans.append((face, follower, "lost"))
                continue
            if follower is not None and not _still_fits(follower.square, box, float(self.config.expand)):
                # The face left its crop: the previous landmarks say nothing about the new one.
                self._release(tid)
                follower = None
            if follower is None:
                if sum(f.mesh is not None for f in self._followers.values()) >= self.config.max_followers:
                    plans.append((face, None, "static"))
                    continue
                square = self._square(box)
                region = _pixel_region(square, w, h)
                if region is None:
                    plans.append((face, None, "none"))
                    continue
                follower = _Follower(self._new_mesh(static=False), square, region)
                self._followers[tid] = follower
            follower.last_seen = index
            plans.append((face, follower, "follow"))
        follows = [(face, fo) for face, fo, mode in plans if mode == "follow"]
        found = self._map(lambda pair: self._measure(pair[1].mesh, image, pair[1].region, pair[0].box), follows)
        measured = {face.track_id: lm for (face, _), lm in zip(follows, found)}
        out: dict[str, np.ndarray | None] = {}
        for face, follower, mode in plans:
            tid = face.track_id
            if mode == "none":
                out[tid] = None
            elif mode == "static":
                out[tid] = self.landmarks_for(image, face.box)
            elif mode == "lost" or measured[tid] is None:
                if mode == "follow":
                    # Lost, or following a neighbour's face: measure this frame the static way.
                    follower.mesh.close()
                    follower.mesh = None
                out[tid] = self.landmarks_for(image, face.box)
                if out[tid] is not None:
                    del self._followers[tid]  # a fresh mesh follows it from the next frame
            else:
                out[tid] = measured[tid]
        return out

    def _map(self, fn, items: list) -> list:
        """``fn`` over ``items``, on the node's threads when there are several."""
        if len(items) < 2 or self.config.threads < 2:
            return [fn(x) for x in items]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(int(self.config.threads), thread_name_prefix="landmarks")
        return list(self._pool.map(fn, items))

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
