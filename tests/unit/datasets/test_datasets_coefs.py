"""The MediaPipe-landmark coefficients: head pose, jaw, expression and shape, on synthetic faces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from avflow_datasets import coefs as C


def _face(seed=0):
    """468 points in head coordinates (x right, y up, z toward the camera) whose anatomical frame is
    exactly the identity: symmetric eye/cheek pairs, forehead straight above the subnasale."""
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(468, 3))
    for a, c in C.X_PAIRS:
        y, z = rng.normal(size=2)
        b[a] = [-1 - rng.random(), y, z]
        b[c] = [-b[a][0], y, z]
    b[C.UP_FROM] = [0, -1, 0.4]
    b[C.UP_TO] = [0, 2, 0.4]
    b[C.CHIN] = [0, -3, 0.5]  # below the jaw pivot (the 234/454 midpoint, x = 0)
    return b


def _to_image(head_pts, rotvec, scale=80.0, shift=(320, 240, 0)):
    """Rotate in the camera frame (y up, z toward the viewer) and express in image axes."""
    r = Rotation.from_rotvec(rotvec).as_matrix()
    return (C._FLIP @ (r @ head_pts.T)).T * scale + np.array(shift)


def test_dimensions_are_flame_sized():
    assert (C.SHAPE_DIM, C.EXP_DIM, C.POSE_DIM) == (100, 50, 6)
    assert len(C.SHAPE_LANDMARKS) == 50 and len(set(C.SHAPE_LANDMARKS)) == 50
    assert len(C.EXP_LANDMARKS) == 16 and max(C.TRACKED) < 468


@pytest.mark.parametrize("rotvec", [(0, 0, 0), (0.2, -0.3, 0.1), (-0.5, 0.4, 0.3), (0, 0.9, 0)])
def test_head_rotation_is_recovered(rotvec):
    face = _face()
    g = C.frame_geometry(_to_image(face, rotvec))
    assert np.allclose(g.rotation, rotvec, atol=1e-9)
    # head coordinates do not depend on pose, position or scale
    g0 = C.frame_geometry(_to_image(face, (0, 0, 0), scale=20, shift=(10, 10, 5)))
    assert np.allclose(g.points, g0.points, atol=1e-5)


def test_neutral_frames_have_zero_expression_and_jaw():
    face = _face()
    geos = [C.frame_geometry(_to_image(face, (0.1 * i, 0, 0))) for i in range(5)]
    out = C.coefficients(np.stack([g.rotation for g in geos]), np.stack([g.points for g in geos]))
    assert out["shape"].shape == (5, 100) and out["exp"].shape == (5, 50) and out["pose"].shape == (5, 6)
    assert np.allclose(out["exp"][:, :48], 0, atol=1e-5) and np.allclose(out["pose"][:, 3:], 0, atol=1e-5)
    assert np.allclose(out["pose"][:, 0], [0, 0.1, 0.2, 0.3, 0.4], atol=1e-6)
    assert np.allclose(out["shape"], out["shape"][0])  # the same subject geometry on every frame
    iod = np.linalg.norm(face[263] - face[33])
    expected = (face[list(C.SHAPE_LANDMARKS)] - face[C.ORIGIN])[:, :2] / iod
    assert np.allclose(out["shape"][0], expected.reshape(-1), atol=1e-5)


def test_jaw_opening_and_lip_displacement():
    face = _face()
    frames = []
    for k in range(5):  # neutral on 3 of 5 frames (the median), then the chin and lower lip drop
        f = face.copy()
        if k >= 3:
            pivot = (f[234] + f[454]) / 2
            rot = Rotation.from_rotvec([0.2, 0, 0]).as_matrix()
            for lm in (C.CHIN, 14, 17):
                f[lm] = pivot + rot @ (f[lm] - pivot)
        frames.append(C.frame_geometry(_to_image(f, (0, 0.2, 0))))
    out = C.coefficients(np.stack([g.rotation for g in frames]), np.stack([g.points for g in frames]))
    assert np.allclose(out["pose"][:3, 3:], 0, atol=1e-6)
    assert np.allclose(out["pose"][3:, 3:], [0.2, 0, 0], atol=1e-5)
    iod = np.linalg.norm(face[263] - face[33])
    lower_lip = C.EXP_LANDMARKS.index(17)
    pivot = (face[234] + face[454]) / 2
    moved = pivot + Rotation.from_rotvec([0.2, 0, 0]).as_matrix() @ (face[17] - pivot)
    assert np.allclose(out["exp"][4, 3 * lower_lip:3 * lower_lip + 3], (moved - face[17]) / iod, atol=1e-5)
    assert np.allclose(out["exp"][:3, 48], np.linalg.norm(face[13] - face[14]) / iod, atol=1e-5)


def test_fill_missing_interpolates_linearly():
    v = np.array([[0.0], [9.0], [2.0], [9.0], [4.0], [9.0]])
    found = np.array([True, False, True, False, True, False])
    assert C.fill_missing(v, found)[:, 0].tolist() == [0, 1, 2, 3, 4, 4]
