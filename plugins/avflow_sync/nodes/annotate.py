"""``sync.annotate``: draw the face tracks and the active speaker on the video."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from avflow import InputError, Node, Port, Record, TrackedFaces, VideoFrame, param


@dataclass(frozen=True)
class AnnotateConfig:
    thickness: int = param(0, "box line width in pixels (0: from the frame size)", min=0)
    show_scores: bool = param(True, "write each track's score beside its box")
    max_pending: int = param(400, "frames held while waiting for their decisions (the pipeline's latency)",
                             min=1)


class Annotate(Node):
    """Draw every tracked face (thin, grey) and the active speaker (thick, green, labelled).

    Frames wait until their tracks and their speaker decision arrive (the decision lags the
    video by the scorer's and smoother's windows); at most ``max_pending`` are held.

    Ports:
      - in ``frames`` (VideoFrame), ``tracks`` (TrackedFaces), ``active`` (Record from ``sync.speaker``).
      - out ``frames`` (VideoFrame): annotated copies, same timestamps, in order.

    Example::

        annotate:
          type: sync.annotate
          inputs: {frames: decode.video, tracks: track.tracks, active: speaker.active}
    """

    type = "sync.annotate"
    Config = AnnotateConfig
    inputs = {
        "frames": Port(VideoFrame, "the input video"),
        "tracks": Port(TrackedFaces, "tracked faces per frame"),
        "active": Port(Record, "speaker decision per frame"),
    }
    outputs = {"frames": Port(VideoFrame, "annotated frames")}
    queue_size = 32

    def open(self, ctx):
        self._frames: dict[int, VideoFrame] = {}
        self._tracks: dict[int, TrackedFaces] = {}
        self._active: dict[int, dict] = {}
        self._next: int | None = None
        self._decisions_done = False

    def process(self, port, item, ctx):
        if port == "frames":
            self._frames[item.index] = item
            if self._next is None:
                self._next = item.index
            if len(self._frames) > self.config.max_pending:
                raise InputError(f"more than {self.config.max_pending} frames wait for their speaker decision "
                                 f"(oldest {min(self._frames)}); raise sync.annotate's max_pending")
        elif port == "tracks":
            self._tracks[item.frame_index] = item
        else:
            self._active[int(item.data["frame_index"])] = item.data
        return {"frames": self._ready()}

    def end(self, port, ctx):
        if port == "active":
            self._decisions_done = True
        return {"frames": self._ready()}

    def finish(self, ctx):
        self._decisions_done = True
        return {"frames": self._ready(final=True)}

    def _ready(self, final: bool = False) -> list[VideoFrame]:
        out = []
        while self._next is not None and self._next in self._frames:
            i = self._next
            decided = i in self._active
            if not decided and not (self._decisions_done and (i in self._tracks or final)):
                break
            frame = self._frames.pop(i)
            out.append(self._draw(frame, self._tracks.pop(i, None), self._active.pop(i, None)))
            self._next = i + 1
        return out

    def _draw(self, frame: VideoFrame, tracks: TrackedFaces | None, decision: dict | None) -> VideoFrame:
        import cv2

        img = np.ascontiguousarray(frame.image.copy())
        h, w = img.shape[:2]
        t = self.config.thickness or max(2, int(round(min(h, w) / 200)))
        active = decision.get("active") if decision else None
        scores = (decision or {}).get("scores") or {}
        font = max(0.4, min(h, w) / 900)
        for face in (tracks.faces if tracks else []):
            b = face.box
            p1, p2 = (int(b.x), int(b.y)), (int(b.x + b.w), int(b.y + b.h))
            is_active = face.track_id == active
            color = (40, 220, 60) if is_active else (170, 170, 170)
            cv2.rectangle(img, p1, p2, color, t * 2 if is_active else max(1, t // 2), cv2.LINE_AA)
            label = face.track_id + (" speaking" if is_active else "")
            score = scores.get(face.track_id)
            if self.config.show_scores and score is not None:
                label += f" {score:.2f}"
            cv2.putText(img, label, (p1[0], max(12, p1[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, font, color,
                        max(1, t // 2), cv2.LINE_AA)
        return replace(frame, image=img)
