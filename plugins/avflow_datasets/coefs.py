"""Per-frame face coefficients from MediaPipe face-mesh landmarks (pure numpy).

These are *not* FLAME parameters; they are a documented, geometric stand-in with FLAME's sizes
(shape 100, exp 50, pose 6), so DiffPoseTalk-style training code runs on them unchanged. Use
precomputed FLAME coefficients (``coef_dir``) when the model must drive a FLAME mesh.

**Head frame.** From the 468 landmarks in pixels (``x*W, y*H, z*W``; image axes, z away from the
camera) a head frame is built from rigid upper-face points: X is the mean of the right-to-left
vectors of three symmetric pairs (outer eye corners 33/263, inner eye corners 133/362, cheek
edges 234/454); Y ("up") is subnasale 2 to forehead 10, made orthogonal to X; Z = X x Y points out
of the face. Head coordinates of a point are ``R^T (p - p[168]) / iod`` (origin between the eyes,
unit = the 3-D distance of the outer eye corners 33-263), so they are free of head pose, position
and scale.

**pose (6)** ``[0:3]`` head rotation, axis-angle in radians, in a right-handed camera frame with
X to the image right, Y up, Z toward the camera (zero = frontal, upright face).
``[3:6]`` jaw rotation, axis-angle in radians, in the head frame: the rotation that turns the
subject's neutral pivot->chin vector into this frame's (pivot = midpoint of 234/454, chin = 152);
opening the mouth is mostly ``[3]`` (about X).

**exp (50)** ``[0:48]`` the displacement (x, y, z in head coordinates) from the subject's neutral
position of these 16 landmarks, in order: mouth corners 61, 291; outer lip middles 0 (upper),
17 (lower); inner lip middles 13, 14; upper lip sides 39, 269; lower lip sides 181, 405; right eye
lids 159 (upper), 145 (lower); left eye lids 386, 374; brow middles 105, 334.
``[48]`` inner mouth opening |13-14| and ``[49]`` mouth width |61-291|, in head units.

**shape (100)** the subject's neutral (x, y) head coordinates of 50 landmarks
(:data:`SHAPE_LANDMARKS`: the 36-point face oval, eye corners 33, 133, 362, 263, nose 1, 2, 98,
327, 168, 6, mouth 61, 291, 0, 17), the same for every frame of a video.

The **neutral** geometry of a subject is the per-coordinate median over the video's frames of
each landmark's head coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avflow_faces.mesh import (BROW_MIDDLE, CHEEK_EDGE, CHIN, EYE_INNER, EYE_OUTER, EYELID_LEFT, EYELID_RIGHT,
                               FACE_OVAL, FOREHEAD, INNER_LIP_BOTTOM, INNER_LIP_TOP, LOWER_LIP_SIDE,
                               MOUTH_CORNER_LEFT, MOUTH_CORNER_RIGHT, NOSE_BRIDGE, NOSE_TIP, OUTER_LIP_BOTTOM,
                               OUTER_LIP_TOP, SUBNASALE, UPPER_LIP_SIDE, inter_ocular)

SHAPE_DIM, EXP_DIM, POSE_DIM = 100, 50, 6

MOUTH_CORNERS = (MOUTH_CORNER_RIGHT, MOUTH_CORNER_LEFT)
#: Nose wings (98, 327) and the nose ridge point below the bridge (6): shape only.
_NOSE_WINGS, _NOSE_RIDGE = (98, 327), 6
SHAPE_LANDMARKS = FACE_OVAL + (EYE_OUTER[0], EYE_INNER[0], EYE_INNER[1], EYE_OUTER[1], NOSE_TIP, SUBNASALE,
                               *_NOSE_WINGS, NOSE_BRIDGE, _NOSE_RIDGE, *MOUTH_CORNERS, OUTER_LIP_TOP,
                               OUTER_LIP_BOTTOM)
EXP_LANDMARKS = (*MOUTH_CORNERS, OUTER_LIP_TOP, OUTER_LIP_BOTTOM, INNER_LIP_TOP, INNER_LIP_BOTTOM, *UPPER_LIP_SIDE,
                 *LOWER_LIP_SIDE, *EYELID_RIGHT, *EYELID_LEFT, *BROW_MIDDLE)
X_PAIRS = (EYE_OUTER, EYE_INNER, CHEEK_EDGE)
UP_FROM, UP_TO = SUBNASALE, FOREHEAD
ORIGIN = NOSE_BRIDGE
JAW_PIVOT = CHEEK_EDGE

#: Landmarks kept per frame (head coordinates), in this order.
TRACKED = tuple(sorted(set(SHAPE_LANDMARKS) | set(EXP_LANDMARKS) | {CHIN, *JAW_PIVOT}))
_COL = {lm: i for i, lm in enumerate(TRACKED)}
# image axes (y down, z away) -> camera frame with y up, z toward the viewer
_FLIP = np.diag([1.0, -1.0, -1.0])

assert len(SHAPE_LANDMARKS) * 2 == SHAPE_DIM and len(EXP_LANDMARKS) * 3 + 2 == EXP_DIM


@dataclass(frozen=True)
class FrameGeometry:
    """What one frame contributes: head rotation and the tracked landmarks in head coordinates."""

    rotation: np.ndarray  # (3,) axis-angle, camera frame (y up, z toward the viewer)
    points: np.ndarray  # (len(TRACKED), 3) head coordinates


def head_frame(p: np.ndarray) -> np.ndarray:
    """The head frame ``R`` (columns X, Y, Z in image axes) of landmarks ``p`` (N >= 468, 3)."""
    x = sum(p[b] - p[a] for a, b in X_PAIRS)
    x = x / np.linalg.norm(x)
    up = p[UP_TO] - p[UP_FROM]
    up = up - np.dot(up, x) * x
    up = up / np.linalg.norm(up)
    # In image axes (y down) the face normal toward the camera is X x Y with Y pointing up-face.
    z = np.cross(x, up)
    return np.stack([x, up, z], axis=1)


def rotation_to_axis_angle(r: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(r).as_rotvec()


def frame_geometry(p: np.ndarray) -> FrameGeometry:
    """Head rotation and head coordinates of the tracked landmarks for one frame (pixels)."""
    r = head_frame(p)
    iod = inter_ocular(p, dims=3)
    pts = (p[list(TRACKED)] - p[ORIGIN]) @ r / max(iod, 1e-9)
    return FrameGeometry(rotation_to_axis_angle(_FLIP @ r), pts.astype(np.float32))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle of the smallest rotation turning direction ``a`` into direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s = float(np.linalg.norm(axis))
    angle = float(np.arctan2(s, float(np.dot(a, b))))
    if s < 1e-12:
        return np.zeros(3)
    return axis / s * angle


def fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linearly interpolate rows where ``found`` is False (nearest value at the ends)."""
    values = np.array(values, np.float64, copy=True)
    idx = np.flatnonzero(found)
    if len(idx) == len(found) or len(idx) == 0:
        return values
    flat = values.reshape(len(values), -1)
    t = np.arange(len(values))
    for j in range(flat.shape[1]):
        flat[:, j] = np.interp(t, idx, flat[idx, j])
    return flat.reshape(values.shape)


def coefficients(rotations: np.ndarray, points: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame ``shape``, ``exp``, ``pose`` of a whole video (see the module docstring).

    :param rotations: (n, 3) head axis-angles.
    :param points: (n, len(TRACKED), 3) head coordinates of the tracked landmarks.
    """
    n = len(points)
    neutral = np.median(points, axis=0)
    col = [_COL[i] for i in SHAPE_LANDMARKS]
    shape = np.broadcast_to(neutral[col, :2].reshape(-1), (n, SHAPE_DIM))
    ecol = [_COL[i] for i in EXP_LANDMARKS]
    disp = (points[:, ecol] - neutral[ecol]).reshape(n, -1)
    opening = np.linalg.norm(points[:, _COL[INNER_LIP_TOP]] - points[:, _COL[INNER_LIP_BOTTOM]], axis=1)
    width = np.linalg.norm(points[:, _COL[MOUTH_CORNER_RIGHT]] - points[:, _COL[MOUTH_CORNER_LEFT]], axis=1)
    exp = np.concatenate([disp, opening[:, None], width[:, None]], axis=1)
    pivot = (points[:, _COL[JAW_PIVOT[0]]] + points[:, _COL[JAW_PIVOT[1]]]) / 2
    jaw_vec = points[:, _COL[CHIN]] - pivot
    neutral_jaw = neutral[_COL[CHIN]] - (neutral[_COL[JAW_PIVOT[0]]] + neutral[_COL[JAW_PIVOT[1]]]) / 2
    jaw = np.stack([rotation_between(neutral_jaw, v) for v in jaw_vec]) if n else np.zeros((0, 3))
    pose = np.concatenate([np.asarray(rotations, np.float64).reshape(n, 3), jaw], axis=1)
    return {"shape": np.ascontiguousarray(shape, np.float32), "exp": exp.astype(np.float32),
            "pose": pose.astype(np.float32)}
