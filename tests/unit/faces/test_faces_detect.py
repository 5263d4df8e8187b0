"""faces.detect: MediaPipe face detection on real clips, blank frames, mosaics, large frames."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from avflow import FaceDetections, InputError, VideoFrame
from avflow.testing import NodeRunner
from avflow_faces import FaceDetect
from avflow_faces.nodes.detect import split_windows


def _inside(box, w, h):
    return 0 <= box.x and 0 <= box.y and box.x + box.w <= w + 1e-6 and box.y + box.h <= h + 1e-6


@pytest.mark.parametrize("model", ["short", "full"])
def test_detect_finds_the_face_in_each_real_clip(talking, make_frames, model):
    runner = NodeRunner(FaceDetect, model=model)
    runner.open()
    try:
        for name, images in talking.items():
            frames = make_frames(images[:2], start=10)
            outs = [runner.node.process("frames", f, runner.ctx)["detections"] for f in frames]
            for frame, det in zip(frames, outs):
                assert isinstance(det, FaceDetections)
                assert (det.frame_index, det.pts, det.time_base) == (frame.index, frame.pts, frame.time_base)
                assert (det.width, det.height) == (frame.width, frame.height)
                assert len(det.boxes) == 1, f"{name}: {det.boxes}"
                box = det.boxes[0]
                assert _inside(box, det.width, det.height)
                assert box.score >= 0.5
                assert box.w * box.h > 0.05 * det.width * det.height  # a talking head, not a speck
                assert box.keypoints.shape == (6, 2) and box.keypoints.dtype == np.float32
                # MediaPipe's keypoints (eyes, nose, mouth) lie in the face box.
                assert np.all((box.keypoints[:4, 0] >= box.x) & (box.keypoints[:4, 0] <= box.x + box.w))
    finally:
        runner.close()


def test_detect_blank_frames_give_empty_detections(make_frames):
    images = [np.zeros((120, 160, 3), np.uint8), np.full((120, 160, 3), 128, np.uint8),
              np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8)]
    out = NodeRunner(FaceDetect).run({"frames": make_frames(images)})["detections"]
    assert [d.boxes for d in out] == [[], [], []]
    assert [d.frame_index for d in out] == [0, 1, 2]


def test_detect_two_clips_side_by_side_gives_two_boxes(two_faces, make_frames):
    for model in ("short", "full"):
        det = NodeRunner(FaceDetect, model=model).run({"frames": make_frames([two_faces])})["detections"][0]
        assert len(det.boxes) == 2, model
        halves = sorted(int((b.x + b.w / 2) // 350) for b in det.boxes)
        assert halves == [0, 1], model


def test_detect_wide_mosaic_is_split_into_windows(talking, make_frames):
    import cv2

    tiles = [cv2.resize(talking[n][k], (200, 200), interpolation=cv2.INTER_AREA)
             for k in (0, 3) for n in ("talking1", "talking2", "talking3")]
    strip = np.ascontiguousarray(np.concatenate(tiles, axis=1))  # 200 x 1200: six faces in a row
    det = NodeRunner(FaceDetect).run({"frames": make_frames([strip])})["detections"][0]
    assert sorted(int((b.x + b.w / 2) // 200) for b in det.boxes) == [0, 1, 2, 3, 4, 5]
    assert all(_inside(b, 1200, 200) for b in det.boxes)


def test_split_windows_cover_the_frame_with_overlap():
    assert split_windows(700, 700, 2.5) == [(0, 0, 700, 700)]
    assert split_windows(1200, 200, None) == [(0, 0, 1200, 200)]
    wins = split_windows(1300, 200, 2.5)
    assert all(w == 400 and h == 200 for _, _, w, h in wins)
    assert wins[0][0] == 0 and wins[-1][0] + 400 == 1300
    assert all(b[0] - a[0] <= 200 for a, b in zip(wins, wins[1:]))  # any 200-px face lies whole in one
    tall = split_windows(100, 500, 2.5)
    assert tall[0] == (0, 0, 100, 200) and tall[-1][1] + 200 == 500


def test_detect_large_frame_boxes_are_in_frame_pixels(talking, make_frames):
    import cv2

    small = talking["talking1"][0]
    big = cv2.resize(small, (2800, 2800), interpolation=cv2.INTER_LINEAR)
    out = NodeRunner(FaceDetect, max_side=700).run({"frames": make_frames([small, big])})["detections"]
    a, b = out[0].boxes[0], out[1].boxes[0]
    assert (out[1].width, out[1].height) == (2800, 2800)
    np.testing.assert_allclose(np.array(b.as_xywh()) / 4, a.as_xywh(), atol=6)
    np.testing.assert_allclose(b.keypoints / 4, a.keypoints, atol=6)


def test_detect_every_n_repeats_the_last_boxes(talking, make_frames):
    frames = make_frames(talking["talking1"][:4])
    out = NodeRunner(FaceDetect, every_n=3).run({"frames": frames})["detections"]
    assert [d.frame_index for d in out] == [0, 1, 2, 3]
    assert out[1].boxes[0].as_xywh() == out[0].boxes[0].as_xywh() == out[2].boxes[0].as_xywh()
    assert out[1].boxes[0] is not out[0].boxes[0]
    every = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    assert out[3].boxes[0].as_xywh() == every[3].boxes[0].as_xywh()  # detected again on frame 3


def test_detect_max_faces_keeps_the_best(two_faces, make_frames):
    det = NodeRunner(FaceDetect, max_faces=1).run({"frames": make_frames([two_faces])})["detections"][0]
    assert len(det.boxes) == 1


@pytest.mark.parametrize("image", [np.zeros((50, 50), np.uint8), np.zeros((50, 50, 4), np.uint8),
                                   np.zeros((50, 50, 3), np.float32)])
def test_detect_rejects_bad_frames(image):
    runner = NodeRunner(FaceDetect)
    with pytest.raises(InputError, match=r"frames.*HxWx3 uint8"):
        runner.run({"frames": [VideoFrame(pts=0, time_base=Fraction(1, 25), image=image, index=0)]})


def test_importing_the_plugin_loads_no_heavy_module():
    code = ("import sys, avflow_faces, avflow_faces.mesh, avflow_faces.tracker; "
            "print(sorted(m for m in ('cv2', 'mediapipe', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
