"""``sync.face_clips``: one video per face track, with the audio of its time span."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avflow import AudioChunk, FaceCrop, File, Node, Port, param


@dataclass(frozen=True)
class FaceClipsConfig:
    folder: Path = param(Path("faces"), "folder for the clips, relative to the output directory")
    audio_buffer: float = param(60.0, "seconds of audio kept for tracks whose crops arrive late", min=1.0)


class _AudioRing:
    """The most recent mono audio, addressable by time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.rate: int | None = None
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (first sample index, samples)

    def add(self, chunk: AudioChunk) -> None:
        self.rate = chunk.sample_rate
        start = int(round(chunk.time * chunk.sample_rate))
        self._chunks.append((start, chunk.samples.mean(axis=0).astype(np.float32)))
        end = start + chunk.n_samples
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) < end - self.seconds * self.rate:
            self._chunks.popleft()

    def span(self, t0: float, t1: float) -> tuple[float, np.ndarray]:
        """Samples from ``t0`` to ``t1`` that are still held, and the time of the first one."""
        if self.rate is None or t1 <= t0:
            return t0, np.zeros(0, np.float32)
        s0, s1 = int(round(t0 * self.rate)), int(round(t1 * self.rate))
        parts, first = [], None
        for start, data in self._chunks:
            a, b = max(s0, start), min(s1, start + len(data))
            if a < b:
                first = a if first is None else first
                parts.append(data[a - start:b - start])
        if not parts:
            return t0, np.zeros(0, np.float32)
        return first / self.rate, np.concatenate(parts)


class FaceClips(Node):
    """Write ``faces/<track id>.mp4`` for every track: its crops at their timestamps plus the
    audio heard while the track is on screen.

    Each track's clip is written as its crops arrive (a writer per open track, atomic on close).
    Audio is kept for ``audio_buffer`` seconds so that a track's first crops, which lag the
    audio by the pipeline's latency, still find theirs.

    Ports:
      - in ``crops`` (FaceCrop): square crops of one size per track (``faces.crop``).
      - in ``audio`` (AudioChunk, optional): the input's audio.
      - out ``files`` (File): one mp4 per track, when the run ends.

    Example::

        face_clips:
          type: sync.face_clips
          inputs: {crops: face_crops.crops, audio: decode.audio}
    """

    type = "sync.face_clips"
    Config = FaceClipsConfig
    inputs = {"crops": Port(FaceCrop, "face crops per track"),
              "audio": Port(AudioChunk, "the input's audio", optional=True)}
    outputs = {"files": Port(File, "one mp4 per track")}

    def open(self, ctx):
        self._ring = _AudioRing(self.config.audio_buffer)
        self._audio_wanted = "audio" in ctx.connected_inputs
        self._audio_done = not self._audio_wanted
        self._writers: dict = {}
        self._cursor: dict[str, float] = {}  # track -> time up to which its audio is written
        self._last: dict[str, float] = {}  # track -> time of its latest crop
        self._frame_s: dict[str, float] = {}  # track -> interval between its last two crops
        self._waiting: list[FaceCrop] = []  # crops seen before the audio's format is known

    def process(self, port, item, ctx):
        if port == "audio":
            self._ring.add(item)
            self._release(ctx)
        elif self._ring.rate is None and not self._audio_done:
            self._waiting.append(item)
        else:
            self._write(item, ctx)
        return None

    def end(self, port, ctx):
        if port == "audio":
            self._audio_done = True
            self._release(ctx)

    def _release(self, ctx) -> None:
        waiting, self._waiting = self._waiting, []
        for crop in waiting:
            self._write(crop, ctx)

    def _write(self, crop: FaceCrop, ctx) -> None:
        from avflow_media.writer import MediaWriter

        tid = crop.track_id
        writer = self._writers.get(tid)
        if writer is None:
            path = ctx.output_path(self.config.folder) / f"{tid}.mp4"
            writer = MediaWriter(path, audio_rate=self._ring.rate, audio_channels=1, origin=crop.time)
            self._writers[tid] = writer
            self._cursor[tid] = crop.time
        writer.add_video(crop.image, crop.time)
        if tid in self._last and crop.time > self._last[tid]:
            self._frame_s[tid] = crop.time - self._last[tid]
        self._last[tid] = crop.time
        self._feed_audio(tid, crop.time)

    def _feed_audio(self, tid: str, until: float) -> None:
        t, samples = self._ring.span(self._cursor[tid], until)
        if samples.size:
            self._writers[tid].add_audio(samples[None, :], t)
            self._cursor[tid] = t + samples.size / self._ring.rate

    def finish(self, ctx):
        self._release(ctx)
        files = []
        for tid, writer in sorted(self._writers.items()):
            # The track's last frame is shown for one frame interval: its audio covers that too.
            self._feed_audio(tid, self._last[tid] + self._frame_s.get(tid, 0.04))
            path = writer.close()
            files.append(File(pts=0, time_base=Fraction(1), path=path, kind="video/mp4"))
        self._writers.clear()
        return {"files": files}

    def close(self, ctx):
        for writer in getattr(self, "_writers", {}).values():
            writer.abort()
