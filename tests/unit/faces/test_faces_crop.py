"""faces.crop: square crops, lower half for SyncNet, edge padding, expansion, landmarks, streaming."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow import Box, FaceCrop, FaceTrack, InputError, TrackedFaces, VideoFrame
from avflow.testing import NodeRunner
from avflow_faces import FaceCropper, FaceDetect, FaceTracker

TB = Fraction(1, 25)


def frame(i, w=200, h=150, seed=0):
    img = np.random.default_rng(seed + i).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return VideoFrame(pts=i * 3, time_base=TB, image=img, index=i)


def tracked(i, faces, w=200, h=150):
    return TrackedFaces(pts=i * 3, time_base=TB, frame_index=i, width=w, height=h,
                        faces=[f if isinstance(f, FaceTrack) else FaceTrack(f[0], f[1]) for f in faces])


def crop_one(box, landmarks=None, **params):
    f = frame(0)
    t = tracked(0, [FaceTrack("face_0", box, landmarks=landmarks)])
    out = NodeRunner(FaceCropper, **params).run({"frames": [f], "tracks": [t]})["crops"]
    assert len(out) == 1
    return f, out[0]


@pytest.mark.parametrize("size,region,shape", [(96, "full", (96, 96, 3)), (96, "lower_half", (48, 96, 3)),
                                               (64, "lower_half", (32, 64, 3)), (33, "full", (33, 33, 3))])
def test_crop_shapes(size, region, shape):
    _, c = crop_one(Box(60, 40, 60, 70), size=size, region=region)
    assert isinstance(c, FaceCrop) and c.image.shape == shape and c.image.dtype == np.uint8
    assert c.image.flags["C_CONTIGUOUS"]
    assert (c.track_id, c.frame_index, c.pts, c.time_base) == ("face_0", 0, 0, TB)


def test_lower_half_is_the_bottom_of_the_full_crop():
    _, full = crop_one(Box(60, 40, 60, 70))
    _, half = crop_one(Box(60, 40, 60, 70), region="lower_half")
    np.testing.assert_array_equal(half.image, full.image[48:])
    assert half.box.y == pytest.approx(full.box.y + full.box.h / 2)
    assert half.box.h == pytest.approx(full.box.h / 2) and half.box.w == full.box.w


def test_expansion_and_square_around_the_box_centre():
    box = Box(50, 40, 100, 60)
    _, c = crop_one(box, expand=0.2)
    assert c.box.w == c.box.h == 120  # 20% more than the longer side, square
    assert c.box.x + c.box.w / 2 == pytest.approx(100, abs=0.5)
    assert c.box.y + c.box.h / 2 == pytest.approx(70, abs=0.5)
    _, c0 = crop_one(box, expand=0.0)
    assert c0.box.w == 100


def test_crop_content_is_the_frame_region():
    f, c = crop_one(Box(50, 40, 64, 64), expand=0.0, size=64)  # no resize: an exact copy
    np.testing.assert_array_equal(c.image, f.image[40:104, 50:114])


def test_padding_replicates_the_border_at_the_frame_edge():
    f, c = crop_one(Box(0, 0, 40, 40), expand=0.5, size=60)  # square of 60 at (-10, -10)
    assert (c.box.x, c.box.y, c.box.w) == (-10, -10, 60)
    img = c.image
    np.testing.assert_array_equal(img[10:, 10:], f.image[:50, :50])
    for k in range(10):
        np.testing.assert_array_equal(img[10:, k], f.image[:50, 0])  # left edge column repeated
        np.testing.assert_array_equal(img[k, 10:], f.image[0, :50])  # top edge row repeated
    # A box hanging over the bottom-right corner too.
    _, c2 = crop_one(Box(170, 120, 40, 40), expand=0.0, size=40)
    assert c2.image.shape == (40, 40, 3)
    np.testing.assert_array_equal(c2.image[35:, 35:], np.broadcast_to(f.image[149, 199], (5, 5, 3)))


def test_landmarks_are_mapped_into_the_crop():
    lm = np.array([[100, 70, 3.0], [70, 40, 0.0]], np.float32)  # box centre, box top-left
    _, c = crop_one(Box(70, 40, 60, 60), landmarks=lm, expand=0.0, size=96)
    np.testing.assert_allclose(c.landmarks, [[48, 48], [0, 0]], atol=1e-4)
    _, h = crop_one(Box(70, 40, 60, 60), landmarks=lm, expand=0.0, size=96, region="lower_half")
    np.testing.assert_allclose(h.landmarks, [[48, 0], [0, -48]], atol=1e-4)
    _, none = crop_one(Box(70, 40, 60, 60))
    assert none.landmarks is None


def test_streamed_join_in_order_with_tracks_lagging():
    frames = [frame(i) for i in range(8)]
    tracks = [tracked(i, [("face_0", Box(20 + i, 30, 50, 50))] + ([("face_1", Box(120, 30, 50, 50))] if i % 2 else []))
              for i in range(8)]
    runner = NodeRunner(FaceCropper, size=32)
    for i in range(8):
        runner.feed("frames", frames[i])
        if i >= 3:
            runner.feed("tracks", tracks[i - 3])
        assert runner.node.pending <= 4
    for t in tracks[5:]:
        runner.feed("tracks", t)
    out = runner.finish()["crops"]
    runner.close()
    assert [(c.frame_index, c.track_id) for c in out] == \
        [(t.frame_index, f.track_id) for t in tracks for f in t.faces]
    assert all(c.pts == c.frame_index * 3 for c in out)


def test_smoothing_steadies_jittery_boxes():
    rng = np.random.default_rng(0)
    n = 30
    frames = [frame(i) for i in range(n)]
    tracks = [tracked(i, [("face_0", Box(70 + rng.normal(0, 4), 40 + rng.normal(0, 4), 60, 60))]) for i in range(n)]
    raw = NodeRunner(FaceCropper).run({"frames": frames, "tracks": tracks})["crops"]
    runner = NodeRunner(FaceCropper, smooth=5)
    for f, t in zip(frames, tracks):
        runner.feed("frames", f)
        runner.feed("tracks", t)
        assert runner.node.pending <= 5
    smooth = runner.finish()["crops"]
    runner.close()
    assert [c.frame_index for c in smooth] == list(range(n))
    jitter = lambda cs: np.std(np.diff([c.box.x for c in cs]))  # noqa: E731
    assert jitter(smooth) < 0.6 * jitter(raw)


def test_size_mismatch_and_runaway_buffer_are_input_errors():
    with pytest.raises(InputError, match="640x480"):
        NodeRunner(FaceCropper).run({"frames": [frame(0)], "tracks": [tracked(0, [], w=640, h=480)]})
    runner = NodeRunner(FaceCropper, max_pending=4)
    with pytest.raises(InputError, match="max_pending"):
        for i in range(10):
            runner.feed("frames", frame(i))
    runner.close()


def test_crops_of_a_real_clip_through_detect_and_track(talking, make_frames):
    frames = make_frames(talking["talking3"][:4])
    dets = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    tracks = NodeRunner(FaceTracker, max_missed=1, min_track_len=2, scene_cut=None).run({"detections": dets})["tracks"]
    crops = NodeRunner(FaceCropper, region="lower_half").run({"frames": frames, "tracks": tracks})["crops"]
    assert [c.frame_index for c in crops] == [0, 1, 2, 3]
    assert all(c.image.shape == (48, 96, 3) and c.track_id == "face_0" for c in crops)
    assert all(c.image.std() > 10 for c in crops)  # a face, not padding
