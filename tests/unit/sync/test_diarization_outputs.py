"""Diarization outputs: segments, JSON schema, RTTM, plot, annotated frames, per-face clips."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from avflow import AudioChunk, Box, FaceCrop, FaceTrack, MediaInfo, Record, TrackedFaces, VideoFrame
from avflow.testing import NodeRunner
from avflow_sync.nodes.annotate import Annotate
from avflow_sync.nodes.diarization import DiarizationWriter
from avflow_sync.nodes.face_clips import FaceClips
from avflow_sync.report import FrameResult, rttm, segments

TB = Fraction(1, 25)


def frame_results(active):
    return [FrameResult(index=i, time=i / 25, active=a) for i, a in enumerate(active)]


def test_segments_are_runs_of_one_speaker_ending_at_the_next_frame():
    frames = frame_results(["a", "a", None, "b", "b", "b", "a"])
    assert segments(frames, end_time=7 / 25) == [
        {"speaker": "a", "start": 0.0, "end": 0.08},
        {"speaker": "b", "start": 0.12, "end": 0.24},
        {"speaker": "a", "start": 0.24, "end": 0.28},
    ]
    assert segments(frame_results([None, None]), end_time=0.08) == []


def test_rttm_lines():
    text = rttm("my talk", [{"speaker": "face_1", "start": 0.12, "end": 3.1}])
    assert text == "SPEAKER my_talk 1 0.120 2.980 <NA> <NA> face_1 <NA> <NA>\n"
    assert rttm("x", []) == ""


def tracked(i, faces, w=200, h=100):
    return TrackedFaces(pts=i, time_base=TB, frame_index=i, width=w, height=h,
                        faces=[FaceTrack(tid, Box(*box)) for tid, box in faces])


def decision(i, active, scores):
    return Record(pts=i, time_base=TB, data={"frame_index": i, "time": i / 25, "active": active, "scores": scores})


def test_writer_produces_the_contract_json_rttm_and_plot(tmp_path):
    runner = NodeRunner(DiarizationWriter, output_dir=tmp_path, video="talk.mp4", threshold=0.5)
    runner.feed("info", MediaInfo(pts=0, time_base=Fraction(1, 1000), path="talk.mp4", duration=0.2,
                                  width=200, height=100, fps=25.0, n_frames=5))
    boxes = {"face_0": (10, 10, 40, 40), "face_1": (120, 10, 40, 40)}
    for i in range(5):
        faces = [("face_0", boxes["face_0"])] + ([("face_1", boxes["face_1"])] if i >= 2 else [])
        runner.feed("tracks", tracked(i, faces))
    actives = [None, "face_0", "face_0", "face_1", "face_1"]
    for i, a in enumerate(actives):
        scores = {"face_0": 0.1 * i, **({"face_1": 0.9} if i >= 2 else {})}
        runner.feed("active", decision(i, a, scores))
    out = runner.finish()
    doc = json.loads(out["json"][0].path.read_text())
    assert doc == out["result"][0].data
    assert {k: doc[k] for k in ("schema", "video", "fps", "n_frames", "width", "height")} == {
        "schema": "avflow.diarization/1", "video": "talk.mp4", "fps": 25.0, "n_frames": 5, "width": 200, "height": 100}
    assert doc["tracks"][1] == {"id": "face_1", "boxes": [[i, 120.0, 10.0, 40.0, 40.0] for i in (2, 3, 4)]}
    assert doc["scores"]["face_1"] == [None, None, 0.9, 0.9, 0.9]
    assert doc["active"] == actives
    assert doc["segments"] == [{"speaker": "face_0", "start": 0.04, "end": 0.12},
                               {"speaker": "face_1", "start": 0.12, "end": 0.2}]
    assert out["rttm"][0].path.read_text().splitlines() == [
        "SPEAKER talk 1 0.040 0.080 <NA> <NA> face_0 <NA> <NA>",
        "SPEAKER talk 1 0.120 0.080 <NA> <NA> face_1 <NA> <NA>"]
    png = out["plot"][0].path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "diarization.json", "diarization.rttm", "diarization.vtt", "sync_signals.png"]


def test_annotate_waits_for_decisions_and_draws_the_speaker():
    runner = NodeRunner(Annotate, max_pending=10)
    img = np.zeros((100, 200, 3), np.uint8)
    for i in range(4):
        runner.feed("frames", VideoFrame(pts=i, time_base=TB, image=img, index=i))
        runner.feed("tracks", tracked(i, [("face_0", (10, 10, 40, 40)), ("face_1", (120, 10, 40, 40))]))
    assert runner.outputs["frames"] == []  # no decision yet: frames are held
    runner.feed("active", decision(0, "face_1", {}))
    runner.feed("active", decision(1, None, {}))
    assert [f.index for f in runner.outputs["frames"]] == [0, 1]
    out = runner.finish()["frames"]
    assert [f.index for f in out] == [0, 1, 2, 3]  # undecided frames still come out at the end
    green = out[0].image[..., 1] > 200
    assert green[:, 115:165].any() and not green[:, 5:55].any()  # the speaker's box, not the other
    assert not (out[1].image[..., 1] > 200).any()  # nobody speaks in frame 1
    with pytest.raises(Exception, match="more than 3 frames wait"):
        r = NodeRunner(Annotate, max_pending=3)
        for i in range(5):
            r.feed("frames", VideoFrame(pts=i, time_base=TB, image=img, index=i))


def test_face_clips_write_one_video_per_track_with_its_audio(tmp_path):
    runner = NodeRunner(FaceClips, output_dir=tmp_path)
    rate = 16000
    for k in range(20):  # 2 s of audio in 0.1 s chunks, arriving ahead of the crops
        runner.feed("audio", AudioChunk(pts=k * 1600, time_base=Fraction(1, rate),
                                        samples=np.full((1, 1600), 0.1, np.float32), sample_rate=rate))
    crop = np.full((64, 64, 3), 128, np.uint8)
    for i in range(50):
        if i >= 10:  # face_1 appears at 0.4 s
            runner.feed("crops", FaceCrop(pts=i, time_base=TB, track_id="face_1", frame_index=i, image=crop,
                                          box=Box(0, 0, 64, 64)))
        if i < 25:  # face_0 leaves at 1.0 s
            runner.feed("crops", FaceCrop(pts=i, time_base=TB, track_id="face_0", frame_index=i, image=crop,
                                          box=Box(0, 0, 64, 64)))
    files = sorted(f.path.name for f in runner.finish()["files"])
    assert files == ["face_0.mp4", "face_1.mp4"]
    for name, n_frames, seconds in (("face_0.mp4", 25, 1.0), ("face_1.mp4", 40, 1.6)):
        with av.open(str(tmp_path / "faces" / name)) as c:
            assert c.streams.video[0].frames == n_frames
            samples = sum(f.samples for f in c.decode(audio=0))
        assert samples / rate == pytest.approx(seconds, abs=0.07)


def test_plot_says_which_face_is_which_draws_the_threshold_and_the_unseen_stretches(tmp_path, monkeypatch):
    from avflow.testing import synth_video, write_video
    from avflow_sync import report

    video = write_video(tmp_path / "v.mp4", synth_video(10, 160, 96), fps=25)
    frames = [FrameResult(index=i, time=i / 25, active="face_0" if i < 5 else None,
                          scores={"face_0": 0.2 + 0.05 * i, **({"face_1": 0.3} if i >= 6 else {})},
                          boxes={"face_0": [10, 10, 40, 40], **({"face_1": [100, 20, 30, 30]} if i >= 6 else {})})
              for i in range(10)]
    thumbs = report.face_thumbnails(video, frames)
    assert set(thumbs) == {"face_0", "face_1"} and thumbs["face_0"].shape[2] == 3
    drawn = {}
    real_strips, real_labels = report._visibility_strips, report._label_curves

    def strips(ax, *a):
        real_strips(ax, *a)
        drawn["dotted"] = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]

    def labels(ax, *a):
        real_labels(ax, *a)
        drawn["labels"] = [t.get_text() for t in ax.texts]
        drawn["thumbnails"] = sum(type(c).__name__ == "AnnotationBbox" for c in ax.artists)
        drawn["threshold"] = [ln.get_ydata()[0] for ln in ax.lines if ln.get_label() == "threshold"]

    monkeypatch.setattr(report, "_visibility_strips", strips)
    monkeypatch.setattr(report, "_label_curves", labels)
    report.plot(tmp_path / "p.png", frames, [{"speaker": "face_0", "start": 0.0, "end": 0.2}], "t",
                threshold=0.5, thumbnails=thumbs)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert {"face_0", "face_1"} <= set(drawn["labels"]) and drawn["thumbnails"] == 2
    assert drawn["threshold"] == [0.5]
    assert len(drawn["dotted"]) == 1  # face_1 was not visible for its first 6 frames


def test_annotate_labels_read_on_a_light_background():
    runner = NodeRunner(Annotate, max_pending=10)
    img = np.full((100, 200, 3), 235, np.uint8)  # a light wall
    runner.feed("frames", VideoFrame(pts=0, time_base=TB, image=img, index=0))
    runner.feed("tracks", tracked(0, [("face_0", (10, 40, 40, 40)), ("face_1", (120, 40, 40, 40))]))
    runner.feed("active", decision(0, "face_1", {}))
    out = runner.outputs["frames"][0].image
    label = out[20:40, 10:60]  # above face_0's box: its (non-speaker) label
    assert (label.max(axis=2) < 80).sum() > 10  # dark text ...
    assert (np.abs(label.astype(int) - 170).max(axis=2) < 3).sum() > 50  # ... on a filled grey box


@pytest.mark.parametrize("height", [100, 102])  # half height even, odd (its chroma rows straddle)
def test_annotate_reads_the_video_again_at_the_preview_height(tmp_path, height):
    from avflow.testing.synth import synth_audio, write_video

    # a grey ramp 200 px wide with a red square where face_1 is
    img = np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (height, 1, 3))
    img[10:50, 120:160] = (200, 30, 30)
    video = write_video(tmp_path / "in.mp4", [img] * 4, audio=synth_audio(0.2))
    runner = NodeRunner(Annotate, video=str(video), preview_height=50, connected_inputs=("tracks", "active"))
    for i in range(4):
        runner.feed("tracks", tracked(i, [("face_0", (10, 10, 40, 40)), ("face_1", (120, 10, 40, 40))], h=height))
        runner.feed("active", decision(i, "face_1", {}))
    out = runner.finish()
    frames = out["frames"]
    assert [f.index for f in frames] == [0, 1, 2, 3] and out["audio"]
    small = frames[0].image
    assert small.shape == (50, 98 if height == 102 else 100, 3)
    green = (small[..., 1] > 200) & (small[..., 0] < 100)
    assert green[12:20, 57:83].any() and not green[12:20, 2:28].any()  # the speaker's box, at half scale
    # the picture itself: the ramp and the square, scaled (the colours survive the YUV path)
    assert abs(int(small[45, 10, 0]) - 25) < 12 and abs(int(small[45, 90, 0]) - 230) < 12
    assert small[15, 70, 0] > 150 and small[15, 70, 1] < 80
    full = NodeRunner(Annotate, video=str(video), connected_inputs=("tracks", "active"))
    full.feed("tracks", tracked(0, [], h=height))
    assert full.finish()["frames"][0].image.shape == (height, 200, 3)  # 0: the input's size
