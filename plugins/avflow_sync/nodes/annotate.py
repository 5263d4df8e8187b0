"""``sync.annotate``: draw the face tracks and the active speaker on the video."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from avflow import AudioChunk, InputError, Node, Port, Record, TrackedFaces, VideoFrame, param


@dataclass(frozen=True)
class AnnotateConfig:
    thickness: int = param(0, "box line width in pixels (0: from the frame size)", min=0)
    show_scores: bool = param(True, "write each track's score beside its box")
    max_pending: int = param(400, "frames held while waiting for their decisions (the pipeline's latency)",
                             min=1)
    video: Path | None = param(None, "with ``frames`` unconnected: the input video, read again once every "
                                     "decision is in (for decisions made at the end, as sync.assign's)")


class Annotate(Node):
    """Draw every tracked face (thin, grey) and the active speaker (thick, green, labelled).

    Frames wait until their tracks and their speaker decision arrive (the decision lags the
    video by the scorer's and smoother's windows); at most ``max_pending`` are held. Decisions
    made only at the end of the input (``sync.assign``) would hold every frame: then leave
    ``frames`` unconnected and set ``video``; the node reads the file again (PyAV) once the
    decisions are in and streams the annotated frames, and the original audio on ``audio``.
    The active face is labelled with its track id and, with voices, the voice heard.

    Ports:
      - in ``frames`` (VideoFrame, optional), ``tracks`` (TrackedFaces), ``active`` (Record from
        ``sync.speaker`` or ``sync.assign``).
      - out ``frames`` (VideoFrame): annotated copies, same timestamps, in order.
      - out ``audio`` (AudioChunk): with ``video``, the file's audio as it is (for ``media.mux``).

    Example::

        annotate:
          type: sync.annotate
          inputs: {frames: decode.video, tracks: track.tracks, active: speaker.active}
    """

    type = "sync.annotate"
    Config = AnnotateConfig
    inputs = {
        "frames": Port(VideoFrame, "the input video", optional=True),
        "tracks": Port(TrackedFaces, "tracked faces per frame"),
        "active": Port(Record, "speaker decision per frame"),
    }
    outputs = {"frames": Port(VideoFrame, "annotated frames"),
               "audio": Port(AudioChunk, "the input's audio, when the node reads the video itself")}
    queue_size = 32

    def open(self, ctx):
        self._frames: dict[int, VideoFrame] = {}
        self._tracks: dict[int, TrackedFaces] = {}
        self._active: dict[int, dict] = {}
        self._next: int | None = None
        self._decisions_done = False
        self._reread = "frames" not in ctx.connected_inputs
        if self._reread and self.config.video is None:
            raise InputError("sync.annotate: connect frames, or set video to read the input again")

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
        if self._reread:
            return self._read_again(ctx)
        return {"frames": self._ready(final=True)}

    def _read_again(self, ctx):
        """Decode the input once more, drawing each frame with its decision (a generator)."""
        import av

        with av.open(str(self.config.video)) as container:
            streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
            for s in streams:
                s.thread_type = "AUTO"
            index = 0
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        samples = frame.to_ndarray().astype(np.float32)
                        if not frame.format.is_planar:
                            samples = samples.reshape(-1, len(frame.layout.channels)).T
                        if frame.format.name.startswith(("s16",)):
                            samples = samples / 32768.0
                        elif frame.format.name.startswith(("s32",)):
                            samples = samples / 2147483648.0
                        pts = frame.pts if frame.pts is not None else 0
                        yield {"audio": AudioChunk(pts=pts, time_base=Fraction(frame.time_base),
                                                   samples=np.ascontiguousarray(samples),
                                                   sample_rate=frame.sample_rate)}
                        continue
                    pts = frame.pts if frame.pts is not None else index
                    vf = VideoFrame(pts=pts, time_base=Fraction(frame.time_base), image=frame.to_ndarray(format="rgb24"),
                                    index=index)
                    yield {"frames": self._draw(vf, self._tracks.pop(index, None), self._active.pop(index, None))}
                    index += 1

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
            voice = decision.get("voice") if decision else None
            label = face.track_id + ((f" speaking ({voice})" if voice else " speaking") if is_active else "")
            score = scores.get(face.track_id)
            if self.config.show_scores and score is not None:
                label += f" {score:.2f}"
            cv2.putText(img, label, (p1[0], max(12, p1[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, font, color,
                        max(1, t // 2), cv2.LINE_AA)
        return replace(frame, image=img)
