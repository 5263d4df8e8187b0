"""The face-mesh vocabulary: MediaPipe Face Mesh landmark indices (468-point topology), the
distances built on them, and the conversion of MediaPipe's results to pixel arrays.

``faces.landmarks`` fills ``FaceTrack.landmarks`` with a ``(468, 3)`` float32 array in pixels of
the frame (z on the same scale as x, negative towards the camera). Every plugin indexes it with
the constants below rather than with its own numbers, e.g. the mouth opening of one face::

    from avflow_faces.mesh import inter_ocular, mouth_opening
    value = mouth_opening(face.landmarks)      # 0 when closed, ~0.3-0.6 wide open
    scale = inter_ocular(face.landmarks)       # pixels between the outer eye corners

The MediaPipe objects themselves come from :mod:`avflow_faces.models`.

The contours come from ``mediapipe.solutions.face_mesh.FACEMESH_LIPS``, ordered from the
subject's right mouth corner (image left, index 61 outer / 78 inner) to the left one (291 / 308).
Everything here is plain numpy: importing it loads no model.
"""

from __future__ import annotations

import numpy as np

#: Number of landmarks of the face mesh model (without iris refinement).
N_LANDMARKS = 468

#: Mouth corners on the outer lip contour (subject's right, subject's left).
MOUTH_CORNER_RIGHT = 61
MOUTH_CORNER_LEFT = 291
#: Mid points of the outer lip contour (top of the upper lip, bottom of the lower lip).
OUTER_LIP_TOP = 0
OUTER_LIP_BOTTOM = 17
#: Mid points of the inner lip contour: these two meet when the mouth is closed.
INNER_LIP_TOP = 13
INNER_LIP_BOTTOM = 14
#: Corners of the inner lip contour.
INNER_CORNER_RIGHT = 78
INNER_CORNER_LEFT = 308

#: Outer lip contour, upper half then lower half, each corner to corner (61 ... 291).
OUTER_LIP_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LIP_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
#: Inner lip contour, upper half then lower half, each corner to corner (78 ... 308).
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
#: Closed outer / inner lip polygons (each point once, in drawing order).
OUTER_LIP = OUTER_LIP_UPPER + OUTER_LIP_LOWER[-2:0:-1]
INNER_LIP = INNER_LIP_UPPER + INNER_LIP_LOWER[-2:0:-1]
#: Every lip landmark (outer and inner contours), sorted.
LIPS = tuple(sorted(set(OUTER_LIP) | set(INNER_LIP)))

#: Outer eye corners (subject's right, subject's left), a scale reference independent of the mouth.
EYE_OUTER_RIGHT = 33
EYE_OUTER_LEFT = 263
EYE_OUTER = (EYE_OUTER_RIGHT, EYE_OUTER_LEFT)
#: Inner eye corners (subject's right, subject's left).
EYE_INNER = (133, 362)
#: Eyelid middles: right upper, right lower, left upper, left lower.
EYELID_RIGHT = (159, 145)
EYELID_LEFT = (386, 374)
#: Brow middles (subject's right, subject's left).
BROW_MIDDLE = (105, 334)
#: Cheek edges of the face oval at eye height (subject's right, subject's left).
CHEEK_EDGE = (234, 454)
#: Upper and lower lip sides between the corners and the middle (right, left).
UPPER_LIP_SIDE = (39, 269)
LOWER_LIP_SIDE = (181, 405)
NOSE_TIP = 1
#: Subnasale, where the nose meets the upper lip.
SUBNASALE = 2
#: Between the eyes, on the nose bridge.
NOSE_BRIDGE = 168
FOREHEAD = 10
CHIN = 152
#: Face oval, clockwise in the image from the forehead (10).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def mesh_points(landmarks, width: float, height: float, n: int = N_LANDMARKS,
                dtype: type = np.float32) -> np.ndarray | None:
    """One MediaPipe face's normalised landmarks as an ``(n, 3)`` float32 array in pixels of a
    ``width`` x ``height`` image (z on the x scale, as MediaPipe defines it), or None if the
    result has fewer than ``n`` points.

    :param landmarks: a ``NormalizedLandmarkList`` (``result.multi_face_landmarks[i]``).
    """
    points = landmarks.landmark
    if len(points) < n:
        return None
    xyz = _wire_xyz(landmarks, len(points))
    if xyz is None:
        xyz = np.array([(p.x, p.y, p.z) for p in points], np.float32)
    return (xyz[:n] * np.array([width, height, width], np.float32)).astype(dtype, copy=False)


# A NormalizedLandmark holding exactly x, y, z is 17 bytes on the wire: its field tag (0x0a), its
# length (15), then three tagged float32s (0x0d, 0x15, 0x1d). Reading them straight from the
# serialised list is ~10x faster than 468 Python attribute reads per face (0.28 ms a face).
_WIRE = np.dtype([("tag", "u1"), ("size", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"), ("y", "<f4"),
                  ("tz", "u1"), ("z", "<f4")])


def _wire_xyz(landmarks, count: int) -> np.ndarray | None:
    """``(count, 3)`` float32 from the serialised landmarks, or None if the layout is another one
    (visibility or presence set, a default value left out): then read them one by one."""
    try:
        raw = landmarks.SerializeToString()
    except AttributeError:
        return None
    if len(raw) != _WIRE.itemsize * count:
        return None
    rows = np.frombuffer(raw, _WIRE)
    if not ((rows["tag"] == 0x0A).all() and (rows["size"] == 0x0F).all() and (rows["tx"] == 0x0D).all()
            and (rows["ty"] == 0x15).all() and (rows["tz"] == 0x1D).all()):
        return None
    out = np.empty((count, 3), np.float32)
    out[:, 0], out[:, 1], out[:, 2] = rows["x"], rows["y"], rows["z"]
    return out


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (13 to 14) divided by the mouth width (61 to 291), in the image plane.

    Scale-free, so faces of different sizes compare; about 0 when the lips touch. (The mouth
    opening of ``datasets.face_coefs`` is the same gap in head units: over :func:`inter_ocular`.)
    """
    lm = np.asarray(landmarks, np.float64)[:, :2]
    width = float(np.linalg.norm(lm[MOUTH_CORNER_LEFT] - lm[MOUTH_CORNER_RIGHT]))
    gap = float(np.linalg.norm(lm[INNER_LIP_BOTTOM] - lm[INNER_LIP_TOP]))
    return gap / width if width > 0 else 0.0


def inter_ocular(landmarks: np.ndarray, dims: int = 2) -> float:
    """Distance between the outer eye corners (33 to 263), the face scale that does not move with
    the mouth: in the image plane (``dims=2``) or in 3-D (``dims=3``, z on the x scale)."""
    lm = np.asarray(landmarks, np.float64)[:, :dims]
    return float(np.linalg.norm(lm[EYE_OUTER_LEFT] - lm[EYE_OUTER_RIGHT]))
