"""``sync.annotate``: draw the face tracks and the active speaker on the video."""

from __future__ import annotations

from collections import deque
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
    preview_height: int = param(0, "draw on frames scaled down to this height (aspect kept; never scaled "
                                   "up); 0: the input's size", min=0)


class Annotate(Node):
    """Draw every tracked face (thin, grey) and the active speaker (thick, green, labelled).

    Frames wait until their tracks and their speaker decision arrive (the decision lags the
    video by the scorer's and smoother's windows); at most ``max_pending`` are held. Decisions
    made only at the end of the input (``sync.assign``) would hold every frame: then leave
    ``frames`` unconnected and set ``video``; the node reads the file again (PyAV) once the
    decisions are in and streams the annotated frames, and the original audio on ``audio``.
    The active face is labelled with its track id and, with voices, the voice heard.

    ``preview_height`` draws on frames scaled down to that height (even sizes, for H.264): the
    preview costs a fraction to draw and to encode (a 720p frame read again, drawn and encoded
    costs ~4x what it does at 360p). Boxes and labels are drawn at the preview's scale.

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
        from avflow_faces import FrameJoin


        self._tracks: dict[int, TrackedFaces] = {}  # re-read mode: every frame's, until drawn
        self._active: dict[int, dict] = {}
        self._paired: deque[tuple[VideoFrame, TrackedFaces]] = deque()  # waiting for their decision
        self._decisions_done = False
        self._reread = "frames" not in ctx.connected_inputs
        if self._reread and self.config.video is None:
            raise InputError("sync.annotate: connect frames, or set video to read the input again")
        self._join = FrameJoin(self.config.max_pending, "frames", "tracks", logger=ctx.logger,
                               on_missing="it is drawn without boxes")

    def process(self, port, item, ctx):
        if port == "active":
            self._active[int(item.data["frame_index"])] = item.data
        elif self._reread:
            if port == "tracks":
                self._tracks[item.frame_index] = item
            return None
        else:
            self._pair(self._join.add(port, item))
        return self._ready()

    def _pair(self, pairs) -> None:
        self._paired.extend((f, t) for f, t in pairs if f is not None)
        if len(self._paired) > self.config.max_pending:
            raise InputError(f"more than {self.config.max_pending} frames wait for their speaker decision "
                             f"(oldest {self._paired[0][0].index}); raise sync.annotate's max_pending, or "
                             "leave frames unconnected and set video (decisions made at the end)")

    def end(self, port, ctx):
        if port == "active":
            self._decisions_done = True
        return None if self._reread else self._ready()

    def finish(self, ctx):
        self._decisions_done = True
        if self._reread:
            return self._read_again(ctx)
        self._pair(self._join.flush())
        return self._ready()

    def _ready(self):
        out = []
        while self._paired and (self._paired[0][0].index in self._active or self._decisions_done):
            frame, tracks = self._paired.popleft()
            out.append(self._draw(frame, tracks, self._active.pop(frame.index, None)))
        return {"frames": out} if out else None

    def _read_again(self, ctx):
        """Decode the input once more, drawing each frame with its decision (a generator)."""
        import av

        with av.open(str(self.config.video)) as container:
            streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
            for s in streams:
                s.thread_type = "AUTO"
            if streams and streams[0].type == "video":
                cc = streams[0].codec_context
                if self._out_size(cc.width, cc.height) != (cc.width, cc.height):
                    # A scaled-down preview does not show the deblocking filter's work: skip it
                    # (a quarter of the decoding).
                    cc.options = {**cc.options, "skip_loop_filter": "all"}
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
                    vf = VideoFrame(pts=pts, time_base=Fraction(frame.time_base), image=self._rgb(frame),
                                    index=index)
                    yield {"frames": self._draw(vf, self._tracks.pop(index, None), self._active.pop(index, None))}
                    index += 1

    def _out_size(self, w: int, h: int) -> tuple[int, int]:
        """The drawn size for ``w`` x ``h`` input: scaled down to ``preview_height``, even sides."""
        target = int(self.config.preview_height)
        if not target or target >= h:
            return w, h
        return max(2, int(round(w * target / h / 2)) * 2), max(2, target - target % 2)

    def _rgb(self, frame) -> np.ndarray:
        """A decoded frame as RGB at the drawn size. yuv420p (nearly every H.264 file) is scaled
        plane by plane with OpenCV's area filter before the colour conversion, ~4x cheaper than
        converting at full size or than swscale's scaling."""
        import cv2

        w, h = frame.width, frame.height
        ow, oh = self._out_size(w, h)
        if (ow, oh) == (w, h):
            return frame.to_ndarray(format="rgb24")
        if frame.format.name != "yuv420p" or w % 2 or h % 2:
            return frame.to_ndarray(width=ow, height=oh, format="rgb24", interpolation="AREA")
        yuv = frame.to_ndarray(format="yuv420p")  # (3h/2, w): Y, then U and V (h/2 x w/2 each) packed
        chroma = yuv[h:].reshape(-1)
        n = (h // 2) * (w // 2)
        u, v = chroma[:n].reshape(h // 2, w // 2), chroma[n:2 * n].reshape(h // 2, w // 2)
        small = np.empty((oh * 3 // 2, ow), np.uint8)
        small[:oh] = cv2.resize(yuv[:h], (ow, oh), interpolation=cv2.INTER_AREA)
        q = (oh // 2) * (ow // 2)
        out = small[oh:].reshape(-1)
        out[:q] = cv2.resize(u, (ow // 2, oh // 2), interpolation=cv2.INTER_AREA).reshape(-1)
        out[q:] = cv2.resize(v, (ow // 2, oh // 2), interpolation=cv2.INTER_AREA).reshape(-1)
        return cv2.cvtColor(small, cv2.COLOR_YUV2RGB_I420)

    def _draw(self, frame: VideoFrame, tracks: TrackedFaces | None, decision: dict | None) -> VideoFrame:
        import cv2

        img = frame.image
        sw = tracks.width if tracks else img.shape[1]
        ow, oh = self._out_size(img.shape[1], img.shape[0])
        if (ow, oh) != (img.shape[1], img.shape[0]):
            img = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_AREA)
        else:
            img = np.ascontiguousarray(img.copy())
        h, w = img.shape[:2]
        k = w / sw if sw else 1.0  # boxes are in pixels of the input
        t = self.config.thickness or max(2, int(round(min(h, w) / 200)))
        active = decision.get("active") if decision else None
        scores = (decision or {}).get("scores") or {}
        font = max(0.4, min(h, w) / 900)
        for face in (tracks.faces if tracks else []):
            b = face.box
            p1, p2 = (int(b.x * k), int(b.y * k)), (int((b.x + b.w) * k), int((b.y + b.h) * k))
            is_active = face.track_id == active
            color = (40, 220, 60) if is_active else (170, 170, 170)
            cv2.rectangle(img, p1, p2, color, t * 2 if is_active else max(1, t // 2), cv2.LINE_AA)
            voice = decision.get("voice") if decision else None
            label = face.track_id + ((f" speaking ({voice})" if voice else " speaking") if is_active else "")
            score = scores.get(face.track_id)
            if self.config.show_scores and score is not None:
                label += f" {score:.2f}"
            # On a filled box in the face's colour, so that the label reads on any background
            # (grey text alone vanished on light walls); dark text on both colours.
            weight = max(1, t // 2)
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, weight)
            pad = max(2, t)
            x0 = min(max(0, p1[0]), max(0, w - tw - 2 * pad))
            y1 = p1[1] if p1[1] - th - base - 2 * pad >= 0 else min(h, p2[1] + th + base + 2 * pad)
            y0 = y1 - th - base - 2 * pad
            cv2.rectangle(img, (x0, y0), (x0 + tw + 2 * pad, y1), color, cv2.FILLED)
            cv2.putText(img, label, (x0 + pad, y1 - pad - base), cv2.FONT_HERSHEY_SIMPLEX, font, (20, 20, 20),
                        weight, cv2.LINE_AA)
        return replace(frame, image=img)
