"""faces.landmarks: Face Mesh per tracked face, right face for the right track, streamed join."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from avflow import Box, FaceTrack, InputError, Payload, Record, TrackedFaces
from avflow.testing import NodeRunner
from avflow_faces import FaceDetect, FaceLandmarks
from avflow_faces import mesh

TB = Fraction(1, 25)
WIRED = ("frames", "tracks")  # speech unconnected: every frame measured


def tracked(i, faces, w, h):
    return TrackedFaces(pts=i, time_base=TB, frame_index=i, width=w, height=h,
                        faces=[FaceTrack(track_id=tid, box=box) for tid, box in faces])


@pytest.fixture(scope="module")
def two_face_boxes(two_faces, make_frames):
    det = NodeRunner(FaceDetect).run({"frames": make_frames([two_faces])})["detections"][0]
    return sorted(det.boxes, key=lambda b: b.x)


def test_landmarks_of_two_faces_land_in_their_own_boxes(two_faces, two_face_boxes, make_frames):
    left, right = two_face_boxes
    # Give the tracks in "wrong" order, right face first, to show ids follow boxes, not positions.
    tracks = tracked(0, [("face_0", right), ("face_1", left)], 700, 350)
    out = NodeRunner(FaceLandmarks, connected_inputs=WIRED).run({"frames": make_frames([two_faces]), "tracks": [tracks]})["tracks"]
    assert len(out) == 1 and [f.track_id for f in out[0].faces] == ["face_0", "face_1"]
    for face, box in zip(out[0].faces, (right, left)):
        lm = face.landmarks
        assert lm.shape == (mesh.N_LANDMARKS, 3) and lm.dtype == np.float32
        grown = Box(box.x - 0.15 * box.w, box.y - 0.15 * box.h, 1.3 * box.w, 1.3 * box.h)
        inside = ((lm[:, 0] >= grown.x) & (lm[:, 0] <= grown.x + grown.w)
                  & (lm[:, 1] >= grown.y) & (lm[:, 1] <= grown.y + grown.h))
        assert inside.mean() > 0.95
        # The lips are in the lower half of the face box, between the mouth corners.
        for k in mesh.LIPS:
            assert box.x <= lm[k, 0] <= box.x + box.w and box.y + 0.45 * box.h <= lm[k, 1] <= box.y + box.h
        assert lm[mesh.MOUTH_CORNER_RIGHT, 0] < lm[mesh.INNER_LIP_TOP, 0] < lm[mesh.MOUTH_CORNER_LEFT, 0]
        assert lm[mesh.INNER_LIP_TOP, 1] <= lm[mesh.INNER_LIP_BOTTOM, 1] + 1
        assert 0.0 <= mesh.mouth_opening(lm) < 1.0
        assert abs(float(lm[:, 2].mean())) < box.w  # z on the pixel scale of x
    assert out[0].faces[0].box is right  # boxes and everything else are kept


def test_landmarks_none_where_there_is_no_face(two_faces, make_frames):
    blank = np.zeros_like(two_faces)
    tracks = tracked(0, [("face_0", Box(100, 100, 120, 120))], 700, 350)
    out = NodeRunner(FaceLandmarks, connected_inputs=WIRED).run({"frames": make_frames([blank]), "tracks": [tracks]})["tracks"]
    assert out[0].faces[0].landmarks is None
    assert out[0].faces[0].track_id == "face_0"


def test_landmarks_joins_out_of_step_ports_and_keeps_order(two_faces, two_face_boxes, make_frames):
    frames = make_frames([two_faces] * 4)
    tracks = [tracked(i, [("face_0", two_face_boxes[0])] if i != 2 else [], 700, 350) for i in range(4)]
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED)
    got = []
    # Tracks lag the frames by two, as behind a tracker.
    for i in range(4):
        runner.feed("frames", frames[i])
        if i >= 2:
            runner.feed("tracks", tracks[i - 2])
        got.append(len(runner.outputs["tracks"]))
        assert runner.node.join.pending_frames <= 3
    for t in tracks[2:]:
        runner.feed("tracks", t)
    out = runner.finish()["tracks"]
    runner.close()
    assert got == [0, 0, 1, 2]
    assert [t.frame_index for t in out] == [0, 1, 2, 3]
    assert out[2].faces == [] and all(out[i].faces[0].landmarks is not None for i in (0, 1, 3))


def test_landmarks_track_without_frame_passes_through(two_face_boxes, two_faces, make_frames):
    frames = make_frames([two_faces, two_faces])
    frames[1].index = 2  # frame 1 never comes
    tracks = [tracked(i, [("face_0", two_face_boxes[0])], 700, 350) for i in range(3)]
    out = NodeRunner(FaceLandmarks, connected_inputs=WIRED).run({"frames": frames, "tracks": tracks})["tracks"]
    assert [t.frame_index for t in out] == [0, 1, 2]
    assert out[1].faces[0].landmarks is None and out[2].faces[0].landmarks is not None


def test_landmarks_size_mismatch_is_an_input_error(two_faces, make_frames):
    tracks = tracked(0, [("face_0", Box(10, 10, 50, 50))], 1280, 720)
    with pytest.raises(InputError, match="1280x720"):
        NodeRunner(FaceLandmarks, connected_inputs=WIRED).run({"frames": make_frames([two_faces]), "tracks": [tracks]})


def test_mesh_constants_are_consistent():
    assert len(mesh.OUTER_LIP) == 20 and len(set(mesh.OUTER_LIP)) == 20
    assert len(mesh.INNER_LIP) == 20 and len(set(mesh.INNER_LIP)) == 20
    assert len(mesh.LIPS) == 40 and max(mesh.LIPS) < mesh.N_LANDMARKS
    assert {mesh.INNER_LIP_TOP, mesh.INNER_LIP_BOTTOM} <= set(mesh.INNER_LIP)
    assert {mesh.MOUTH_CORNER_RIGHT, mesh.MOUTH_CORNER_LEFT, mesh.OUTER_LIP_TOP} <= set(mesh.OUTER_LIP)
    lm = np.zeros((mesh.N_LANDMARKS, 3), np.float32)
    lm[mesh.MOUTH_CORNER_RIGHT, :2] = (0, 10)
    lm[mesh.MOUTH_CORNER_LEFT, :2] = (40, 10)
    lm[mesh.INNER_LIP_TOP, :2] = (20, 5)
    lm[mesh.INNER_LIP_BOTTOM, :2] = (20, 15)
    assert mesh.mouth_opening(lm) == pytest.approx(0.25)


def test_mesh_lip_contours_match_mediapipe():
    import mediapipe as mp

    edges = {frozenset(e) for e in mp.solutions.face_mesh.FACEMESH_LIPS}
    for contour in (mesh.OUTER_LIP, mesh.INNER_LIP):
        ring = {frozenset((a, b)) for a, b in zip(contour, contour[1:] + contour[:1])}
        assert ring <= edges


@pytest.fixture(scope="module")
def moving_clip(media_dir, decode):
    """30 frames of talking1 (350 px) on a 700x350 canvas, sliding right by 4 px a frame from frame 10."""
    canvas = []
    for i, img in enumerate(decode(media_dir / "talking1.mp4", 30, size=350)):
        frame = np.zeros((350, 700, 3), np.uint8)
        x = 4 * max(0, i - 10)
        frame[:, x:x + 350] = img
        canvas.append(frame)
    return canvas


def test_video_mode_follows_the_face_like_the_static_mesh(moving_clip, make_frames):
    frames = make_frames(moving_clip)
    dets = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    tracks = [tracked(d.frame_index, [("face_0", d.boxes[0])], 700, 350) for d in dets]
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED, video_mode=True)
    video = runner.run({"frames": frames, "tracks": tracks})["tracks"]
    static = NodeRunner(FaceLandmarks, connected_inputs=WIRED, video_mode=False).run({"frames": frames, "tracks": tracks})["tracks"]
    for v, s in zip(video, static, strict=True):
        a, b = v.faces[0].landmarks, s.faces[0].landmarks
        assert a is not None and b is not None
        lips = list(mesh.LIPS)
        # Same face, same place: within a few percent of the face width.
        assert np.abs(a[lips, :2] - b[lips, :2]).mean() < 0.03 * v.faces[0].box.w


def test_video_mode_restarts_when_the_face_leaves_its_crop_and_forgets_gone_tracks(moving_clip, make_frames):
    frames = make_frames(moving_clip)
    dets = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED, forget_after=3)
    squares = []
    for i, (f, d) in enumerate(zip(frames, dets)):
        runner.feed("frames", f)
        runner.feed("tracks", tracked(i, [("face_0", d.boxes[0])] if i < 25 else [], 700, 350))
        follower = runner.node._followers.get("face_0")
        squares.append(None if follower is None else round(follower.square.x))
    runner.finish()
    runner.close()
    assert len(set(squares[:10])) == 1  # still face: one crop, one mesh
    assert len(set(squares[10:25])) >= 2  # sliding 60 px: the crop moved with it
    assert squares[-1] is None  # gone for more than forget_after frames: released
    out = runner.outputs["tracks"]
    assert all(t.faces[0].landmarks is not None for t in out[:25])


def test_video_mode_face_lost_then_found_again(moving_clip, make_frames):
    images = [img if not 4 <= i < 8 else np.zeros_like(img) for i, img in enumerate(moving_clip[:10])]
    frames = make_frames(images)
    box = NodeRunner(FaceDetect).run({"frames": frames[:1]})["detections"][0].boxes[0]
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED)
    states = []
    for i, f in enumerate(frames):
        runner.feed("frames", f)
        runner.feed("tracks", tracked(i, [("face_0", box)], 700, 350))  # the tracker keeps the box
        follower = runner.node._followers.get("face_0")
        states.append("none" if follower is None else "lost" if follower.mesh is None else "video")
    runner.finish()
    runner.close()
    found = [t.faces[0].landmarks is not None for t in runner.outputs["tracks"]]
    assert found == [True] * 4 + [False] * 4 + [True] * 2
    assert states[:4] == ["video"] * 4 and states[4:8] == ["lost"] * 4
    assert states[8] == "none" and states[9] == "video"  # found the static way, then followed again


def test_video_mode_caps_the_meshes_and_measures_further_tracks_the_static_way(two_faces, two_face_boxes,
                                                                                 make_frames):
    left, right = two_face_boxes
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED, max_followers=1)
    for i, frame in enumerate(make_frames([two_faces] * 3)):
        runner.feed("frames", frame)
        runner.feed("tracks", tracked(i, [("face_0", left), ("face_1", right)], 700, 350))
        assert list(runner.node._followers) == ["face_0"]
    runner.finish()
    runner.close()
    assert all(f.landmarks is not None for t in runner.outputs["tracks"] for f in t.faces)
    assert runner.node._followers == {}  # released on close


def test_every_n_measures_every_nth_frame_and_interpolates_between(moving_clip, make_frames):
    frames = make_frames(moving_clip)[:9]
    dets = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    tracks = [tracked(i, [("face_0", d.boxes[0])], 700, 350) for i, d in enumerate(dets)]
    runner = NodeRunner(FaceLandmarks, connected_inputs=WIRED, every_n=2)
    out = runner.run({"frames": frames, "tracks": tracks})["tracks"]
    assert [t.frame_index for t in out] == list(range(9))
    assert runner.node.meshed == 5  # frames 0, 2, 4, 6, 8
    lms = [t.faces[0].landmarks for t in out]
    assert all(lm is not None and lm.dtype == np.float32 for lm in lms)
    for i in (1, 3, 5, 7):  # halfway between the measured neighbours
        np.testing.assert_allclose(lms[i], (lms[i - 1] + lms[i + 1]) / 2, atol=1e-3)


@dataclass
class _Speech(Payload):
    speech: np.ndarray = None
    hop: float = 0.04


def test_no_mesh_far_from_speech(moving_clip, make_frames):
    frames = make_frames(moving_clip)[:30]
    dets = NodeRunner(FaceDetect).run({"frames": frames})["detections"]
    tracks = [tracked(i, [("face_0", d.boxes[0])], 700, 350) for i, d in enumerate(dets)]
    runner = NodeRunner(FaceLandmarks, speech_margin=0.22)
    # speech from 0.4 s to 0.6 s only (hops of 40 ms = one frame each at 25 fps)
    runner.feed("speech", _Speech(pts=0, time_base=Fraction(1, 1000), speech=np.arange(30) // 5 == 2))
    for f, t in zip(frames, tracks):
        runner.feed("frames", f)
        runner.feed("tracks", t)
    runner.finish()
    runner.close()
    out = runner.outputs["tracks"]
    have = [i for i, t in enumerate(out) if t.faces[0].landmarks is not None]
    # frames within 0.22 s of [0.4, 0.6): 0.18 .. 0.82 s, frames 5 .. 20
    assert have == list(range(5, 21)) and runner.node.meshed == len(have)


def test_speech_must_be_speech_activity(two_faces, make_frames):
    with pytest.raises(InputError, match="speech activity"):
        NodeRunner(FaceLandmarks).feed("speech", Record(pts=0, time_base=TB, data={}))


def test_faces_measured_side_by_side_give_the_same_landmarks(two_faces, two_face_boxes, make_frames):
    left, right = two_face_boxes
    frames = make_frames([two_faces] * 4)
    tracks = [tracked(i, [("face_0", left), ("face_1", right)], 700, 350) for i in range(4)]
    got = []
    for threads in (1, 2):
        out = NodeRunner(FaceLandmarks, connected_inputs=WIRED, threads=threads).run(
            {"frames": frames, "tracks": tracks})["tracks"]
        got.append([[f.landmarks for f in t.faces] for t in out])
    for a, b in zip(*got):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
