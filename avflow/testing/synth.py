"""Small synthetic media made with PyAV, for tests and benchmarks (no binary fixtures committed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np


def synth_audio(duration: float, sample_rate: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """A sine tone, float32 (channels, n)."""
    t = np.arange(int(round(duration * sample_rate))) / sample_rate
    tone = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(tone[None, :], channels, axis=0)


def synth_video(n_frames: int, width: int = 160, height: int = 120) -> Iterable[np.ndarray]:
    """Frames of a moving bar with the frame number encoded in a corner, RGB uint8."""
    for i in range(n_frames):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = 40
        x = (i * 4) % width
        img[:, x:x + 8] = (255, 255, 255)
        img[: height // 8, : width // 8] = (i * 7) % 256
        yield img


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    frame_times: Sequence[float] | None = None,
    codec: str = "libx264",
) -> Path:
    """Write frames (and optional float32 (channels, n) audio) to a video file with PyAV.

    ``frame_times`` (seconds, increasing) makes a variable-frame-rate file: each frame gets its
    own timestamp in a 1/1000 s time base instead of ``i / fps``.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = None
        aus = None
        if audio is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            aus = out.add_stream("aac", rate=sample_rate, layout=layout)
        for i, img in enumerate(frames):
            if vs is None:
                vs = out.add_stream(codec, rate=rate)
                vs.width, vs.height = img.shape[1], img.shape[0]
                vs.pix_fmt = "yuv420p"
                if frame_times is not None:
                    vs.codec_context.time_base = Fraction(1, 1000)
                    vs.time_base = Fraction(1, 1000)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if frame_times is not None:
                frame.pts = int(round(frame_times[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
                frame.time_base = 1 / rate
            for packet in vs.encode(frame):
                out.mux(packet)
        if vs is not None:
            for packet in vs.encode():
                out.mux(packet)
        if aus is not None and audio is not None:
            chunk = 1024
            data = np.ascontiguousarray(audio.astype(np.float32))
            for start in range(0, data.shape[1], chunk):
                part = np.ascontiguousarray(data[:, start:start + chunk])
                af = av.AudioFrame.from_ndarray(part, format="fltp", layout=aus.layout.name)
                af.sample_rate = sample_rate
                af.pts = start
                af.time_base = Fraction(1, sample_rate)
                for packet in aus.encode(af):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path
