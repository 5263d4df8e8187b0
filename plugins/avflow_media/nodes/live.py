"""``media.live``: a live source (network stream, device, or a file read at its own pace)."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from avflow import AudioChunk, InputError, MediaInfo, Node, Port, VideoFrame, param

from .decode import _AUDIO_CHUNK_S

_TB = Fraction(1, 90000)  # video timestamps on the output timeline
_MAX_BACKOFF = 30.0
_MAX_BAD_PACKETS = 500  # undecodable packets in a row after which a connection counts as dropped


@dataclass(frozen=True)
class LiveConfig:
    source: str = param(doc="what PyAV opens live: tcp://, udp://, rtsp://, rtmp://, http(s):// (HLS), "
                            "a V4L2 device (/dev/video0: needs a PyAV with FFmpeg's v4l2 input) or a file")
    format: str | None = param(None, "FFmpeg input format (v4l2, mpegts, ...); None: probed (v4l2 for "
                                     "/dev/video*)")
    options: dict = param({}, "FFmpeg input options: {rtsp_transport: tcp} for a camera, {rtsp_flags: listen} "
                              "or {listen: 1} (RTMP) to receive a push, {live_start_index: 0} for HLS from "
                              "its first segment")
    probe: float = param(0.5, "seconds of a stream analysed to find its streams before decoding starts "
                              "(FFmpeg's analyzeduration; its default, 5 s, would delay every decision as "
                              "much); files are probed as usual", min=0.0)
    realtime: bool = param(False, "read a file at its own pace, as if it were live (streams and devices "
                                  "come at their own pace anyway)")
    open_timeout: float = param(10.0, "seconds to wait for the source and its first frame; then a clear "
                                      "error (exit 2)", min=0.1)
    stall_timeout: float = param(5.0, "seconds without data after which the stream counts as dropped", min=0.1)
    reconnect: int = param(0, "a dropped stream is reopened up to this many times in a row (0: the run "
                              "ends with what was read)", min=0)
    backoff: float = param(1.0, "seconds before the first reconnection attempt, doubled after each failed "
                                "one (at most 30 s)", min=0.0)
    audio_rate: int | None = param(None, "resample audio to this rate in Hz (None: keep)", min=1000)
    audio_channels: int | None = param(None, "mix audio to 1 (mono) or 2 channels (None: keep)",
                                       choices=(None, 1, 2))
    max_duration: float | None = param(None, "stop after this many seconds of media", min=0.0)
    buffer: int = param(64, "decoded frames and chunks held between the reader thread and the graph", min=1)


@dataclass
class _Reader:
    """What the reader thread shares with the generator."""

    out: "queue.Queue[tuple[str, Any]]"
    stop: threading.Event = field(default_factory=threading.Event)


class LiveSource(Node):
    """Read a live stream or device as it comes, into timestamped frames and audio chunks.

    The live counterpart of ``media.decode`` (same ports and payloads): a reader thread opens
    ``source`` with PyAV and decodes as data arrives; the graph receives frames at the stream's
    pace. Times count from the stream's start (its first timestamp is 0), so a decision's time is
    "seconds since the stream began". A file with ``realtime`` is paced by its timestamps.

    A source that sends no frame within ``open_timeout`` is an :class:`~avflow.InputError`
    (exit 2). A stream that ends or sends nothing for ``stall_timeout`` seconds is dropped: with
    ``reconnect`` it is reopened after ``backoff`` seconds (doubling, at most 30 s) and its times go
    on from the wall-clock time elapsed, the audio of the gap filled with silence (downstream
    nodes see one continuous timeline); otherwise, or when every attempt fails, the stream ends
    and the graph finishes with what it read. Packets the decoder cannot use (a lost UDP
    datagram, a receiver that joins between key frames) are skipped with one warning; 500 in a
    row count as a drop. The end of a file is its end. A graceful stop
    (Ctrl-C in ``avflow run``) ends the stream too. Memory: ``buffer`` decoded items at most.

    Ports:
      - out ``info`` (MediaInfo): once, when the source is open (duration 0: unknown).
      - out ``video`` (VideoFrame): RGB frames as they arrive.
      - out ``audio`` (AudioChunk): float32 (channels, n) chunks of about 0.1 s, contiguous.

    Example::

        live:
          type: media.live
          params: {source: "tcp://127.0.0.1:9000", audio_rate: 16000, audio_channels: 1, reconnect: 3}
    """

    type = "media.live"
    Config = LiveConfig
    outputs = {
        "info": Port(MediaInfo, "what the stream holds (size, fps, streams; duration unknown)"),
        "video": Port(VideoFrame, "decoded frames, RGB uint8, at the stream's pace"),
        "audio": Port(AudioChunk, "decoded audio, float32 (channels, n), contiguous"),
    }
    live = True

    def generate(self, ctx) -> Iterator[dict]:
        reader = _Reader(queue.Queue(maxsize=self.config.buffer))
        want_video = "video" in ctx.connected_outputs or not ctx.connected_outputs
        want_audio = "audio" in ctx.connected_outputs
        thread = threading.Thread(target=self._read, args=(reader, want_video, want_audio, ctx.logger),
                                  name=f"avflow:{ctx.node_id}:reader", daemon=True)
        thread.start()
        try:
            while True:
                if ctx.stopping or ctx.cancelled:
                    return
                try:
                    kind, item = reader.out.get(timeout=0.1)
                except queue.Empty:
                    continue
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                if kind == "info":
                    ctx.progress.set_total(None, "frames")
                elif kind == "video":
                    ctx.progress.advance()
                yield {kind: item}
        finally:
            reader.stop.set()  # the thread closes the container at its next packet or timeout

    # -- the reader thread -----------------------------------------------------------------
    def _read(self, reader: _Reader, want_video: bool, want_audio: bool, logger) -> None:
        import av

        c = self.config
        is_file = Path(c.source).is_file() and c.format is None
        state = _Timeline(c.audio_rate, c.audio_channels)
        try:
            attempts = 0
            wall0: float | None = None  # monotonic time of media time 0
            while not reader.stop.is_set():
                deadline = time.monotonic() + c.open_timeout
                first = wall0 is None
                try:
                    container = self._open(reader, deadline if first else time.monotonic() + c.open_timeout)
                except (_Stopped, InputError):
                    raise
                except (OSError, av.FFmpegError) as exc:  # refused, unreachable, timed out (ExitError)
                    if first:
                        raise InputError(f"media.live: cannot open {c.source} within {c.open_timeout} s "
                                         f"(open_timeout): {exc}") from None
                    container = None
                    reason = str(exc)
                if container is not None:
                    with container:
                        got, reason = self._stream(container, reader, state, want_video, want_audio, first,
                                                   is_file, logger)
                    if first and not got:
                        raise InputError(f"media.live: {c.source} sent no frame within {c.open_timeout} s "
                                         f"(open_timeout){': ' + reason if reason else ''}")
                    if got:
                        attempts = 0
                        wall0 = state.wall0
                    if reason is None:  # the end of a file, max_duration, or a stop
                        break
                if is_file or attempts >= c.reconnect:
                    if not is_file:
                        logger.warning("media.live: %s dropped (%s); ending with what was read", c.source, reason)
                    break
                wait = min(_MAX_BACKOFF, c.backoff * 2 ** attempts)
                attempts += 1
                logger.warning("media.live: %s dropped (%s); reconnecting in %.1f s (attempt %d of %d)",
                               c.source, reason, wait, attempts, c.reconnect)
                if reader.stop.wait(wait):
                    break
            for chunk in state.flush_audio():
                self._put(reader, "audio", chunk)
            self._put(reader, "end", None)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the graph's thread, which raises it
            reader.stop.set()
            try:
                reader.out.put(("error", exc), timeout=1.0)
            except queue.Full:
                pass

    def _open(self, reader: _Reader, deadline: float):
        """Open the source, retrying a refused connection (a sender not up yet) until ``deadline``."""
        import av

        c = self.config
        fmt = c.format or ("v4l2" if c.source.startswith("/dev/video") else None)
        if fmt is not None and fmt not in av.formats_available:
            raise InputError(
                f"media.live: {c.source}: this PyAV has no {fmt!r} input (PyAV's wheels are built without "
                f"FFmpeg's capture devices); install PyAV built against a system FFmpeg that has it "
                f"(pip install av --no-binary av), or send the device as a stream (tcp://, udp://, rtsp://)")
        while True:
            left = deadline - time.monotonic()
            options = {str(k): str(v) for k, v in c.options.items()}
            if not Path(c.source).is_file():
                options.setdefault("analyzeduration", str(int(c.probe * 1_000_000)))
            if c.source.startswith("rtsp") and "listen" in options.get("rtsp_flags", ""):
                # receiving a push: FFmpeg's default wait (-1) overflows its own TCP option (ERANGE)
                options.setdefault("listen_timeout", str(max(1, int(round(left)))))
            try:
                return av.open(c.source, format=fmt, options=options,
                               timeout=(max(0.1, left), c.stall_timeout))
            except ConnectionRefusedError:
                if left <= 0.2:
                    raise
                if reader.stop.wait(0.2):
                    raise _Stopped from None

    def _stream(self, container, reader: _Reader, state: "_Timeline", want_video: bool, want_audio: bool,
                first: bool, is_file: bool, logger) -> tuple[bool, str | None]:
        """Decode one connection; returns (any frame seen, why it ended: None for a normal end)."""
        import av

        c = self.config
        vstream = container.streams.video[0] if container.streams.video else None
        astream = container.streams.audio[0] if container.streams.audio else None
        have = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "none"
        if want_video and vstream is None:
            raise InputError(f"{c.source} has no video stream (streams: {have}); a video input is needed here")
        if want_audio and astream is None:
            raise InputError(f"{c.source} has no audio stream (streams: {have}); this graph needs its audio")
        streams = [s for s, want in ((vstream, want_video), (astream, want_audio)) if want and s is not None]
        for s in streams:
            s.thread_type = "AUTO"
        if first:
            rate = (vstream.average_rate or vstream.guessed_rate or vstream.base_rate) if vstream else None
            cc = astream.codec_context if astream is not None else None
            self._put(reader, "info", MediaInfo(
                pts=0, time_base=Fraction(1, 1000), path=c.source, duration=0.0,
                width=vstream.codec_context.width if vstream else 0, height=vstream.codec_context.height if vstream else 0,
                fps=float(rate) if rate else 0.0, n_frames=0, has_video=vstream is not None,
                has_audio=astream is not None,
                sample_rate=(c.audio_rate or cc.sample_rate) if cc else 0,
                channels=(c.audio_channels or cc.channels) if cc else 0))
        start = container.start_time / 1_000_000 if container.start_time is not None else None
        state.connect(start)
        got = False
        bad, skipped = 0, 0  # packets in a row the decoder refused; all it refused
        try:
            for packet in container.demux(*streams):
                if reader.stop.is_set():
                    raise _Stopped
                try:
                    frames = packet.decode()
                except av.InvalidDataError as exc:
                    # a lost or damaged packet (UDP, a receiver joining between key frames): skip
                    # it; the decoder resumes at the next key frame
                    bad, skipped = bad + 1, skipped + 1
                    if skipped == 1:
                        logger.warning("media.live: %s: skipping packets the decoder cannot use (%s)", c.source, exc)
                    if bad >= _MAX_BAD_PACKETS:
                        return got, f"{bad} packets in a row could not be decoded: {exc}"
                    continue
                bad = 0
                for frame in frames:
                    t = state.time_of(frame)
                    if t is None:
                        continue
                    if c.max_duration is not None and t >= c.max_duration:
                        return got, None
                    if c.realtime:
                        wait = state.wall0 + t - time.monotonic()
                        if wait > 0 and reader.stop.wait(wait):
                            raise _Stopped
                    if packet.stream is vstream:
                        got = True
                        self._put(reader, "video", state.video(frame, t))
                    else:
                        for chunk in state.audio(frame, t):
                            got = True
                            self._put(reader, "audio", chunk)
        except av.ExitError as exc:  # PyAV's read timeout
            return got, f"no data for {c.stall_timeout} s (stall_timeout): {exc}"
        except av.FFmpegError as exc:
            return got, str(exc)
        if is_file:
            return got, None
        return got, "the stream ended"

    @staticmethod
    def _put(reader: _Reader, kind: str, item: Any) -> None:
        while True:
            if reader.stop.is_set():
                raise _Stopped
            try:
                reader.out.put((kind, item), timeout=0.1)
                return
            except queue.Full:
                continue


class _Stopped(Exception):
    """Internal: the graph asked the reader to stop."""


class _Timeline:
    """One continuous timeline over the connections of a stream: media time 0 is the first
    connection's start; a reconnection's times go on from the wall-clock time elapsed; audio
    is resampled and cut into contiguous chunks, gaps filled with silence."""

    def __init__(self, rate: int | None, channels: int | None):
        self.rate, self.channels = rate, channels
        self.wall0: float | None = None
        self._shift: float | None = None  # output time = input time + shift
        self._pending_start: float | None = None
        self._last_video = -1.0
        self._index = 0
        self._resampler = None
        self._out_rate: int | None = None
        self._next_sample: int | None = None  # output sample index of the next chunk
        self._parts: list[np.ndarray] = []
        self._n = 0

    def connect(self, start: float | None) -> None:
        self._shift = None
        self._pending_start = start
        self._resampler = None

    def time_of(self, frame) -> float | None:
        if frame.time is None:
            return None
        t_in = float(frame.time)
        if self._shift is None:
            now = time.monotonic()
            base = self._pending_start if self._pending_start is not None else t_in
            if self.wall0 is None:
                self.wall0 = now
                self._shift = -base
            else:  # reconnected: go on from the time that passed
                self._shift = (now - self.wall0) - base
        return t_in + self._shift

    def video(self, frame, t: float) -> VideoFrame | None:
        t = max(t, self._last_video + 1e-3)  # strictly increasing across reconnections
        self._last_video = t
        vf = VideoFrame(pts=int(round(t / float(_TB))), time_base=_TB, image=frame.to_ndarray(format="rgb24"),
                        index=self._index)
        self._index += 1
        return vf

    def audio(self, frame, t: float) -> list[AudioChunk]:
        import av

        if self._resampler is None:
            cc_rate = frame.sample_rate
            self._out_rate = self._out_rate or self.rate or cc_rate
            layout = {1: "mono", 2: "stereo"}.get(self.channels) if self.channels else frame.layout.name
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self._out_rate)
        out: list[AudioChunk] = []
        start = int(round(t * self._out_rate))
        if self._next_sample is None:
            self._next_sample = max(0, start)
        elif start > self._next_sample + self._n + self._out_rate // 10:
            # a gap (a reconnection): silence up to the new start, so the timeline stays contiguous
            if self._parts:
                out.append(self._take())
            gap = start - self._next_sample
            width = self._channels_of(frame)
            step = int(_AUDIO_CHUNK_S * self._out_rate)
            for s in range(0, gap, step):
                n = min(step, gap - s)
                out.append(self._chunk(np.zeros((width, n), np.float32)))
        for piece in self._resampler.resample(frame):
            self._add(piece.to_ndarray())
        if self._n >= _AUDIO_CHUNK_S * self._out_rate:
            out.append(self._take())
        return out

    def _channels_of(self, frame) -> int:
        return self.channels or len(frame.layout.channels)

    def _add(self, arr: np.ndarray) -> None:
        arr = np.asarray(arr, np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.shape[1]:
            self._parts.append(arr)
            self._n += arr.shape[1]

    def _chunk(self, samples: np.ndarray) -> AudioChunk:
        chunk = AudioChunk(pts=self._next_sample, time_base=Fraction(1, self._out_rate),
                           samples=np.ascontiguousarray(samples), sample_rate=self._out_rate)
        self._next_sample += samples.shape[1]
        return chunk

    def _take(self) -> AudioChunk:
        samples = np.concatenate(self._parts, axis=1)
        self._parts, self._n = [], 0
        return self._chunk(samples)

    def flush_audio(self) -> list[AudioChunk]:
        if self._resampler is not None:
            for piece in self._resampler.resample(None):
                self._add(piece.to_ndarray())
        return [self._take()] if self._parts else []
