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

RTTM from other tools (pyannote, dscore, AVA-AVD) is read as it is: file ids with dots,
``<NA>`` fields, tabs or several spaces, a byte-order mark, overlapping turns, several file ids
in one file. Files are scored per file id (see :func:`evaluate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class Turn:
    """One RTTM SPEAKER line."""

    file: str
    start: float
    end: float
    speaker: str
    channel: str = "1"


def read_rttm(path: str | Path) -> list[Turn]:
    """SPEAKER lines of an RTTM file, in file order (other line types and ``#`` comments are
    skipped; ``<NA>`` fields are fine; file ids may contain dots; turns may overlap; fields may be
    separated by tabs or several spaces). A malformed line is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such RTTM file")
    turns = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise InputError(f"{path}:{n}: an RTTM SPEAKER line has at least 8 fields "
                             f"(SPEAKER file channel start duration <NA> <NA> speaker ...); got {len(fields)}")
        try:  # summed as decimals: "1.320 0.880" ends at 2.2, not 2.2000000000000002
            start, dur = Decimal(fields[3]), Decimal(fields[4])
            if not (start.is_finite() and dur.is_finite()):
                raise ValueError
        except (ArithmeticError, ValueError):
            raise InputError(f"{path}:{n}: start and duration must be numbers, got {fields[3]!r} {fields[4]!r}") from None
        if dur < 0:
            raise InputError(f"{path}:{n}: negative duration {dur}")
        turns.append(Turn(fields[1], float(start), float(start + dur), fields[7], fields[2]))
    return turns


def to_annotation(turns: list[Turn], uri: str | None = None):
    """A ``pyannote.core.Annotation`` of the turns (every file id pooled under ``uri``: pass
    one file's turns, see :func:`by_file`); a track per turn, so overlapping turns are kept."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri or (turns[0].file if turns else "file"))
    for i, t in enumerate(turns):
        if t.end > t.start:
            ann[Segment(t.start, t.end), i] = t.speaker
    return ann


def by_file(turns: list[Turn]) -> dict[str, list[Turn]]:
    """The turns of each file id, in the order the ids first appear."""
    out: dict[str, list[Turn]] = {}
    for t in turns:
        out.setdefault(t.file, []).append(t)
    return out


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


def scored_files(reference: list[Turn], hypothesis: list[Turn]) -> list[tuple[str, list[Turn], list[Turn]]]:
    """Which turns are scored against which: ``(file id, reference turns, hypothesis turns)``.

    - One file id on each side (or none): the two are paired, whatever their names (a diarize
      run names its file after the video, a reference may name it otherwise).
    - A hypothesis with one file id that the reference has (one diarize run against a
      multi-file reference): that file only.
    - Otherwise every file id of either side, a side without it counting as silent there
      (missed speech, or false alarm), as dscore and pyannote.metrics score a corpus; no file id
      in common is an InputError naming both sides' ids.
    """
    ref, hyp = by_file(reference), by_file(hypothesis)
    if len(ref) <= 1 and len(hyp) <= 1:
        return [(next(iter(ref), None) or next(iter(hyp), "file"), reference, hypothesis)]
    if len(hyp) == 1 and next(iter(hyp)) in ref:
        fid = next(iter(hyp))
        return [(fid, ref[fid], hyp[fid])]
    if not set(ref) & set(hyp):
        raise InputError(f"the reference's file ids ({', '.join(ref) or 'none'}) and the hypothesis's "
                         f"({', '.join(hyp) or 'none'}) have none in common")
    return [(fid, ref.get(fid, []), hyp.get(fid, [])) for fid in dict.fromkeys([*ref, *hyp])]


def evaluate(reference: str | Path, hypothesis: str | Path, *, collar: float = 0.25,
             frame_collar: int = 6) -> dict:
    """DER, JER (and frame accuracy when the hypothesis is an output folder) of ``hypothesis``.

    Each file id is scored on its own (its own speaker mapping), the figures summed over the
    files as pyannote.metrics accumulates them; :func:`scored_files` says which turns meet.

    :returns: ``{"der", "jer", "missed", "false_alarm", "confusion", "total", "mapping",
        "frame_accuracy" (or None), "collar", "files"}``; components in seconds; ``files``: the
        same figures (and ``mapping``) per file id; ``mapping`` is the one file's, or with
        several files ``{file id: mapping}``.
    """
    import warnings

    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    ref_turns = read_rttm(reference)
    hyp_path, fps, n_frames = _resolve(hypothesis)
    hyp_turns = read_rttm(hyp_path)
    der_metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=False)
    jer_metric = JaccardErrorRate(collar=2 * collar, skip_overlap=False)
    files: dict[str, dict] = {}
    pairs = scored_files(ref_turns, hyp_turns)
    for fid, r_turns, h_turns in pairs:
        ref, hyp = to_annotation(r_turns, fid), to_annotation(h_turns, fid)
        with warnings.catch_warnings():  # no UEM given: scored over both files' extent, as documented
            warnings.simplefilter("ignore", UserWarning)
            detail = der_metric(ref, hyp, detailed=True)
            # JER is a mean over reference speakers: none for a file only the hypothesis has
            jer = jer_metric(ref, hyp) if ref.labels() else float("nan")
            mapping = {str(h): str(r) for h, r in der_metric.optimal_mapping(ref, hyp).items()}
        files[fid] = {**_figures(detail), "jer": float(jer), "mapping": mapping}
    acc = None
    if fps and n_frames and len(pairs) == 1:
        _, r_turns, h_turns = pairs[0]
        acc = frame_accuracy(r_turns, h_turns, fps, n_frames, files[pairs[0][0]]["mapping"], frame_collar)
    total = {c: der_metric[c] for c in ("missed detection", "false alarm", "confusion", "total")}
    total["diarization error rate"] = abs(der_metric)
    mapping = (next(iter(files.values()))["mapping"] if len(files) == 1
               else {fid: f["mapping"] for fid, f in files.items()})
    jer_total = abs(jer_metric) if jer_metric["speaker count"] else float("nan")
    return {**_figures(total), "jer": float(jer_total), "mapping": mapping, "frame_accuracy": acc,
            "collar": collar, "files": files}


def _figures(detail) -> dict[str, float]:
    return {"der": float(detail["diarization error rate"]), "missed": float(detail["missed detection"]),
            "false_alarm": float(detail["false alarm"]), "confusion": float(detail["confusion"]),
            "total": float(detail["total"])}
