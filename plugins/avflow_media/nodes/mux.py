"""``media.mux``: encode frames and audio into an mp4 with correct A/V timing."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from avflow import AudioChunk, File, Node, Port, VideoFrame, param

from ..writer import MediaWriter


@dataclass(frozen=True)
class MuxConfig:
    path: Path = param(Path("output.mp4"), "output file, relative to the output directory")
    fps: float | None = param(None, "constant output frame rate (None: keep each frame's timestamp)", min=0.1)
    crf: int = param(18, "H.264 quality, 0 (lossless) to 51 (worst)", min=0, max=51)
    preset: str = param("veryfast", "x264 speed preset",
                        choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"))
    audio_bitrate: int = param(128_000, "AAC bit rate in bit/s", min=8000)
    fragmented: bool = param(False, "write a fragmented mp4 under its final name as it goes (a fragment per "
                                    "second, playable while written: a live preview) instead of atomically")


class Mux(Node):
    """Encode video frames (H.264) and audio (AAC) into an mp4, A/V aligned by timestamps.

    The file's time 0 is the earliest of the first frame and the first audio sample, so an
    offset between the streams in the input is kept. Written atomically: the file appears under
    its final name only when the run succeeds; with ``fragmented`` it is written under its final
    name as it goes instead, a fragment per second, playable while it grows.

    Ports:
      - in ``video`` (VideoFrame): frames in display order.
      - in ``audio`` (AudioChunk, optional): consecutive audio chunks.
      - out ``file`` (File): the written mp4.

    Example::

        mux:
          type: media.mux
          inputs: {video: decode.video, audio: decode.audio}
          params: {path: transcoded.mp4}
    """

    type = "media.mux"
    Config = MuxConfig
    inputs = {
        "video": Port(VideoFrame, "frames to encode"),
        "audio": Port(AudioChunk, "audio to encode", optional=True),
    }
    outputs = {"file": Port(File, "the written mp4")}
    queue_size = 32

    def open(self, ctx) -> None:
        self._writer: MediaWriter | None = None
        self._video: list[VideoFrame] = []  # held only until the first audio chunk is seen
        self._audio: list[AudioChunk] = []
        self._audio_done = "audio" not in ctx.connected_inputs
        self._rate_hint = 25.0

    def _start(self, ctx) -> None:
        first_v = self._video[0]
        times = [first_v.time] + ([self._audio[0].time] if self._audio else [])
        a = self._audio[0] if self._audio else None
        if len(self._video) > 1:
            dt = self._video[1].time - self._video[0].time
            self._rate_hint = 1.0 / dt if dt > 0 else 25.0
        elif first_v.duration:
            self._rate_hint = 1.0 / float(first_v.duration)
        self._writer = MediaWriter(
            ctx.output_path(self.config.path), fps=self.config.fps, rate_hint=self._rate_hint,
            audio_rate=a.sample_rate if a else None, audio_channels=min(a.channels, 2) if a else 1,
            origin=min(times), crf=self.config.crf, preset=self.config.preset,
            audio_bitrate=self.config.audio_bitrate, fragmented=self.config.fragmented)
        self._drain()

    def _drain(self) -> None:
        # Feed audio up to the latest video time so the two streams stay interleaved.
        horizon = self._video[-1].time if self._video else float("inf")
        for v in self._video:
            self._writer.add_video(v.image, v.time)
        self._video.clear()
        while self._audio and (self._audio[0].time <= horizon or self._audio_done):
            a = self._audio.pop(0)
            self._writer.add_audio(a.samples, a.time)

    def process(self, port, item, ctx):
        if port == "video":
            self._video.append(item)
        else:
            self._audio.append(item)
        if self._writer is None:
            # Stream parameters must be known before the header is written.
            if self._video and (self._audio or self._audio_done) and len(self._video) >= 2:
                self._start(ctx)
            return None
        self._drain()
        return None

    def end(self, port, ctx):
        if port == "audio":
            self._audio_done = True
        return None

    def finish(self, ctx):
        self._audio_done = True
        if not self._video and self._writer is None:
            raise ValueError("no video frames arrived; nothing to write")
        if self._writer is None:
            self._start(ctx)
        self._drain()
        path = self._writer.close()
        ctx.logger.info("wrote %s (%d frames, %.2f s audio)", path, self._writer.frames_written,
                        self._writer.samples_written / (self._writer.audio_rate or 1))
        self._writer = None
        return {"file": File(pts=0, time_base=Fraction(1, 1), path=path, kind="video/mp4")}

    def close(self, ctx) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.abort()  # failed or cancelled run: no partial file under the final name
            self._writer = None
