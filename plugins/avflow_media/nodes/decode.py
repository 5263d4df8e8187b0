"""``media.decode``: PyAV decoder for videos, still images and folders of images."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from avflow import AudioChunk, InputError, MediaInfo, Node, Port, VideoFrame, param

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# Decoded audio is emitted in chunks of about this many seconds (fewer, larger queue items).
_AUDIO_CHUNK_S = 0.1


@dataclass(frozen=True)
class DecodeConfig:
    path: Path = param(doc="a video file, a still image, or a folder of images (sorted by name)", exists=True)
    fps: float | None = param(None, "constant output frame rate: frames are repeated or dropped by "
                                    "timestamp; images and folders default to 25", min=0.1)
    audio_rate: int | None = param(None, "resample audio to this rate in Hz (None: keep)", min=1000)
    audio_channels: int | None = param(None, "mix audio to 1 (mono) or 2 channels (None: keep)",
                                       choices=(None, 1, 2))
    max_duration: float | None = param(None, "stop after this many seconds of media", min=0.0)
    errors: Literal["strict", "ignore"] = param(
        "strict", "corrupt or truncated data: 'strict' fails the run naming the time, 'ignore' "
                  "logs a warning and keeps what decoded")


class Decode(Node):
    """Decode a media file into timestamped video frames and audio chunks.

    Only the streams whose ports are connected are decoded; a connected stream that the file
    lacks is an :class:`~avflow.InputError`. Frames keep the container's timestamps (variable
    frame rate is preserved) unless ``fps`` asks for a constant rate. Audio is float32, planar,
    resampled with FFmpeg's resampler when ``audio_rate``/``audio_channels`` are set, with
    ``pts`` counting samples at the output rate.

    Ports:
      - out ``info`` (MediaInfo): emitted once, first.
      - out ``video`` (VideoFrame): RGB frames in display order.
      - out ``audio`` (AudioChunk): consecutive chunks of about 0.1 s.

    Example::

        decode:
          type: media.decode
          params: {path: "${video}", audio_rate: 16000, audio_channels: 1}
    """

    type = "media.decode"
    Config = DecodeConfig
    outputs = {
        "info": Port(MediaInfo, "what the input holds (size, fps, duration, streams)"),
        "video": Port(VideoFrame, "decoded frames, RGB uint8"),
        "audio": Port(AudioChunk, "decoded audio, float32 (channels, n)"),
    }

    @classmethod
    def preflight(cls, config, check):
        problems = super().preflight(config, check)
        path = Path(config.path)
        if "audio" in check.connected_outputs and path.exists() and _is_images(path):
            problems.append(("path", _NO_SOUND.format(path=path)))
        return problems

    def generate(self, ctx) -> Iterator[dict]:
        path = Path(self.config.path)
        if not path.exists():
            raise InputError(f"input not found: {path} (expected a video file, an image or a folder of images)")
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            yield from self._images(path, ctx)
        else:
            yield from self._container(path, ctx)

    # -- images ------------------------------------------------------------------------------
    def _images(self, path: Path, ctx) -> Iterator[dict]:
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                           key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
            if not files:
                raise InputError(f"folder {path} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
        else:
            files = [path]
        if "audio" in ctx.connected_outputs:
            raise InputError(_NO_SOUND.format(path=path))
        fps = Fraction(self.config.fps or 25).limit_denominator(1001)
        tb = 1 / fps
        first = _read_image(files[0])
        h, w = first.shape[:2]
        yield {"info": MediaInfo(pts=0, time_base=tb, path=str(path), duration=float(len(files) * tb),
                                 width=w, height=h, fps=float(fps), n_frames=len(files), has_video=True)}
        ctx.progress.set_total(len(files), "frames")
        for i, f in enumerate(files):
            img = first if i == 0 else _read_image(f)
            if img.shape[:2] != (h, w):
                raise InputError(f"image {f} is {img.shape[1]}x{img.shape[0]} but the folder's first image "
                                 f"is {w}x{h}; all images of a sequence must have one size")
            if self.config.max_duration is not None and i * tb >= self.config.max_duration:
                break
            yield {"video": VideoFrame(pts=i, time_base=tb, image=img, index=i, duration=tb)}
            ctx.progress.advance()

    # -- containers --------------------------------------------------------------------------
    def _container(self, path: Path, ctx) -> Iterator[dict]:
        import av

        try:
            container = av.open(str(path))
        except av.FFmpegError as exc:
            raise InputError(f"cannot open {path} as media: not a video/audio file, or corrupt or truncated "
                             f"(an mp4 cut short loses its index): {exc}") from None
        with container:
            want_video = "video" in ctx.connected_outputs or not ctx.connected_outputs
            want_audio = "audio" in ctx.connected_outputs
            vstream = container.streams.video[0] if container.streams.video else None
            astream = container.streams.audio[0] if container.streams.audio else None
            have = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "none"
            if want_video and vstream is None:
                raise InputError(f"{path} has no video stream (streams: {have}); a video input is needed here")
            if want_audio and astream is None:
                raise InputError(f"{path} has no audio stream (streams: {have}); this graph needs its audio. "
                                 "Mux an audio track in, or use a graph without audio")
            info = _media_info(path, container, vstream, astream, self.config)
            yield {"info": info}
            ctx.progress.set_total(info.n_frames or None, "frames")

            streams = [s for s, want in ((vstream, want_video), (astream, want_audio)) if want and s is not None]
            for s in streams:
                s.thread_type = "AUTO"
            video = _VideoOut(self.config.fps, vstream) if want_video else None
            audio = _AudioOut(astream, self.config.audio_rate, self.config.audio_channels) if want_audio else None
            limit = self.config.max_duration
            last_time = 0.0
            try:
                for packet in container.demux(*streams):
                    for frame in packet.decode():
                        t = float(frame.time) if frame.time is not None else last_time
                        last_time = max(last_time, t)
                        if limit is not None and t >= limit:
                            continue
                        if packet.stream is vstream:
                            for vf in video.push(frame):
                                yield {"video": vf}
                                ctx.progress.advance()
                        else:
                            chunk = audio.push(frame)
                            if chunk is not None:
                                yield {"audio": chunk}
                    if limit is not None and last_time >= limit and all(
                            o is None or o.past(limit) for o in (video, audio)):
                        break
            except av.FFmpegError as exc:
                msg = f"{path} is corrupt or truncated near t={last_time:.2f}s: {exc}"
                if self.config.errors == "strict":
                    raise InputError(msg + "; set errors=ignore to keep what decodes") from None
                ctx.logger.warning("%s; keeping what decoded", msg)
            if video is not None:
                end = info.duration if limit is None else min(info.duration, limit)
                for vf in video.flush(end):
                    yield {"video": vf}
                    ctx.progress.advance()
                if video.count == 0:
                    raise InputError(f"{path}: no video frame could be decoded")
                declared = info.duration
                if limit is None and declared > 1.0 and video.last_time < declared - max(1.0, 0.1 * declared):
                    msg = (f"{path} looks truncated: its header says {declared:.2f}s but video data ends "
                           f"at {video.last_time:.2f}s")
                    if self.config.errors == "strict":
                        raise InputError(msg + "; set errors=ignore to keep what decodes")
                    ctx.logger.warning(msg)
            if audio is not None:
                chunk = audio.flush()
                if chunk is not None:
                    yield {"audio": chunk}


def _read_image(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    raise InputError(f"image {path} holds no picture")


def _media_info(path: Path, container, vstream, astream, config: DecodeConfig) -> MediaInfo:
    duration = float(container.duration / 1_000_000) if container.duration else 0.0
    width = height = n_frames = 0
    fps = 0.0
    vfr = False
    if vstream is not None:
        width, height = vstream.codec_context.width, vstream.codec_context.height
        rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
        fps = float(rate) if rate else 0.0
        if vstream.duration and vstream.time_base:
            duration = max(duration, float(vstream.duration * vstream.time_base)) if not duration else duration
        n_frames = vstream.frames or int(round(duration * fps))
        base = vstream.base_rate or vstream.guessed_rate
        vfr = bool(base and rate and abs(float(base) - float(rate)) > 0.01 * float(rate))
        if config.fps:
            fps = float(config.fps)
            n_frames = int(round(duration * fps))
    if config.max_duration is not None:
        duration = min(duration, config.max_duration) if duration else config.max_duration
        if fps:
            n_frames = min(n_frames, int(np.ceil(config.max_duration * fps)))
    return MediaInfo(
        pts=0, time_base=Fraction(1, 1000), path=str(path), duration=duration, width=width, height=height,
        fps=fps, n_frames=n_frames, has_video=vstream is not None, has_audio=astream is not None,
        sample_rate=(config.audio_rate or astream.codec_context.sample_rate) if astream is not None else 0,
        channels=(config.audio_channels or astream.codec_context.channels) if astream is not None else 0,
        variable_frame_rate=vfr)


_NO_SOUND = ("{path} is a still image (or a folder of images): it has no sound, and this graph uses the "
             "sound of its input; give it a video with sound")


def _is_images(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


class _VideoOut:
    """Turns decoded frames into VideoFrames, optionally at a constant rate by timestamp."""

    def __init__(self, fps: float | None, stream):
        self.rate = Fraction(fps).limit_denominator(1001) if fps else None
        self.stream = stream
        self.count = 0
        self.last_time = 0.0
        self._held: tuple[float, np.ndarray] | None = None  # constant-rate mode: latest frame
        self._tick = 0
        self._offset = None
        self._interval = 0.0

    def past(self, t: float) -> bool:
        return self.last_time >= t

    def push(self, frame) -> list[VideoFrame]:
        t = float(frame.time) if frame.time is not None else self.last_time
        img = frame.to_ndarray(format="rgb24")
        self.last_time = t
        if self.rate is None:
            out = VideoFrame(pts=frame.pts if frame.pts is not None else self.count,
                             time_base=Fraction(frame.time_base or self.stream.time_base), image=img,
                             index=self.count)
            self.count += 1
            return [out]
        out = []
        if self._held is None:
            # The constant-rate timeline starts at the first frame, rounded to the output grid.
            self._offset = int(round(t * self.rate))
        else:
            self._interval = t - self._held[0]
            out = self._emit_until(t)
        self._held = (t, img)
        return out

    def _emit_until(self, t: float) -> list[VideoFrame]:
        """Emit the held frame for every tick before time ``t``."""
        out = []
        tb = 1 / self.rate
        while float((self._offset + self._tick) * tb) < t - 1e-9:
            out.append(VideoFrame(pts=self._offset + self._tick, time_base=tb, image=self._held[1],
                                  index=self._tick, duration=tb))
            self._tick += 1
            self.count += 1
        return out

    def flush(self, end: float) -> list[VideoFrame]:
        if self.rate is None or self._held is None:
            return []
        # The last frame is shown until the stream's end, and at least as long as the frame
        # interval before it (containers often end the stream at the last frame's timestamp).
        return self._emit_until(max(end, self._held[0] + (self._interval or float(1 / self.rate))))


class _AudioOut:
    """Resamples decoded audio to float32 planar and groups it in ~0.1 s chunks."""

    def __init__(self, stream, rate: int | None, channels: int | None):
        import av

        cc = stream.codec_context
        self.rate = rate or cc.sample_rate
        layout = {1: "mono", 2: "stereo"}.get(channels) if channels else cc.layout.name
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self.start: int | None = None  # sample index of the first output sample
        self.emitted = 0
        self._parts: list[np.ndarray] = []
        self._n = 0
        self.last_time = 0.0

    def past(self, t: float) -> bool:
        return self.last_time >= t

    def push(self, frame) -> AudioChunk | None:
        if self.start is None:
            t0 = float(frame.time) if frame.time is not None else 0.0
            self.start = int(round(t0 * self.rate))
        if frame.time is not None:
            self.last_time = float(frame.time)
        for out in self.resampler.resample(frame):
            self._add(out.to_ndarray())
        if self._n >= _AUDIO_CHUNK_S * self.rate:
            return self._take()
        return None

    def _add(self, arr: np.ndarray) -> None:
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.shape[1]:
            self._parts.append(arr)
            self._n += arr.shape[1]

    def _take(self) -> AudioChunk | None:
        if not self._parts:
            return None
        samples = np.concatenate(self._parts, axis=1)
        self._parts, self._n = [], 0
        chunk = AudioChunk(pts=(self.start or 0) + self.emitted, time_base=Fraction(1, self.rate),
                           samples=samples, sample_rate=self.rate)
        self.emitted += samples.shape[1]
        return chunk

    def flush(self) -> AudioChunk | None:
        for out in self.resampler.resample(None):
            self._add(out.to_ndarray())
        return self._take()
