"""Diarization results as files: segments, the JSON document, RTTM lines and the score plot.

Pure functions over per-frame data; the ``sync.diarization`` node feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

SCHEMA = "avflow.diarization/1"
SCHEMA_VOICES = "avflow.diarization/2"


@dataclass
class FrameResult:
    """What is known about one video frame once it is decided."""

    index: int
    time: float  # seconds on the input's timeline
    active: str | None
    scores: dict[str, float | None] = field(default_factory=dict)
    boxes: dict[str, list[float]] = field(default_factory=dict)  # track id -> [x, y, w, h]
    voice: str | None = None  # the voice heard (schema /2)


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


def voice_segments(frames: Sequence[FrameResult], end_time: float | None = None) -> list[dict[str, Any]]:
    """Turns of schema /2: maximal runs of frames with the same voice and the same speaker
    (the voice's face, or None where it is off screen or out of view)."""
    out: list[dict[str, Any]] = []
    for i, f in enumerate(frames):
        nxt = frames[i + 1].time if i + 1 < len(frames) else (end_time if end_time is not None else f.time)
        if f.voice is None:
            continue
        last = out[-1] if out else None
        if last and last["voice"] == f.voice and last["speaker"] == f.active and last["_last"] == i - 1:
            last["end"], last["_last"] = nxt, i
        else:
            out.append({"voice": f.voice, "speaker": f.active, "start": f.time, "end": nxt, "_last": i})
    return [{"voice": s["voice"], "speaker": s["speaker"], "start": round(s["start"], 3),
             "end": round(s["end"], 3)} for s in out]


def document(video: str, fps: float, width: int, height: int, frames: Sequence[FrameResult],
             end_time: float | None, voices: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``avflow.diarization/1`` JSON document, or ``/2`` with ``voices`` (``sync.assign``'s
    summary: ``voices``, ``overlaps``): docs/formats.md describes both."""
    track_ids = sorted({t for f in frames for t in f.boxes} | {t for f in frames for t in f.scores},
                       key=_track_key)
    tracks = []
    for tid in track_ids:
        boxes = [[f.index] + [round(float(v), 2) for v in f.boxes[tid]] for f in frames if tid in f.boxes]
        tracks.append({"id": tid, "boxes": boxes})
    scores = {tid: [_round(f.scores.get(tid)) for f in frames] for tid in track_ids}
    doc = {
        "schema": SCHEMA, "video": video, "fps": round(float(fps), 4), "n_frames": len(frames),
        "width": int(width), "height": int(height), "tracks": tracks, "scores": scores,
        "active": [f.active for f in frames], "segments": segments(frames, end_time),
    }
    warnings = []
    if not track_ids:
        warnings.append("no face was found in the video" + ("; the voices are reported without faces"
                                                             if voices and voices.get("voices") else ""))
    if voices is not None:
        doc["schema"] = SCHEMA_VOICES
        doc["segments"] = voice_segments(frames, end_time)
        doc["voices"] = voices.get("voices", [])
        doc["overlaps"] = voices.get("overlaps", [])
        if not doc["voices"]:
            warnings.append("no speech was heard")
    doc["warnings"] = warnings
    return doc


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
    """Standard RTTM: one SPEAKER line per speech turn, speaker = track id (or, for a turn of a
    voice no visible face speaks, the voice id)."""
    file_id = file_id.replace(" ", "_") or "video"
    lines = [f"SPEAKER {file_id} 1 {s['start']:.3f} {s['end'] - s['start']:.3f} <NA> <NA> "
             f"{s['speaker'] or s.get('voice')} <NA> <NA>"
             for s in segs if s["end"] > s["start"] and (s["speaker"] or s.get("voice"))]
    return "\n".join(lines) + ("\n" if lines else "")


def plot(path: Path, frames: Sequence[FrameResult], segs: Sequence[dict[str, Any]], title: str,
         threshold: float | None = None, voices: Sequence[dict[str, Any]] | None = None) -> None:
    """One smoothed score curve per track over time; speech turns shaded in the speaker's colour.
    With ``voices`` (schema /2), a band per voice under the curves: when it was heard, and which
    face it was given (or "off screen")."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    track_ids = sorted({t for f in frames for t in f.scores}, key=_track_key)
    fig = Figure(figsize=(12, 4.5 + (0.35 * len(voices) + 0.4 if voices else 0)), dpi=100)
    FigureCanvasAgg(fig)
    if voices:
        grid = fig.add_gridspec(2, 1, height_ratios=[4.5, 0.35 * len(voices) + 0.4], hspace=0.08)
        ax = fig.add_subplot(grid[0])
        band = fig.add_subplot(grid[1], sharex=ax)
    else:
        ax, band = fig.add_subplot(1, 1, 1), None
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
    if band is not None:
        for row, v in enumerate(voices):
            color = colors.get(v.get("speaker"), "dimgrey")
            for s in segs:
                if s.get("voice") == v["id"]:
                    band.broken_barh([(s["start"], s["end"] - s["start"])], (row - 0.4, 0.8), color=color,
                                     alpha=0.9 if s.get("speaker") else 0.45, lw=0)
        band.set_yticks(range(len(voices)))
        band.set_yticklabels([f"{v['id']} -> {v.get('speaker') or 'off screen'}" for v in voices], fontsize=8)
        band.set_ylim(len(voices) - 0.5, -0.5)
        band.set_xlabel("time (s)")
        band.grid(alpha=0.3, axis="x")
        ax.tick_params(labelbottom=False)
    else:
        ax.set_xlabel("time (s)")
    ax.set_ylabel("sync score (smoothed)")
    ax.set_title(title + "  (shaded: active speaker" + ("; bands: voices and the face each was given)"
                                                      if band is not None else ")"))
    if times:
        ax.set_xlim(times[0], max(times[-1], times[0] + 1e-3))
    ax.grid(alpha=0.3)
    if track_ids:
        ax.legend(loc="upper right", fontsize=8, ncol=min(len(track_ids) + 1, 6))
    if band is None:
        fig.tight_layout()
    fig.savefig(str(path), format="png", bbox_inches="tight" if band is not None else None)


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _track_key(tid: str) -> tuple:
    head, _, num = tid.rpartition("_")
    return (head, int(num)) if num.isdigit() else (tid, -1)
