"""Face-region geometry: MuseTalk's crop box from landmarks, the crop, the blend mask, the paste.

MuseTalk finds 68 iBUG face landmarks (DWPose) and derives its crop from them
(``get_landmark_and_bbox``): the box spans the landmarks horizontally and down to the chin; its
upper edge lies as far above landmark 29 (lower nose bridge) as the chin lies below it, so the
nose is the box's centre line and the UNet's masked lower half holds mouth and jaw.
``bbox_shift`` moves landmark 29 down (+) or up (-); v1.5 adds ``extra_margin`` pixels below the
chin. Here the 68 points come from MediaPipe's 468-point face mesh through :data:`MESH_TO_68`.

Pure numpy (OpenCV is imported inside the functions that need it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive)

#: MediaPipe face-mesh indices approximating the 68 iBUG points, in iBUG order: jaw 0-16 (ear
#: to ear through the chin, 8), brows 17-26, nose bridge 27-30 (29: lower bridge, 30: tip),
#: nostrils 31-35, eyes 36-47, outer lips 48-59, inner lips 60-67.
MESH_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 149, 152, 378, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 1,
    98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144,
    362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    78, 82, 13, 312, 308, 317, 14, 87,
)
JAW = slice(0, 17)
NOSE_BRIDGE_LOW = 29


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """(468+, 2) face-mesh points -> (68, 2) float32 iBUG-ordered points."""
    return np.asarray(mesh, np.float32)[list(MESH_TO_68), :2]


def clamp_box(box: Sequence[float], width: int, height: int, min_size: int = 8) -> Box | None:
    """``box`` rounded to pixels and kept inside the frame; None if less than ``min_size`` remains."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(width, x2), min(height, y2)
    if x2 - x1 < min_size or y2 - y1 < min_size:
        return None
    return x1, y1, x2, y2


def musetalk_box(lm68: np.ndarray | None, width: int, height: int, bbox_shift: int = 0,
                 extra_margin: int = 0, detection: Sequence[float] | None = None) -> Box | None:
    """MuseTalk's crop region of one face, kept inside the frame (None: no usable face).

    :param lm68: (68, 2) landmarks in frame pixels, or None when only a detection exists.
    :param bbox_shift: pixels to move the centre line (landmark 29) down (+) or up (-).
    :param extra_margin: pixels added below the chin (MuseTalk v1.5 uses 10).
    :param detection: the detector's (x1, y1, x2, y2), used when the landmarks give no valid
        box (as MuseTalk falls back to its detector's box).
    """
    box = None
    if lm68 is not None:
        pts = np.asarray(lm68, np.float64)
        half_y = pts[NOSE_BRIDGE_LOW, 1] + bbox_shift
        bottom = pts[:, 1].max()
        upper = half_y - (bottom - half_y)
        x1, x2 = pts[:, 0].min(), pts[:, 0].max()
        if bottom - upper > 0 and x2 - x1 > 0:
            box = (x1, upper, x2, bottom)
    if box is None and detection is not None:
        box = tuple(detection)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return clamp_box((x1, y1, x2, y2 + extra_margin), width, height)


def bbox_shift_range(lm68: np.ndarray) -> tuple[int, int]:
    """MuseTalk's advice for ``bbox_shift``: (-(30 - 29), (29 - 28)) in pixels, vertically."""
    pts = np.asarray(lm68, np.float64)
    return (-int(pts[30, 1] - pts[29, 1]), int(pts[29, 1] - pts[28, 1]))


def crop_face(image: np.ndarray, box: Box, size: int = 256) -> np.ndarray:
    """The box's pixels resized to ``size`` x ``size`` with Lanczos, as MuseTalk crops."""
    import cv2

    x1, y1, x2, y2 = box
    return cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (size, size), interpolation=cv2.INTER_LANCZOS4)


def _odd(n: float) -> int:
    n = max(3, int(n))
    return n if n % 2 else n + 1


def blend_mask(box: Box, lm68: np.ndarray | None, feather: float = 0.08, expand: float = 1.06) -> np.ndarray:
    """Where the generated face replaces the source, as (h, w) float32 weights over ``box``.

    MuseTalk pastes the lower half of its crop through a face-parsing mask; without the parser
    the region is built from the landmarks: the jaw line (pushed out by ``expand`` around its
    centre so an opening mouth's lower chin is covered), closed across at ear level, cut at the
    box's centre line (the UNet's masked half starts there, everything above it is a
    reconstruction of the source), then eroded and blurred by ``feather`` x box height so it
    fades to exactly 0 before the jaw line, the cut and the box's edges. Without landmarks: an
    ellipse over the lower half.
    """
    import cv2

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    mask = np.zeros((h, w), np.uint8)
    if lm68 is not None:
        jaw = np.asarray(lm68, np.float64)[JAW] - (x1, y1)
        centre = jaw.mean(axis=0)
        jaw = centre + (jaw - centre) * expand
        cv2.fillPoly(mask, [np.round(jaw).astype(np.int32)], 255)
    else:
        cv2.ellipse(mask, (w // 2, int(h * 0.55)), (int(w * 0.42), int(h * 0.42)), 0, 0, 360, 255, -1)
    mask[: h // 2] = 0
    k = _odd(feather * h)
    # Zero borders so the erosion also pulls the mask away from the box's edges.
    mask[:, :1] = mask[:, -1:] = 0
    mask[-1:, :] = 0
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (k, k), 0)
    soft[soft < 1e-3] = 0.0
    return np.clip(soft, 0.0, 1.0)


def paste_face(image: np.ndarray, face: np.ndarray, box: Box, mask: np.ndarray,
               resize: str = "area") -> np.ndarray:
    """A copy of ``image`` with ``face`` resized into ``box`` through ``mask``.

    Pixels where the mask is 0, and every pixel outside the box, are exactly the input's.

    :param resize: ``area``: area averaging when the box is smaller than the face (no
        aliasing), bilinear otherwise; ``bilinear``: always bilinear, as MuseTalk resizes.
    """
    import cv2

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    interp = cv2.INTER_AREA if resize == "area" and w < face.shape[1] else cv2.INTER_LINEAR
    resized = cv2.resize(face, (w, h), interpolation=interp).astype(np.float32)
    out = image.copy()
    region = out[y1:y2, x1:x2].astype(np.float32)
    m = mask[..., None]
    out[y1:y2, x1:x2] = np.round(region + (resized - region) * m).astype(np.uint8)
    return out
