"""Diarization scoring: RTTM in, DER / JER (pyannote.metrics) and frame accuracy out.

Formats only, no plugin: a reference and a hypothesis are RTTM files (or a run's output folder,
whose ``diarization.rttm`` is read and whose ``diarization.json`` gives the frame clock).

- **DER** (``pyannote.metrics.diarization.DiarizationErrorRate``): missed speech + false alarm +
  speaker confusion over the reference's speech, speakers mapped one to one (Hungarian) between
  the two files; ``collar`` seconds around each reference boundary are not scored (the NIST
  convention: ``collar`` is the half-width, so 0.25 removes 0.5 s around every boundary), and
  overlapped speech is scored (``skip_overlap=False``); the scored extent is the union of both
  files' turns.
- **JER** (``JaccardErrorRate``): the mean over reference speakers of 1 - their Jaccard index
  with the mapped hypothesis speaker (DIHARD II).
- **Frame accuracy**: at each frame time of the hypothesis (its fps), whether the mapped
  speaker, or nobody, agrees with the reference; frames within ``frame_collar`` frames of a
  reference change are not counted. The same one-to-one mapping as DER.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Turn:
    """One RTTM SPEAKER line."""

    file: str
    start: float
    end: float
    speaker: str


def read_rttm(path: str | Path) -> list[Turn]:
    """SPEAKER lines of an RTTM file (other line types are skipped; ``<NA>`` fields are fine;
    file ids may contain dots; turns may overlap). A malformed line is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such RTTM file")
    turns = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise InputError(f"{path}:{n}: an RTTM SPEAKER line has at least 8 fields "
                             f"(SPEAKER file channel start duration <NA> <NA> speaker ...); got {len(fields)}")
        try:
            start, dur = float(fields[3]), float(fields[4])
        except ValueError:
            raise InputError(f"{path}:{n}: start and duration must be numbers, got {fields[3]!r} {fields[4]!r}") from None
        if dur < 0:
            raise InputError(f"{path}:{n}: negative duration {dur}")
        turns.append(Turn(fields[1], start, start + dur, fields[7]))
    return turns


def to_annotation(turns: list[Turn], uri: str | None = None):
    """A ``pyannote.core.Annotation`` of the turns (every file id pooled under ``uri``)."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri or (turns[0].file if turns else "file"))
    for i, t in enumerate(turns):
        if t.end > t.start:
            ann[Segment(t.start, t.end), i] = t.speaker
    return ann


def _resolve(hyp: str | Path) -> tuple[Path, float | None, int | None]:
    """An RTTM path, and the frame clock (fps, frames) when ``hyp`` is an output folder."""
    p = Path(hyp)
    if p.is_dir():
        rttm = p / "diarization.rttm"
        if not rttm.is_file():
            raise InputError(f"{p}: no diarization.rttm in this folder; give an RTTM file or a diarize output folder")
        doc = p / "diarization.json"
        if doc.is_file():
            d = json.loads(doc.read_text(encoding="utf-8"))
            return rttm, float(d.get("fps") or 0) or None, int(d.get("n_frames") or 0) or None
        return rttm, None, None
    return p, None, None


def frame_accuracy(reference: list[Turn], hypothesis: list[Turn], fps: float, n_frames: int,
                   mapping: dict[str, str], collar: int = 6) -> float:
    """Agreement per frame (the hypothesis speaker mapped to the reference's, or nobody)."""
    import numpy as np

    def labels(turns: list[Turn], rename) -> list[str | None]:
        out: list[str | None] = [None] * n_frames
        for t in sorted(turns, key=lambda t: t.start):
            a, b = int(np.ceil(t.start * fps - 1e-9)), int(np.ceil(t.end * fps - 1e-9))
            for i in range(max(0, a), min(n_frames, b)):
                out[i] = rename(t.speaker)
        return out

    ref = labels(reference, lambda s: s)
    hyp = labels(hypothesis, lambda s: mapping.get(s, f"~{s}"))
    keep = np.ones(n_frames, bool)
    for i in range(1, n_frames):
        if ref[i] != ref[i - 1]:
            keep[max(0, i - collar): i + collar] = False
    if not keep.any():
        return float("nan")
    return float(np.mean([r == h for r, h, k in zip(ref, hyp, keep) if k]))


def evaluate(reference: str | Path, hypothesis: str | Path, *, collar: float = 0.25,
             frame_collar: int = 6) -> dict:
    """DER, JER (and frame accuracy when the hypothesis is an output folder) of ``hypothesis``.

    :returns: ``{"der", "jer", "missed", "false_alarm", "confusion", "total", "mapping",
        "frame_accuracy" (or None), "collar"}``; components in seconds.
    """
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    ref_turns = read_rttm(reference)
    hyp_path, fps, n_frames = _resolve(hypothesis)
    hyp_turns = read_rttm(hyp_path)
    ref, hyp = to_annotation(ref_turns, "file"), to_annotation(hyp_turns, "file")
    import warnings

    der_metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    with warnings.catch_warnings():  # no UEM given: scored over both files' extent, as documented
        warnings.simplefilter("ignore", UserWarning)
        detail = der_metric(ref, hyp, detailed=True)
        jer = JaccardErrorRate(collar=2 * collar, skip_overlap=False)(ref, hyp)
    mapping = {str(h): str(r) for h, r in der_metric.optimal_mapping(ref, hyp).items()}
    acc = None
    if fps and n_frames:
        acc = frame_accuracy(ref_turns, hyp_turns, fps, n_frames, mapping, frame_collar)
    return {"der": float(detail["diarization error rate"]), "jer": float(jer),
            "missed": float(detail["missed detection"]), "false_alarm": float(detail["false alarm"]),
            "confusion": float(detail["confusion"]), "total": float(detail["total"]),
            "mapping": mapping, "frame_accuracy": acc, "collar": collar}
