"""avflow_faces.geometry: the box helpers the face nodes share."""

from __future__ import annotations

import numpy as np
import pytest

from avflow import Box
from avflow_faces import geometry as g


def test_clip_box_cuts_to_the_frame_and_drops_outside_boxes():
    kp = np.array([[-5, 5], [50, 200]], np.float32)
    b = g.clip_box(Box(-10, 20, 50, 200, 0.9, kp), 100, 100)
    assert b.as_xywh() == [0, 20, 40, 80] and b.score == 0.9
    np.testing.assert_array_equal(b.keypoints, [[0, 5], [50, 100]])
    assert g.clip_box(Box(120, 0, 10, 10), 100, 100) is None


def test_expand_and_square_keep_the_centre():
    b = g.square_box(g.expand_box(Box(10, 20, 100, 50), 0.2))
    assert b.w == b.h == pytest.approx(120)
    assert (b.x + b.w / 2, b.y + b.h / 2) == pytest.approx((60, 45))
    assert g.crop_region(Box(10, 20, 100, 50), 0.2) == (0, -15, 120)


def test_cut_padded_inside_partly_and_fully_outside():
    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    np.testing.assert_array_equal(g.cut_padded(img, 1, 1, 3), img[1:4, 1:4])
    part = g.cut_padded(img, 4, 3, 4)
    assert part.shape == (4, 4, 3)
    np.testing.assert_array_equal(part[:2, :2], img[3:5, 4:6])
    np.testing.assert_array_equal(part[3, 3], img[4, 5])
    far = g.cut_padded(img, 50, 50, 2)
    assert far.shape == (2, 2, 3) and (far == img[4, 5]).all()


def test_interpolate_gap_is_linear():
    boxes = g.interpolate_gap(Box(0, 0, 10, 10, 1.0), Box(40, 20, 50, 10, 0.6), 3)
    assert [b.x for b in boxes] == [10, 20, 30]
    assert [b.w for b in boxes] == [20, 30, 40]
    assert boxes[1].score == pytest.approx(0.8)


def test_iou_matrix_matches_box_iou():
    a = [Box(0, 0, 10, 10), Box(5, 5, 10, 10)]
    b = [Box(0, 0, 10, 10), Box(20, 20, 5, 5), Box(0, 5, 10, 10)]
    m = g.iou_matrix(a, b)
    assert m.shape == (2, 3)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert m[i, j] == pytest.approx(x.iou(y))
    assert g.iou_matrix([], b).shape == (0, 3)


def test_nms_drops_duplicates_and_half_faces():
    whole = Box(100, 0, 50, 50, 0.9)
    dup = Box(102, 1, 50, 50, 0.8)
    half = Box(100, 0, 25, 50, 0.6)
    other = Box(300, 0, 50, 50, 0.7)
    assert g.nms([dup, half, other, whole]) == [whole, other]
