"""Score a diarization document against a composed fixture's exact ground truth.

The fixture (``avflow.testing.compose.ComposedVideo``) knows which tile each face is in, so a
track is mapped to the tile holding most of its box centres (geometry, not a best-fit mapping as
``avflow eval``'s DER uses): a diarization that puts the right face on the wrong voice is wrong
here. Used by the tests and benchmarks of the diarize graph.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np


def track_tiles(truth, tracks: Sequence[dict]) -> dict[str, int | None]:
    """Map each track of a diarization (``{"id", "boxes": [[frame, x, y, w, h], ...]}``) to the tile
    that holds most of its box centres (None: mostly outside every tile)."""
    out: dict[str, int | None] = {}
    for track in tracks:
        votes: dict[int | None, int] = {}
        for _frame, x, y, w, h in track.get("boxes", []):
            tile = truth.tile_at(x + w / 2, y + h / 2)
            votes[tile] = votes.get(tile, 0) + 1
        out[str(track["id"])] = max(votes, key=lambda k: votes[k]) if votes else None
    return out


def predicted_tiles(truth, predicted: dict | Sequence) -> list[int | None]:
    """Per frame tile index (None: nobody) from a diarization document (``avflow.diarization/1``:
    ``tracks`` and ``active``) or from a sequence of tile indices (None or -1: nobody)."""
    if isinstance(predicted, dict):
        tiles = track_tiles(truth, predicted.get("tracks", []))
        return [None if a is None else tiles.get(str(a)) for a in predicted.get("active", [])]
    return [None if p is None or int(p) < 0 else int(p) for p in predicted]


def frame_accuracy(truth, predicted: dict | Sequence, collar: int = 6,
                   which: Literal["active", "heard", "voiced"] = "active") -> float:
    """Fraction of frames whose predicted speaker tile (or nobody) is the true one.

    Frames within ``collar`` frames of a change of the truth are not counted (nor frames the
    prediction does not cover: they count as wrong). ``predicted`` is a diarization document or a
    sequence of tile indices, see :func:`predicted_tiles`.
    """
    labels = {"active": truth.active, "heard": truth.heard, "voiced": truth.voiced}[which]
    gt = np.array([-1 if t is None else t for t in labels])
    pred = predicted_tiles(truth, predicted)
    got = np.full(len(gt), -2)
    n = min(len(gt), len(pred))
    got[:n] = [-1 if p is None else p for p in pred[:n]]
    keep = np.ones(len(gt), bool)
    for change in np.flatnonzero(np.diff(gt)) + 1:
        keep[max(0, change - collar): change + collar] = False
    if not keep.any():
        return float("nan")
    return float(np.mean(got[keep] == gt[keep]))


def change_errors(truth, predicted: dict | Sequence, max_pause: float = 1.0,
                  reach: float = 1.0) -> list[float]:
    """Where each change of speaker was placed: for every change from one visible speaker to
    another in the truth (``active``: a pause of up to ``max_pause`` seconds between them), the
    predicted change between the same two faces nearest to it, within ``reach`` seconds, as
    seconds from the truth's (positive: placed late; where the prediction has no such change,
    nothing is listed). The start of the second speaker's speech is compared."""
    pred = predicted_tiles(truth, predicted)
    fps = float(truth.fps)

    def changes(labels) -> list[tuple[int, int, int]]:  # (start frame of the new speaker, from, to)
        out, last, last_at = [], None, -1
        for i, a in enumerate(labels):
            if a is None:
                continue
            if last is not None and a != last and (i - last_at - 1) <= max_pause * fps:
                out.append((i, last, a))
            last, last_at = a, i
        return out

    found = changes(pred)
    errors = []
    for at, a, b in changes(list(truth.active)):
        near = [p - at for p, pa, pb in found if pa == a and pb == b and abs(p - at) <= reach * fps]
        if near:
            errors.append(min(near, key=abs) / fps)
    return errors
