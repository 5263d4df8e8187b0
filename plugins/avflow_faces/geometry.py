"""Box geometry shared by the face nodes: clip, expand, square, interpolate, IoU, NMS.

Boxes are :class:`avflow.Box` (top-left x, y, width, height in pixels). Every function here is
pure numpy and returns new boxes; nothing is modified in place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from avflow import Box


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` cut to the frame ``[0, width] x [0, height]``; None if nothing is left inside.

    Keypoints are clipped to the frame as well.
    """
    x0, y0 = max(0.0, float(box.x)), max(0.0, float(box.y))
    x1, y1 = min(float(width), float(box.x + box.w)), min(float(height), float(box.y + box.h))
    if x1 <= x0 or y1 <= y0:
        return None
    kps = box.keypoints
    if kps is not None:
        kps = np.stack([np.clip(kps[:, 0], 0, width), np.clip(kps[:, 1], 0, height)], axis=1).astype(np.float32)
    return replace(box, x=x0, y=y0, w=x1 - x0, h=y1 - y0, keypoints=kps)


def expand_box(box: Box, factor: float) -> Box:
    """Grow ``box`` about its centre: ``factor=0.2`` makes it 20% wider and 20% higher."""
    w, h = box.w * (1.0 + factor), box.h * (1.0 + factor)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return replace(box, x=cx - w / 2.0, y=cy - h / 2.0, w=w, h=h)


def square_box(box: Box) -> Box:
    """The square with side ``max(w, h)`` centred on ``box`` (may leave the frame)."""
    side = max(box.w, box.h)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return replace(box, x=cx - side / 2.0, y=cy - side / 2.0, w=side, h=side)


def crop_region(box: Box, expand: float) -> tuple[int, int, int]:
    """Integer square ``(x0, y0, side)`` around ``box`` expanded by ``expand``; may leave the frame."""
    sq = square_box(expand_box(box, expand))
    side = max(1, int(round(sq.w)))
    cx, cy = sq.x + sq.w / 2.0, sq.y + sq.h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def cut_padded(image: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The ``side x side`` window of ``image`` at ``(x0, y0)``, border pixels replicated outside.

    Only the window is copied (never a padded copy of the whole frame).
    """
    h, w = image.shape[:2]
    x1, y1 = x0 + side, y0 + side
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 <= sx0 or sy1 <= sy0:
        # Entirely outside: replicate the nearest edge pixel.
        cx, cy = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        return np.broadcast_to(image[cy, cx], (side, side) + image.shape[2:]).copy()
    part = image[sy0:sy1, sx0:sx1]
    pads = (sy0 - y0, y1 - sy1, sx0 - x0, x1 - sx1)
    if not any(pads):
        return np.ascontiguousarray(part)
    import cv2

    return cv2.copyMakeBorder(np.ascontiguousarray(part), *pads, borderType=cv2.BORDER_REPLICATE)


def lerp_box(a: Box, b: Box, t: float) -> Box:
    """The box a fraction ``t`` (0..1) of the way from ``a`` to ``b``; keypoints too if both have them."""
    kps = None
    if a.keypoints is not None and b.keypoints is not None and a.keypoints.shape == b.keypoints.shape:
        kps = ((1.0 - t) * a.keypoints + t * b.keypoints).astype(np.float32)
    return Box(x=a.x + t * (b.x - a.x), y=a.y + t * (b.y - a.y), w=a.w + t * (b.w - a.w),
               h=a.h + t * (b.h - a.h), score=a.score + t * (b.score - a.score), keypoints=kps)


def interpolate_gap(a: Box, b: Box, n: int) -> list[Box]:
    """The ``n`` boxes strictly between ``a`` and ``b`` on a straight line (n missing frames)."""
    return [lerp_box(a, b, (k + 1) / (n + 1)) for k in range(n)]


def _pairwise_areas(a: Sequence[Box], b: Sequence[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(intersection (len(a), len(b)), area of each a, area of each b)``."""
    A = np.array([[x.x, x.y, x.x + x.w, x.y + x.h] for x in a], np.float64).reshape(-1, 4)
    B = np.array([[x.x, x.y, x.x + x.w, x.y + x.h] for x in b], np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(A[:, None, 2], B[None, :, 2]) - np.maximum(A[:, None, 0], B[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(A[:, None, 3], B[None, :, 3]) - np.maximum(A[:, None, 1], B[None, :, 1]), 0, None)
    area_a = (A[:, 2] - A[:, 0]) * (A[:, 3] - A[:, 1])
    area_b = (B[:, 2] - B[:, 0]) * (B[:, 3] - B[:, 1])
    return ix * iy, area_a, area_b


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Pairwise IoU, shape ``(len(a), len(b))``."""
    if not a or not b:
        return np.zeros((len(a), len(b)), np.float64)
    inter, area_a, area_b = _pairwise_areas(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def overlap_min_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Pairwise intersection over the smaller box's area (1.0 when one box holds the other)."""
    if not a or not b:
        return np.zeros((len(a), len(b)), np.float64)
    inter, area_a, area_b = _pairwise_areas(a, b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)


def nms(boxes: Sequence[Box], iou_threshold: float = 0.3, contain_threshold: float = 0.7) -> list[Box]:
    """Greedy non-maximum suppression by score.

    A box is dropped when it overlaps a better one by IoU above ``iou_threshold`` or lies mostly
    inside it (intersection over the smaller area above ``contain_threshold``: a half face cut by
    a window edge next to the whole face).
    """
    order = sorted(range(len(boxes)), key=lambda i: -boxes[i].score)
    ordered = [boxes[i] for i in order]
    iou = iou_matrix(ordered, ordered)
    contain = overlap_min_matrix(ordered, ordered)
    kept: list[int] = []
    for i in range(len(ordered)):
        if all(iou[i, k] <= iou_threshold and contain[i, k] <= contain_threshold for k in kept):
            kept.append(i)
    return [ordered[i] for i in kept]
