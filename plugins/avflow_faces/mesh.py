"""MediaPipe Face Mesh landmark indices (468-point topology) and mouth measures built on them.

``faces.landmarks`` fills ``FaceTrack.landmarks`` with a ``(468, 3)`` float32 array in pixels of
the frame (z on the same scale as x, negative towards the camera). Other plugins index it with
the constants below, e.g. the mouth opening of one face::

    from avflow_faces.mesh import mouth_opening
    value = mouth_opening(face.landmarks)      # 0 when closed, ~0.3-0.6 wide open

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
NOSE_TIP = 1
CHIN = 152


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (13 to 14) divided by the mouth width (61 to 291), in the image plane.

    Scale-free, so faces of different sizes compare; about 0 when the lips touch.
    """
    lm = np.asarray(landmarks, np.float64)[:, :2]
    width = float(np.linalg.norm(lm[MOUTH_CORNER_LEFT] - lm[MOUTH_CORNER_RIGHT]))
    gap = float(np.linalg.norm(lm[INNER_LIP_BOTTOM] - lm[INNER_LIP_TOP]))
    return gap / width if width > 0 else 0.0


def mouth_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` in the landmarks' pixels of the outer lip contour."""
    pts = np.asarray(landmarks, np.float64)[list(OUTER_LIP), :2]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (33 to 263), a face scale in pixels."""
    lm = np.asarray(landmarks, np.float64)[:, :2]
    return float(np.linalg.norm(lm[EYE_OUTER_LEFT] - lm[EYE_OUTER_RIGHT]))
