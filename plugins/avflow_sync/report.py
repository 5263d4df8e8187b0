"""Diarization results as files: segments, the JSON document, RTTM lines and the score plot.

Pure functions over per-frame data; the ``sync.diarization`` node feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

SCHEMA = "avflow.diarization/1"


@dataclass
class FrameResult:
    """What is known about one video frame once it is decided."""

    index: int
    time: float  # seconds on the input's timeline
    active: str | None
    scores: dict[str, float | None] = field(default_factory=dict)
    boxes: dict[str, list[float]] = field(default_factory=dict)  # track id -> [x, y, w, h]


def segments(frames: Sequence[FrameResult], end_time: float | None = None) -> list[dict[str, Any]]:
    """Speech turns: maximal runs of frames with the same non-null speaker.

    A turn starts at its first frame's time and ends at the time of the frame after its last
    (``end_time`` for the last frame: the input's end).
    """
    out: list[dict[str, Any]] = []
    for i, f in enumerate(frames):
        nxt = frames[i + 1].time if i + 1 < len(frames) else (end_time if end_time is not None else f.time)
        if f.active is None:
            continue
        if out and out[-1]["speaker"] == f.active and out[-1]["_last"] == i - 1:
            out[-1]["end"], out[-1]["_last"] = nxt, i
        else:
            out.append({"speaker": f.active, "start": f.time, "end": nxt, "_last": i})
    return [{"speaker": s["speaker"], "start": round(s["start"], 3), "end": round(s["end"], 3)} for s in out]


def document(video: str, fps: float, width: int, height: int, frames: Sequence[FrameResult],
             end_time: float | None) -> dict[str, Any]:
    """The ``avflow.diarization/1`` JSON document (CONTRACTS.md §6)."""
    track_ids = sorted({t for f in frames for t in f.boxes} | {t for f in frames for t in f.scores},
                       key=_track_key)
    tracks = []
    for tid in track_ids:
        boxes = [[f.index] + [round(float(v), 2) for v in f.boxes[tid]] for f in frames if tid in f.boxes]
        tracks.append({"id": tid, "boxes": boxes})
    scores = {tid: [_round(f.scores.get(tid)) for f in frames] for tid in track_ids}
    return {
        "schema": SCHEMA, "video": video, "fps": round(float(fps), 4), "n_frames": len(frames),
        "width": int(width), "height": int(height), "tracks": tracks, "scores": scores,
        "active": [f.active for f in frames], "segments": segments(frames, end_time),
    }


def dumps(doc: dict[str, Any]) -> str:
    """JSON with one line per box and per score list: readable, and diff-friendly."""
    import json
    import re

    text = json.dumps(doc, indent=1)
    # Collapse the innermost arrays (numbers, null, strings) onto one line each.
    def collapse(m: re.Match) -> str:
        try:
            return json.dumps(json.loads(m.group(0)))
        except ValueError:  # brackets inside a string value, not an array
            return m.group(0)

    return re.sub(r"\[[^\[\]{}]*\]", collapse, text) + "\n"


def rttm(file_id: str, segs: Sequence[dict[str, Any]]) -> str:
    """Standard RTTM: one SPEAKER line per speech turn, speaker = track id."""
    file_id = file_id.replace(" ", "_") or "video"
    lines = [f"SPEAKER {file_id} 1 {s['start']:.3f} {s['end'] - s['start']:.3f} <NA> <NA> {s['speaker']} <NA> <NA>"
             for s in segs if s["end"] > s["start"]]
    return "\n".join(lines) + ("\n" if lines else "")


def plot(path: Path, frames: Sequence[FrameResult], segs: Sequence[dict[str, Any]], title: str,
         threshold: float | None = None) -> None:
    """One smoothed score curve per track over time; speech turns shaded in the speaker's colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    track_ids = sorted({t for f in frames for t in f.scores}, key=_track_key)
    fig = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {tid: f"C{i % 10}" for i, tid in enumerate(track_ids)}
    times = [f.time for f in frames]
    for tid in track_ids:
        values = [f.scores.get(tid) for f in frames]
        ax.plot(times, [float("nan") if v is None else v for v in values], color=colors[tid], lw=1.4, label=tid)
    for s in segs:
        ax.axvspan(s["start"], s["end"], color=colors.get(s["speaker"], "grey"), alpha=0.15, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="black", ls=":", lw=1, label="threshold")
    if not track_ids:
        ax.text(0.5, 0.5, "no face found", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("sync score (smoothed)")
    ax.set_title(title + "  (shaded: active speaker)")
    if times:
        ax.set_xlim(times[0], max(times[-1], times[0] + 1e-3))
    ax.grid(alpha=0.3)
    if track_ids:
        ax.legend(loc="upper right", fontsize=8, ncol=min(len(track_ids) + 1, 6))
    fig.tight_layout()
    fig.savefig(str(path), format="png")


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _track_key(tid: str) -> tuple:
    head, _, num = tid.rpartition("_")
    return (head, int(num)) if num.isdigit() else (tid, -1)
