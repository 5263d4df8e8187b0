"""Face-region geometry, the positional encoding and the frame store: pure functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avflow_musetalk.geometry import (MESH_TO_68, bbox_shift_range, blend_mask, clamp_box, crop_face, mesh_to_68,
                                      musetalk_box, paste_face)
from avflow_musetalk.positional import add_positional_encoding, sinusoidal_table
from avflow_musetalk.store import FrameStore


def face68(cx: float = 100.0, top: float = 60.0, scale: float = 1.0) -> np.ndarray:
    """68 points of a schematic face: jaw from (cx-50, top+40) round to the chin at top+120."""
    pts = np.zeros((68, 2), np.float32)
    for k in range(17):  # jaw: a half ellipse through the chin (point 8)
        a = math.pi * k / 16
        pts[k] = (cx - 50 * math.cos(a), top + 40 + 80 * math.sin(a))
    pts[17:27] = np.stack([np.linspace(cx - 40, cx + 40, 10), np.full(10, top + 20)], 1)  # brows
    pts[27:31] = np.stack([np.full(4, cx), top + 40 + 10 * np.arange(4)], 1)  # bridge 27..30
    pts[31:68] = np.stack([np.linspace(cx - 20, cx + 20, 37), np.full(37, top + 95)], 1)  # nose, eyes, lips
    return pts * scale


def test_mesh_to_68_picks_the_mapped_points():
    assert len(MESH_TO_68) == 68 and len(set(MESH_TO_68)) == 68
    mesh = np.stack([np.arange(468), -np.arange(468)], 1).astype(np.float32)
    lm = mesh_to_68(mesh)
    assert lm.shape == (68, 2)
    assert lm[8, 0] == 152 and lm[29, 0] == 5  # chin, lower nose bridge


def test_musetalk_box_from_landmarks():
    lm = face68()
    # x: jaw extremes 50..150; bottom: chin at 180; centre line: point 29 at y 120;
    # top = 120 - (180 - 120) = 60.
    assert musetalk_box(lm, 640, 480) == (50, 60, 150, 180)
    # bbox_shift moves the centre line: +10 -> line 130, top 130 - 50 = 80
    assert musetalk_box(lm, 640, 480, bbox_shift=10) == (50, 80, 150, 180)
    assert musetalk_box(lm, 640, 480, bbox_shift=-10) == (50, 40, 150, 180)
    # v1.5's extra margin below the chin
    assert musetalk_box(lm, 640, 480, extra_margin=10) == (50, 60, 150, 190)
    assert bbox_shift_range(lm) == (-10, 10)


def test_box_never_leaves_the_frame():
    lm = face68(cx=30, top=-40)  # face partly above and left of the frame
    box = musetalk_box(lm, 120, 100, extra_margin=10)
    x1, y1, x2, y2 = box
    assert 0 <= x1 < x2 <= 120 and 0 <= y1 < y2 <= 100
    assert box == (0, 0, 80, 90)
    # a face entirely outside: no box
    assert musetalk_box(face68(cx=500, top=500), 120, 100) is None
    assert clamp_box((-5, -5, 3, 200), 100, 100) is None  # less than 8 px wide
    assert clamp_box((10.4, 20.6, 50.5, 60), 100, 100) == (10, 21, 50, 60)


def test_falls_back_to_the_detection_box():
    assert musetalk_box(None, 640, 480, detection=(10, 20, 110, 140)) == (10, 20, 110, 140)
    degenerate = np.zeros((68, 2), np.float32)
    assert musetalk_box(degenerate, 640, 480, detection=(10, 20, 110, 140), extra_margin=5) == (10, 20, 110, 145)
    assert musetalk_box(None, 640, 480) is None


def test_crop_is_256_square():
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)
    crop = crop_face(img, (10, 20, 110, 180), 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8


@pytest.mark.parametrize("with_landmarks", [True, False])
def test_blend_mask_covers_mouth_and_jaw_and_fades_out(with_landmarks):
    lm = face68()
    box = musetalk_box(lm, 640, 480, extra_margin=10)
    mask = blend_mask(box, lm if with_landmarks else None)
    h, w = box[3] - box[1], box[2] - box[0]
    assert mask.shape == (h, w) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == pytest.approx(1.0)
    assert not mask[: h // 2].any()  # nothing above the UNet's masked half
    assert not mask[:, 0].any() and not mask[:, -1].any() and not mask[-1].any()  # zero at the box edges
    assert mask[int(h * 0.72), w // 2] > 0.99  # the mouth region itself is fully generated
    # soft edge: values strictly between 0 and 1 exist
    assert ((mask > 0.05) & (mask < 0.95)).any()


def test_paste_changes_only_masked_pixels_inside_the_box():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (240, 320, 3), np.uint8)
    lm = face68()
    box = musetalk_box(lm, 320, 240, extra_margin=10)
    face = rng.integers(0, 255, (256, 256, 3), np.uint8)
    mask = blend_mask(box, lm)
    out = paste_face(img, face, box, mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = box
    outside = np.ones(img.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(out[outside], img[outside])
    inside = out[y1:y2, x1:x2]
    np.testing.assert_array_equal(inside[mask == 0], img[y1:y2, x1:x2][mask == 0])
    assert (inside[mask > 0.5] != img[y1:y2, x1:x2][mask > 0.5]).any()
    assert img is not out


def test_positional_table_matches_the_formula():
    table = sinusoidal_table(50, 384)
    assert table.shape == (50, 384) and table.dtype == np.float32
    for pos, k in [(0, 0), (1, 0), (7, 5), (49, 191)]:
        w = 10000.0 ** (-2 * k / 384)
        assert table[pos, 2 * k] == pytest.approx(math.sin(pos * w), abs=1e-6)
        assert table[pos, 2 * k + 1] == pytest.approx(math.cos(pos * w), abs=1e-6)
    with pytest.raises(ValueError):
        sinusoidal_table(4, 7)


def test_positional_encoding_is_added_per_row():
    import torch

    x = torch.zeros(2, 50, 16)
    y = add_positional_encoding(x)
    np.testing.assert_allclose(y[0].numpy(), sinusoidal_table(50, 16), atol=1e-6)
    assert torch.equal(y[0], y[1])
    half = add_positional_encoding(torch.ones(1, 10, 16, dtype=torch.float16))
    assert half.dtype == torch.float16


def test_frame_store_round_trip(tmp_path):
    store = FrameStore(tmp_path)
    a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    b = np.linspace(0, 1, 10, dtype=np.float32).reshape(2, 5)
    s0 = store.put({"image": a, "latents": b, "landmarks": None})
    s1 = store.put({"image": a[::-1]})
    got = store.get(s0)
    assert set(got) == {"image", "latents"}
    np.testing.assert_array_equal(got["image"], a)
    np.testing.assert_array_equal(got["latents"], b)
    np.testing.assert_array_equal(store.get(s1)["image"], a[::-1])
    assert store.path.exists()
    store.close()
    assert not store.path.exists()
