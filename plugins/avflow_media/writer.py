"""A streaming PyAV writer for mp4 (H.264 + AAC), reusable by any plugin that writes video.

.. code-block:: python

    with MediaWriter(ctx.output_path("clip.mp4"), fps=25, audio_rate=16000, audio_channels=1) as w:
        w.add_video(rgb_image, t=frame.time)
        w.add_audio(samples, t=chunk.time)

Times are seconds on the input's timeline; ``origin`` (default: the first time seen) becomes
0 in the file, so audio and video keep their relative offset. The file appears under its final
name only when the writer closes without error (atomic write), unless ``fragmented``: then it
is a fragmented mp4 written under its final name as it goes (a fragment per keyframe, one a
second), playable while it grows, e.g. a live preview.
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from avflow import atomic_path

_FINE_TB = Fraction(1, 90000)  # for variable-frame-rate output: timestamps kept to 1/90000 s


class MediaWriter:
    """Encode RGB frames and float32 audio into one file, streaming, atomically."""

    def __init__(self, path: str | Path, *, fps: float | None = None, rate_hint: float = 25.0,
                 audio_rate: int | None = None, audio_channels: int = 1, origin: float | None = None,
                 codec: str = "libx264", crf: int = 18, preset: str = "veryfast",
                 audio_codec: str = "aac", audio_bitrate: int = 128_000, fragmented: bool = False):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001) if fps else None
        self.rate_hint = Fraction(rate_hint).limit_denominator(1001)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        self.origin = origin
        self.codec, self.crf, self.preset = codec, crf, preset
        self.audio_codec, self.audio_bitrate = audio_codec, audio_bitrate
        self.fragmented = fragmented
        self._stack = contextlib.ExitStack()
        self._container = None
        self._vs = None
        self._as = None
        self._last_vpts: int | None = None
        self._next_apts: int | None = None
        self.frames_written = 0
        self.samples_written = 0
        self.dropped_frames = 0

    # -- setup -----------------------------------------------------------------------------
    def _open(self, width: int, height: int) -> None:
        import av

        if self.fragmented:
            # empty_moov: the header comes first and each keyframe starts a fragment, so readers
            # can play the part written so far
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w", format="mp4",
                                      options={"movflags": "frag_keyframe+empty_moov+default_base_moof",
                                               "flush_packets": "1"})
        else:
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._container = av.open(str(tmp), "w")
        vs = self._container.add_stream(self.codec, rate=self.fps or self.rate_hint)
        # H.264 in yuv420p needs even dimensions.
        vs.width, vs.height = width - width % 2, height - height % 2
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(self.crf), "preset": self.preset}
        if self.fragmented:  # a keyframe (a fragment) about every second
            vs.options = {**vs.options, "g": str(max(1, int(round(float(self.fps or self.rate_hint)))))}
        vs.thread_type = "AUTO"
        if self.fps is None:
            vs.codec_context.time_base = _FINE_TB
            vs.time_base = _FINE_TB
        self._vs = vs
        if self.audio_rate:
            layout = "mono" if self.audio_channels == 1 else "stereo"
            self._as = self._container.add_stream(self.audio_codec, rate=self.audio_rate, layout=layout)
            self._as.bit_rate = self.audio_bitrate

    # -- writing ---------------------------------------------------------------------------
    def add_video(self, image: np.ndarray, t: float) -> None:
        """Append one RGB uint8 frame shown from time ``t`` (seconds)."""
        import av

        if self._container is None:
            self._open(image.shape[1], image.shape[0])
        if self.origin is None:
            self.origin = t
        rel = t - self.origin
        tb = (1 / self.fps) if self.fps else _FINE_TB
        pts = int(round(rel / float(tb)))
        if pts < 0 or (self._last_vpts is not None and pts <= self._last_vpts):
            # Constant-rate output: a frame landing on a tick already written is dropped.
            self.dropped_frames += 1
            return
        self._last_vpts = pts
        import cv2

        w, h = self._vs.width, self._vs.height
        # OpenCV's BT.601 video-range RGB -> I420 matches swscale's default conversion and costs
        # a sixth of handing PyAV RGB to convert (0.75 vs 4.4 ms per 720p frame).
        yuv = cv2.cvtColor(np.ascontiguousarray(image[:h, :w]), cv2.COLOR_RGB2YUV_I420)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = tb
        for packet in self._vs.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def add_audio(self, samples: np.ndarray, t: float) -> None:
        """Append float32 (channels, n) audio starting at time ``t`` (must follow the last chunk)."""
        import av

        if self._as is None:
            return
        if self.origin is None:
            self.origin = t
        data = np.asarray(samples, dtype=np.float32)
        if data.shape[0] != self.audio_channels:
            data = (np.repeat(data.mean(axis=0, keepdims=True), self.audio_channels, axis=0)
                    if data.shape[0] != 1 else np.repeat(data, self.audio_channels, axis=0))
        start = int(round((t - self.origin) * self.audio_rate))
        if start < 0:  # audio before the file's origin is cut
            data = data[:, -start:]
            start = 0
        if self._next_apts is not None and start < self._next_apts:
            data = data[:, self._next_apts - start:]
            start = self._next_apts
        if data.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp",
                                           layout=self._as.layout.name)
        frame.sample_rate = self.audio_rate
        frame.pts = start
        frame.time_base = Fraction(1, self.audio_rate)
        self._next_apts = start + data.shape[1]
        for packet in self._as.encode(frame):
            self._container.mux(packet)
        self.samples_written += data.shape[1]

    def close(self) -> Path:
        """Flush the encoders and move the file to its final name."""
        if self._container is None:
            raise ValueError(f"no video frame was written to {self.path}")
        try:
            for packet in self._vs.encode():
                self._container.mux(packet)
            if self._as is not None:
                for packet in self._as.encode():
                    self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException:
            self.abort()
            raise
        self._stack.close()
        return self.path

    def abort(self) -> None:
        """Discard the partial file (the final name is left untouched); a fragmented file keeps the
        fragments written so far (it is playable as it is)."""
        if self._container is not None and self.fragmented:
            with contextlib.suppress(Exception):
                self.close()
            return
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> "MediaWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
