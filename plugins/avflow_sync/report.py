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
        warnings.extend(voices.get("warnings", []))
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
         threshold: float | None = None, voices: Sequence[dict[str, Any]] | None = None,
         thumbnails: dict[str, Any] | None = None) -> None:
    """One smoothed score curve per track over time; speech turns shaded in the speaker's colour.
    With ``voices`` (schema /2), a band per voice under the curves: when it was heard, and which
    face it was given (or "off screen").

    Each curve is labelled at the right with its track id, and with ``thumbnails`` (track id ->
    RGB image, see :func:`face_thumbnails`) with a picture of the face, framed in the curve's
    colour; the decision threshold is a dotted line; a strip per track at the bottom is solid
    where the face was visible and dotted where it was not."""
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
        _label_curves(ax, frames, track_ids, colors, thumbnails or {})
        _visibility_strips(ax, frames, track_ids, colors)
    if band is None:
        fig.tight_layout()
    fig.savefig(str(path), format="png", bbox_inches="tight" if band is not None else None)


def _label_curves(ax: Any, frames: Sequence[FrameResult], track_ids: list[str], colors: dict[str, str],
                  thumbnails: dict[str, Any]) -> None:
    """Say which face is which: beside each curve's last value, its id (and its thumbnail)."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    placed: list[float] = []
    lo, hi = ax.get_ylim()
    gap = (hi - lo) * 0.12
    for tid in track_ids:
        last = next((f.scores[tid] for f in reversed(frames) if f.scores.get(tid) is not None), None)
        y = float(last) if last is not None else (lo + hi) / 2
        while any(abs(y - p) < gap for p in placed):  # keep labels of close curves apart
            y += gap
        placed.append(y)
        transform = ax.get_yaxis_transform()  # x in axes fraction, y in data
        image = thumbnails.get(tid)
        if image is not None:
            zoom = 40.0 / max(image.shape[:2])
            box = AnnotationBbox(OffsetImage(image, zoom=zoom), (1.01, y), xycoords=transform,
                                 box_alignment=(0.0, 0.5), pad=0.1, annotation_clip=False,
                                 bboxprops={"edgecolor": colors[tid], "linewidth": 2})
            ax.add_artist(box)
            x_text = 1.01 + 0.05
        else:
            x_text = 1.01
        ax.text(x_text, y, tid, transform=transform, color=colors[tid], fontsize=8, va="center",
                ha="left", clip_on=False)


def _visibility_strips(ax: Any, frames: Sequence[FrameResult], track_ids: list[str],
                       colors: dict[str, str]) -> None:
    """A strip per track along the bottom: solid where its face is visible, dotted where not."""
    if not frames:
        return
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    step = (frames[-1].time - frames[0].time) / max(len(frames) - 1, 1)
    for row, tid in enumerate(track_ids):
        y = 0.02 + 0.025 * row
        runs: list[tuple[bool, float, float]] = []
        for f in frames:
            seen = f.scores.get(tid) is not None or tid in f.boxes
            if runs and runs[-1][0] == seen:
                runs[-1] = (seen, runs[-1][1], f.time + step)
            else:
                runs.append((seen, f.time, f.time + step))
        for seen, t0, t1 in runs:
            ax.hlines(y, t0, t1, transform=transform, colors=colors[tid], lw=3 if seen else 1,
                      linestyles="solid" if seen else "dotted", alpha=0.9 if seen else 0.6)
    ax.text(0.005, 0.02 + 0.025 * len(track_ids), "faces visible (solid) / not visible (dotted)",
            transform=ax.transAxes, fontsize=7, color="dimgrey", va="bottom")


def face_thumbnails(video: str | Path, frames: Sequence[FrameResult], size: int = 64) -> dict[str, Any]:
    """Track id -> an RGB picture of its face (``size`` px high), from the first frame where its box
    is at least 80 % of its largest (early frames: the video is decoded only up to the last frame
    needed); for :func:`plot` (PyAV)."""
    import av
    import numpy as np

    largest: dict[str, float] = {}
    for f in frames:
        for tid, (x, y, w, h) in f.boxes.items():
            largest[tid] = max(largest.get(tid, 0.0), w * h)
    best: dict[str, tuple[float, int, list[float]]] = {}
    for f in frames:
        for tid, (x, y, w, h) in f.boxes.items():
            if tid not in best and w * h >= 0.8 * largest[tid]:
                best[tid] = (w * h, f.index, [x, y, w, h])
    wanted: dict[int, list[str]] = {}
    for tid, (_, index, _box) in best.items():
        wanted.setdefault(index, []).append(tid)
    out: dict[str, Any] = {}
    if not wanted:
        return out
    last = max(wanted)
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                img = frame.to_ndarray(format="rgb24")
                for tid in wanted[i]:
                    x, y, w, h = best[tid][2]
                    x0, y0 = max(0, int(x)), max(0, int(y))
                    crop = img[y0:max(y0 + 1, int(y + h)), x0:max(x0 + 1, int(x + w))]
                    step = max(1, crop.shape[0] // size)
                    out[tid] = np.ascontiguousarray(crop[::step, ::step])
            if i >= last:
                break
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


def _track_key(tid: str) -> tuple:
    head, _, num = tid.rpartition("_")
    return (head, int(num)) if num.isdigit() else (tid, -1)
