"""Shared benchmark helpers: long inputs made by looping a real clip, peak RSS of a child run."""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MEDIA = Path(__file__).resolve().parents[1] / ".." / "shared" / "media"


def loop_clip(src: Path, dst: Path, seconds: float) -> Path:
    """Write ``seconds`` of ``src`` played in a loop (video and audio), streaming with PyAV."""
    if dst.exists():
        return dst
    from avflow_media.writer import MediaWriter

    with av.open(str(src)) as probe:
        vs = probe.streams.video[0]
        fps = float(vs.average_rate)
        rate = probe.streams.audio[0].codec_context.sample_rate if probe.streams.audio else None
    writer = MediaWriter(dst, fps=fps, audio_rate=rate, audio_channels=1, origin=0.0)
    offset = 0.0
    while offset < seconds:
        with av.open(str(src)) as c:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate) if rate else None
            streams = [c.streams.video[0]] + ([c.streams.audio[0]] if rate else [])
            last = 0.0
            for packet in c.demux(*streams):
                for frame in packet.decode():
                    t = float(frame.time)
                    if offset + t >= seconds:
                        continue
                    if packet.stream.type == "video":
                        writer.add_video(frame.to_ndarray(format="rgb24"), offset + t)
                    else:
                        for out in resampler.resample(frame):
                            writer.add_audio(out.to_ndarray(), offset + float(out.time or t))
                    last = max(last, t)
        offset += last + 1.0 / fps
    writer.close()
    return dst


def run_child(args: list[str], env: dict | None = None) -> dict:
    """Run a Python snippet in a fresh process (``env``: extra environment variables); return its
    wall time and peak RSS (MB)."""
    import os

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(wall, 2)
    return result


PEAK_RSS_SNIPPET = (
    "import json, resource\n"
    "def peak_mb():\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
)


def machine() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


__all__ = ["MEDIA", "loop_clip", "machine", "run_child", "PEAK_RSS_SNIPPET", "np", "Fraction", "resource"]
