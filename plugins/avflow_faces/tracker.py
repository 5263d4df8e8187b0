"""The IoU face tracker behind ``faces.track``, usable on its own (no node, no MediaPipe).

.. code-block:: python

    tracker = IoUTracker(min_iou=0.3, max_missed=10, min_track_len=5)
    for dets in detections:                      # FaceDetections, in frame order
        for tracked in tracker.push(dets):       # TrackedFaces, `tracker.delay` frames later
            ...
    for tracked in tracker.flush():              # end of stream
        ...

What it does that simple trackers get wrong:

- one-to-one matching (Hungarian on IoU, :func:`scipy.optimize.linear_sum_assignment`): a
  detection is never given to two tracks, a track never takes two detections;
- a face that appears later starts a new track; a face that leaves ends its track once it has
  been missed for more than ``max_missed`` frames;
- a face missed for at most ``max_missed`` frames and found again keeps its track, and the
  missing frames get boxes interpolated linearly between the two detections
  (``FaceTrack.interpolated = True``);
- a track shorter than ``min_track_len`` frames (first to last detection) is dropped entirely,
  never shown, and takes no id: ids ``face_0, face_1, ...`` are given in order of confirmation
  and stay contiguous over the kept tracks;
- a scene cut ends every track (the faces after the cut get new tracks).

Output is held back by :attr:`IoUTracker.delay` frames so that every decision (kept or dropped,
interpolated boxes) is final when a frame is emitted; memory is that window, never the video.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from avflow import Box, FaceDetections, FaceTrack, InputError, TrackedFaces

from .geometry import interpolate_gap, iou_matrix


@dataclass
class _Track:
    key: int  # internal serial number
    first: int  # frame index of the first detection
    last: int  # frame index of the last detection
    box: Box  # last detected box
    public: str | None = None  # "face_N" once confirmed


@dataclass
class _Slot:
    """One frame waiting in the output window."""

    frame_index: int
    pts: int
    time_base: Fraction
    width: int
    height: int
    scene_cut: bool
    boxes: dict[int, tuple[_Track, Box, bool]] = field(default_factory=dict)  # key -> (track, box, interpolated)


class IoUTracker:
    """Streaming IoU tracker (see the module docstring).

    :param min_iou: least IoU between a track's last box and a detection to continue the track.
    :param max_missed: frames a track may go undetected and still continue (gaps this long or
        shorter are interpolated); one more and the track ends.
    :param min_track_len: least number of frames from a track's first to its last detection for
        the track to be kept.
    :param id_prefix: public ids are ``f"{id_prefix}{n}"``.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 10, min_track_len: int = 5,
                 id_prefix: str = "face_"):
        if not 0.0 < min_iou <= 1.0:
            raise InputError(f"min_iou must be in (0, 1], got {min_iou!r}")
        if max_missed < 0:
            raise InputError(f"max_missed must be >= 0, got {max_missed!r}")
        if min_track_len < 1:
            raise InputError(f"min_track_len must be >= 1, got {min_track_len!r}")
        self.min_iou = float(min_iou)
        self.max_missed = int(max_missed)
        self.min_track_len = int(min_track_len)
        self.id_prefix = id_prefix
        self._active: list[_Track] = []
        self._window: deque[_Slot] = deque()
        self._serial = 0
        self._confirmed = 0
        self._last_index: int | None = None

    @property
    def delay(self) -> int:
        """Frames between a frame's detections coming in and its TrackedFaces going out.

        A track that starts at frame j is confirmed by a detection at j + min_track_len - 1 or
        ends, unconfirmed, by frame j + min_track_len - 1 + max_missed; gaps before j are filled
        by frame j + max_missed. So frame j is final once frame j + delay has been seen.
        """
        return self.max_missed + self.min_track_len - 1

    @property
    def window_size(self) -> int:
        """Frames currently held back (at most ``delay + 1``)."""
        return len(self._window)

    @property
    def n_confirmed(self) -> int:
        return self._confirmed

    def push(self, dets: FaceDetections, scene_cut: bool = False) -> list[TrackedFaces]:
        """Take one frame's detections; return the frames that became final, in order."""
        i = int(dets.frame_index)
        if self._last_index is not None and i <= self._last_index:
            raise InputError(f"detections for frame {i} came after frame {self._last_index}; "
                             "FaceDetections must arrive in increasing frame_index order")
        self._last_index = i
        slot = _Slot(i, dets.pts, dets.time_base, int(dets.width), int(dets.height), bool(scene_cut))
        self._window.append(slot)
        if scene_cut:
            for track in self._active:
                self._end(track)
            self._active = []
        self._step(slot, list(dets.boxes))
        return self._emit(upto=i - self.delay)

    def flush(self) -> list[TrackedFaces]:
        """End of stream: decide every open track and emit the rest of the window."""
        for track in self._active:
            self._end(track)
        self._active = []
        return self._emit(upto=None)

    # -- internals -------------------------------------------------------------------------
    def _step(self, slot: _Slot, boxes: list[Box]) -> None:
        i = slot.frame_index
        tracks = self._active
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if tracks and boxes:
            from scipy.optimize import linear_sum_assignment

            iou = iou_matrix([t.box for t in tracks], boxes)
            cost = np.where(iou >= self.min_iou, 1.0 - iou, 1e6)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.min_iou:
                    matched_t.add(int(r))
                    matched_d.add(int(c))
                    self._extend(tracks[r], boxes[c], slot)
        survivors = []
        for k, track in enumerate(tracks):
            if k in matched_t or i - track.last <= self.max_missed:
                survivors.append(track)
            else:
                self._end(track)
        for c, box in enumerate(boxes):
            if c in matched_d:
                continue
            track = _Track(key=self._serial, first=i, last=i, box=box)
            self._serial += 1
            slot.boxes[track.key] = (track, box, False)
            survivors.append(track)
        self._active = survivors
        # Confirm in a stable order: earlier start first, then left to right, top to bottom.
        for track in sorted(survivors, key=lambda t: (t.first, t.box.x, t.box.y, t.key)):
            if track.public is None and track.last - track.first + 1 >= self.min_track_len:
                track.public = f"{self.id_prefix}{self._confirmed}"
                self._confirmed += 1

    def _extend(self, track: _Track, box: Box, slot: _Slot) -> None:
        gap = slot.frame_index - track.last - 1
        if gap > 0:
            filled = interpolate_gap(track.box, box, gap)
            for s in self._window:
                k = s.frame_index - track.last - 1
                if 0 <= k < gap:
                    s.boxes[track.key] = (track, filled[k], True)
        slot.boxes[track.key] = (track, box, False)
        track.last = slot.frame_index
        track.box = box

    def _end(self, track: _Track) -> None:
        if track.public is None:  # too short: it never existed
            for s in self._window:
                s.boxes.pop(track.key, None)

    def _emit(self, upto: int | None) -> list[TrackedFaces]:
        out = []
        while self._window and (upto is None or self._window[0].frame_index <= upto):
            s = self._window.popleft()
            faces = []
            for track, box, interp in s.boxes.values():
                if track.public is not None:  # undecided cannot happen past `delay`
                    faces.append(FaceTrack(track_id=track.public, box=box, interpolated=interp))
            faces.sort(key=lambda f: int(f.track_id[len(self.id_prefix):]))
            out.append(TrackedFaces(pts=s.pts, time_base=s.time_base, frame_index=s.frame_index,
                                    width=s.width, height=s.height, faces=faces, scene_cut=s.scene_cut))
        return out
