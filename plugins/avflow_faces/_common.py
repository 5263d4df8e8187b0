"""Helpers shared by the face nodes: input checks and the frames/tracks join."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np

from avflow import InputError, TrackedFaces, VideoFrame


def check_frame(item: Any, port: str) -> np.ndarray:
    """The frame's image as contiguous HxWx3 uint8, or an InputError saying what is wrong."""
    if not isinstance(item, VideoFrame):
        raise InputError(f"port '{port}' expects VideoFrame, got {type(item).__name__}")
    image = item.image
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{getattr(image, 'dtype', type(image).__name__)} array of shape {getattr(image, 'shape', '?')}"
        raise InputError(f"port '{port}': frame {item.index} has a {desc}; expected an HxWx3 uint8 RGB image")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"port '{port}': frame {item.index} is {image.shape[1]}x{image.shape[0]} pixels; "
                         "expected at least 2x2")
    return np.ascontiguousarray(image)


class FrameJoin:
    """Pairs frames and TrackedFaces that arrive on two ports, possibly out of step, by frame index.

    Both streams must come in increasing ``frame_index`` order (the decoder's and the tracker's
    do). ``add_frame`` / ``add_tracks`` return the pairs ``(frame or None, tracks)`` that became
    complete, in frame order. A TrackedFaces whose frame can no longer come (a later frame has
    already arrived) is returned with ``None``; frames no TrackedFaces will ever ask for are
    dropped. At most ``max_pending`` frames are held; more means the two streams do not belong
    together (or one stalls), which raises an InputError instead of filling memory.

    Every pair returned is checked: a frame whose size is not the one its TrackedFaces were made
    for is an InputError (the ports carry different videos), and the first TrackedFaces with
    faces but no frame is logged once on ``logger``, saying ``on_missing`` ("its faces are not
    cropped").
    """

    def __init__(self, max_pending: int, frames_port: str = "frames", tracks_port: str = "tracks", *,
                 logger: logging.Logger | None = None, on_missing: str = "its faces are skipped"):
        self.max_pending = int(max_pending)
        self.frames_port, self.tracks_port = frames_port, tracks_port
        self.logger, self.on_missing = logger, on_missing
        self._warned = False
        self._frames: dict[int, VideoFrame] = {}
        self._tracks: deque[TrackedFaces] = deque()  # waiting for their frame, in arrival order
        self._last_frame = -1  # highest frame index received
        self._last_tracks = -1  # highest TrackedFaces index received
        self.frames_dropped = 0

    def __len__(self) -> int:
        return len(self._frames) + len(self._tracks)

    @property
    def pending_frames(self) -> int:
        return len(self._frames)

    def add(self, port: str, item: Any) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        """An item that arrived on ``port`` (the frames port or the tracks one); a frame is
        checked with :func:`check_frame` first."""
        if port == self.frames_port:
            check_frame(item, port)
            return self.add_frame(item)
        return self.add_tracks(item)

    def add_frame(self, frame: VideoFrame) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        idx = int(frame.index)
        if idx <= self._last_frame:
            raise InputError(f"port '{self.frames_port}': frame index {idx} after {self._last_frame}; "
                             "frames must arrive in increasing index order")
        self._last_frame = idx
        if idx <= self._last_tracks and not any(t.frame_index == idx for t in self._tracks):
            self.frames_dropped += 1  # no TrackedFaces for it will come
        else:
            self._frames[idx] = frame
        out = self._drain()
        if len(self._frames) > self.max_pending:
            raise InputError(
                f"more than {self.max_pending} frames wait on port '{self.frames_port}' for their "
                f"'{self.tracks_port}' (oldest frame {min(self._frames)}, last tracks frame "
                f"{self._last_tracks}): the two ports must carry the same video; raise max_pending "
                "if the tracks stream is legitimately that far behind")
        return out

    def add_tracks(self, tracks: TrackedFaces) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        if not isinstance(tracks, TrackedFaces):
            raise InputError(f"port '{self.tracks_port}' expects TrackedFaces, got {type(tracks).__name__}")
        idx = int(tracks.frame_index)
        if idx <= self._last_tracks:
            raise InputError(f"port '{self.tracks_port}': frame index {idx} after {self._last_tracks}; "
                             "TrackedFaces must arrive in increasing frame order")
        self._last_tracks = idx
        self._tracks.append(tracks)
        return self._drain()

    def flush(self) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        """Both inputs ended: every waiting TrackedFaces, with its frame where it came."""
        out = [(self._frames.pop(t.frame_index, None), t) for t in self._tracks]
        self._tracks.clear()
        self.frames_dropped += len(self._frames)
        self._frames.clear()
        return self._checked(out)

    def _drain(self) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        out = []
        while self._tracks:
            t = self._tracks[0]
            if t.frame_index in self._frames:
                out.append((self._frames.pop(t.frame_index), t))
            elif self._last_frame > t.frame_index:
                out.append((None, t))  # its frame was skipped by the frames stream
            else:
                break
            self._tracks.popleft()
        # Frames older than the last TrackedFaces handled will never be asked for.
        if out:
            done = out[-1][1].frame_index
            for idx in [i for i in self._frames if i < done]:
                del self._frames[idx]
                self.frames_dropped += 1
        return self._checked(out)

    def _checked(self, pairs: list[tuple[VideoFrame | None, TrackedFaces]]) -> list[tuple[VideoFrame | None, TrackedFaces]]:
        for frame, tracks in pairs:
            if frame is None:
                if tracks.faces and not self._warned and self.logger is not None:
                    self.logger.warning("no frame %d on the %s port: %s", tracks.frame_index, self.frames_port,
                                        self.on_missing)
                    self._warned = True
            elif (frame.width, frame.height) != (tracks.width, tracks.height):
                raise InputError(f"frame {frame.index} is {frame.width}x{frame.height} but its tracks are for "
                                 f"{tracks.width}x{tracks.height}: connect the frames the tracks were made from")
        return pairs


class SpeechSpans:
    """Where speech is, from a stream of speech activity, for nodes that skip work far from it.

    ``add(item)`` takes a payload with a bool array ``speech`` (one value per ``hop`` seconds from
    the payload's ``time``: ``voice.activity``'s SpeechActivity); ``near(t, margin)`` says whether
    speech lies within ``margin`` seconds of ``t``, or None while the decisions do not reach
    ``t + margin`` yet (after ``end()``, everything is known). Queries must come in increasing
    ``t`` (spans behind them are forgotten, so memory stays bounded).
    """

    def __init__(self) -> None:
        self._spans: deque[tuple[float, float]] = deque()  # (start, end) s, merged, in order
        self.until = float("-inf")  # decisions are known up to here (s)
        self.ended = False

    def add(self, item: Any) -> None:
        speech = np.asarray(getattr(item, "speech", None) if item is not None else None)
        hop = float(getattr(item, "hop", 0.0) or 0.0)
        if speech.ndim != 1 or speech.dtype != bool or hop <= 0:
            raise InputError(f"port 'speech' takes speech activity (a bool array 'speech' and a 'hop' in "
                             f"seconds, as voice.activity's SpeechActivity), got {type(item).__name__}")
        t0 = float(item.time)
        edges = np.flatnonzero(np.diff(np.concatenate([[False], speech, [False]]).astype(np.int8)))
        for a, b in zip(edges[::2], edges[1::2]):
            start, end = t0 + a * hop, t0 + b * hop
            if self._spans and start <= self._spans[-1][1] + 1e-6:
                self._spans[-1] = (self._spans[-1][0], max(end, self._spans[-1][1]))
            else:
                self._spans.append((start, end))
        self.until = max(self.until, t0 + speech.size * hop)

    def end(self) -> None:
        self.ended = True

    def near(self, t: float, margin: float) -> bool | None:
        if not (self.ended or self.until >= t + margin):
            return None
        while self._spans and self._spans[0][1] < t - margin:
            self._spans.popleft()
        return bool(self._spans) and self._spans[0][0] <= t + margin
