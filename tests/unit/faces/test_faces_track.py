"""faces.track and IoUTracker: one-to-one matching, late and leaving faces, gaps, short tracks,
scene cuts, empty frames, one output per input, bounded streaming."""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest

from avflow import Box, FaceDetections, InputError, TrackedFaces, VideoFrame
from avflow.testing import NodeRunner
from avflow_faces import FaceTracker
from avflow_faces.tracker import IoUTracker

TB = Fraction(1, 25)


def det(i, *boxes, w=640, h=480):
    return FaceDetections(pts=i * 2, time_base=TB, frame_index=i, width=w, height=h,
                          boxes=[Box(*b) if not isinstance(b, Box) else b for b in boxes])


def run_tracker(dets, **params):
    params.setdefault("scene_cut", None)
    return NodeRunner(FaceTracker, **params).run({"detections": dets})["tracks"]


def ids_per_frame(tracks):
    return [[f.track_id for f in t.faces] for t in tracks]


def boxes_of(tracks, track_id):
    return {t.frame_index: f for t in tracks for f in t.faces if f.track_id == track_id}


def test_one_output_per_input_in_order_also_without_faces():
    dets = [det(i) if i % 3 else det(i, (100, 100, 80, 80)) for i in range(20)]
    dets += [det(i) for i in range(20, 30)]
    out = run_tracker(dets, max_missed=2, min_track_len=1)
    assert [(t.frame_index, t.pts, t.time_base, t.width, t.height) for t in out] == \
        [(d.frame_index, d.pts, d.time_base, d.width, d.height) for d in dets]
    assert all(isinstance(t, TrackedFaces) for t in out)
    assert all(t.faces == [] for t in out[20:])


def test_overlapping_detections_never_share_a_track():
    a = (100, 100, 100, 100)
    dets = [det(i, a) for i in range(5)]
    # Two detections, both overlapping track face_0: only one may continue it.
    dets += [det(i, (105, 100, 100, 100), (140, 100, 100, 100)) for i in range(5, 12)]
    out = run_tracker(dets, max_missed=2, min_track_len=3)
    for faces in ids_per_frame(out):
        assert len(faces) == len(set(faces))
    assert ids_per_frame(out)[6] == ["face_0", "face_1"]
    assert boxes_of(out, "face_0")[8].box.x == 105  # the better match continues the track
    assert boxes_of(out, "face_1")[8].box.x == 140


def test_hungarian_matching_beats_greedy():
    # Greedy (best IoU first) gives d0 to B and leaves A unmatched; the optimal one-to-one
    # assignment keeps both tracks: A-d0, B-d1.
    A, B = Box(0, 0, 100, 100), Box(60, 0, 100, 100)
    d0, d1 = Box(35, 0, 100, 100), Box(95, 0, 100, 100)  # IoU A-d0 .48, B-d0 .6, B-d1 .48
    tracker = IoUTracker(min_iou=0.2, max_missed=0, min_track_len=1)
    tracker.push(det(0, A, B))
    out = tracker.push(det(1, d0, d1)) + tracker.flush()
    assert {f.track_id: f.box.x for f in out[-1].faces} == {"face_0": 35, "face_1": 95}


def test_late_face_gets_a_new_track():
    dets = [det(i, (50, 50, 100, 100), *([(400, 60, 90, 90)] if i >= 15 else [])) for i in range(30)]
    out = run_tracker(dets, max_missed=3, min_track_len=5)
    face1 = boxes_of(out, "face_1")
    assert min(face1) == 15 and max(face1) == 29
    assert len(boxes_of(out, "face_0")) == 30
    assert ids_per_frame(out)[14] == ["face_0"]


def test_leaving_face_track_ends_after_max_missed():
    dets = [det(i, (50, 50, 100, 100)) for i in range(10)]
    dets += [det(i) for i in range(10, 14)]  # gone 4 frames > max_missed=3: the track ends
    dets += [det(i, (50, 50, 100, 100)) for i in range(14, 24)]  # back at the same place
    out = run_tracker(dets, max_missed=3, min_track_len=3)
    assert sorted(boxes_of(out, "face_0")) == list(range(10))  # no interpolation over a long gap
    assert sorted(boxes_of(out, "face_1")) == list(range(14, 24))
    assert all(t.faces == [] for t in out[10:14])


def test_short_gap_is_interpolated():
    dets = [det(i, (10 * i, 100, 80, 80)) if not 5 <= i <= 7 else det(i) for i in range(12)]
    out = run_tracker(dets, max_missed=3, min_track_len=3)
    track = boxes_of(out, "face_0")
    assert sorted(track) == list(range(12))
    for i in range(12):
        assert track[i].interpolated == (5 <= i <= 7)
        assert track[i].box.x == pytest.approx(10 * i)  # linear between frames 4 and 8
        assert track[i].box.w == pytest.approx(80)
    assert ids_per_frame(out) == [["face_0"]] * 12


def test_interpolation_carries_keypoints():
    kp = np.zeros((6, 2), np.float32)
    dets = [det(0, Box(0, 0, 50, 50, 0.9, kp)), det(1), det(2, Box(20, 0, 50, 50, 0.7, kp + 20))]
    out = run_tracker(dets, max_missed=1, min_track_len=1)
    mid = out[1].faces[0]
    assert mid.interpolated and mid.box.x == pytest.approx(10)
    np.testing.assert_allclose(mid.box.keypoints, kp + 10)
    assert mid.box.score == pytest.approx(0.8)


def test_short_tracks_are_dropped_and_ids_stay_contiguous():
    dets = []
    for i in range(30):
        boxes = []
        if i < 2:
            boxes.append((500, 300, 40, 40))  # a 2-frame false positive
        if i >= 3:
            boxes.append((50, 50, 100, 100))
        if 10 <= i < 13:
            boxes.append((300, 50, 60, 60))  # 3 frames: still too short
        if i >= 20:
            boxes.append((400, 200, 100, 100))
        dets.append(det(i, *boxes))
    out = run_tracker(dets, max_missed=2, min_track_len=4)
    ids = sorted({f for faces in ids_per_frame(out) for f in faces})
    assert ids == ["face_0", "face_1"]
    assert sorted(boxes_of(out, "face_0")) == list(range(3, 30))
    assert sorted(boxes_of(out, "face_1")) == list(range(20, 30))
    assert out[0].faces == [] and out[11].faces[0].track_id == "face_0" and len(out[11].faces) == 1


def _frame(i, color):
    img = np.zeros((48, 64, 3), np.uint8)
    img[:] = color
    img[10:30, 20:40] = (200, 180, 160)  # a "face" that stays put
    return VideoFrame(pts=i * 2, time_base=TB, image=img, index=i)


def test_scene_cut_resets_every_track():
    runner = NodeRunner(FaceTracker, max_missed=5, min_track_len=2)
    for i in range(20):
        runner.feed("frames", _frame(i, (30, 90, 200) if i < 10 else (220, 60, 20)))
        runner.feed("detections", det(i, (20, 10, 20, 20), w=64, h=48))
    out = runner.finish()["tracks"]
    runner.close()
    assert [t.scene_cut for t in out] == [i == 10 for i in range(20)]
    assert ids_per_frame(out) == [["face_0"]] * 10 + [["face_1"]] * 10


def test_scene_cut_with_frames_behind_and_ahead():
    """Frames may arrive before or after their detections (separate ports)."""
    frames = [_frame(i, (30, 90, 200) if i < 6 else (220, 60, 20)) for i in range(12)]
    dets = [det(i, (20, 10, 20, 20), w=64, h=48) for i in range(12)]
    for order in ("frames_first", "dets_first"):
        runner = NodeRunner(FaceTracker, max_missed=2, min_track_len=1)
        first, second = (("frames", frames), ("detections", dets)) if order == "frames_first" else \
            (("detections", dets), ("frames", frames))
        for item in first[1]:
            runner.feed(first[0], item)
        for item in second[1]:
            runner.feed(second[0], item)
        out = runner.finish()["tracks"]
        runner.close()
        assert [t.scene_cut for t in out] == [i == 6 for i in range(12)], order
        assert ids_per_frame(out) == [["face_0"]] * 6 + [["face_1"]] * 6, order


def test_output_lags_by_a_bounded_delay():
    tracker = IoUTracker(min_iou=0.3, max_missed=4, min_track_len=3)
    assert tracker.delay == 6
    emitted = 0
    for i in range(20):
        emitted += len(tracker.push(det(i, (i, 0, 50, 50))))
        assert emitted == max(0, i + 1 - tracker.delay)
    assert emitted + len(tracker.flush()) == 20


def test_streaming_memory_stays_bounded():
    rng = np.random.default_rng(1)
    runner = NodeRunner(FaceTracker, max_missed=8, min_track_len=5, scene_cut=None)
    n, peak = 2000, 0
    for i in range(n):
        boxes = [(100 + 20 * np.sin(i / 30), 100, 120, 120)]
        if (i // 200) % 2:
            boxes.append((400, 200 + 10 * np.cos(i / 20), 90, 90))
        if rng.random() < 0.05:
            boxes.append(tuple(rng.uniform(0, 500, 2)) + (30, 30))  # flickering false positives
        if rng.random() < 0.1:
            boxes = boxes[1:]  # missed detections
        runner.feed("detections", det(i, *boxes))
        peak = max(peak, runner.node.pending)
    out = runner.finish()["tracks"]
    runner.close()
    assert peak <= runner.node.tracker.delay + 1
    assert len(out) == n and [t.frame_index for t in out] == list(range(n))
    ids = sorted({f.track_id for t in out for f in t.faces}, key=lambda s: int(s.split("_")[1]))
    assert ids == [f"face_{k}" for k in range(len(ids))]
    assert ids_per_frame(out)[0] == ["face_0"]
    assert all(len(f) == len(set(f)) for f in ids_per_frame(out))


def test_frames_port_never_fed_does_not_stall(caplog):
    runner = NodeRunner(FaceTracker, max_missed=2, min_track_len=1, max_pending=8)
    with caplog.at_level(logging.WARNING):
        for i in range(50):
            runner.feed("detections", det(i, (10, 10, 50, 50)))
            assert runner.node.pending <= 8 + runner.node.tracker.delay + 2
    assert "scene cut" in caplog.text
    out = runner.finish()["tracks"]
    runner.close()
    assert len(out) == 50


def test_out_of_order_detections_are_an_input_error():
    with pytest.raises(InputError, match="increasing frame_index"):
        run_tracker([det(3), det(2)])


def test_scene_cut_between_two_real_clips(talking, make_frames):
    import cv2

    images = [cv2.resize(img, (160, 160), interpolation=cv2.INTER_AREA)
              for name in ("talking1", "talking3") for img in talking[name]]
    runner = NodeRunner(FaceTracker, max_missed=3, min_track_len=2)
    for f in make_frames(images):
        runner.feed("frames", f)
        runner.feed("detections", det(f.index, (50, 30, 60, 60), w=160, h=160))  # same place throughout
    out = runner.finish()["tracks"]
    runner.close()
    assert [t.frame_index for t in out if t.scene_cut] == [4]
    assert ids_per_frame(out) == [["face_0"]] * 4 + [["face_1"]] * 4
