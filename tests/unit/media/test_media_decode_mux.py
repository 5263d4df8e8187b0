"""Media nodes on real clips and synthetic edge cases: decode, resample, VFR, mux round trip."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest

import avflow
from avflow import InputError, NodeError
from avflow.testing import NodeRunner, synth_audio, synth_video, write_video
from avflow_media import Decode


def decode(path, outputs=("info", "video"), **params):
    return NodeRunner(Decode, path=str(path), connected_outputs=outputs, **params).run()


def remux_faststart(src, dst):
    """Copy a file's packets into an mp4 whose index (moov) comes first, as streaming mp4s do."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def test_decode_real_clip_keeps_timestamps_and_av_offset(media_dir):
    runner = NodeRunner(Decode, path=str(media_dir / "talking1.mp4"), audio_rate=16000, audio_channels=1)
    out = runner.run()
    info = out["info"][0]
    frames, chunks = out["video"], out["audio"]
    assert (info.width, info.height, info.n_frames, info.has_audio) == (700, 700, 135, True)
    assert len(frames) == 135 and frames[0].image.shape == (700, 700, 3)
    # The container starts video 33 ms after audio; the decoder keeps that offset.
    assert frames[0].time == pytest.approx(507 / 15360) and chunks[0].time == 0.0
    assert all(c.sample_rate == 16000 and c.channels == 1 and c.samples.dtype == np.float32 for c in chunks)
    # pts count samples at the output rate, consecutively.
    assert [c.pts for c in chunks[1:]] == list(np.cumsum([c.n_samples for c in chunks[:-1]]))
    total = sum(c.n_samples for c in chunks)
    assert total / 16000 == pytest.approx(269319 / 44100, abs=0.01)
    assert runner.progress_events[-1] == (135, 135)


def test_only_connected_streams_are_decoded_and_missing_audio_is_clear(media_dir):
    out = NodeRunner(Decode, path=str(media_dir / "sun.mp4"), connected_outputs=["video", "info"],
                     max_duration=1.0).run()
    assert len(out["video"]) == 25 and out["audio"] == []
    with pytest.raises(InputError, match=r"sun.mp4 has no audio stream \(streams: video h264\)"):
        decode(media_dir / "sun.mp4", outputs=("video", "audio"))


def test_missing_corrupt_and_truncated_inputs(tmp_path, media_dir):
    with pytest.raises(InputError, match="input not found"):
        decode(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(InputError, match="cannot open .*junk.mp4 as media"):
        decode(junk)
    # Cut short with the index at the end (as talking2.mp4 is laid out): the index is lost.
    data = (media_dir / "talking2.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        decode(cut)
    # Cut short with the index first: the header promises 5 s, the data stops half way.
    data = remux_faststart(media_dir / "talking2.mp4", tmp_path / "fast.mp4").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"looks truncated: its header says 5.0\ds but video data ends at"):
        decode(cut)
    out = decode(cut, errors="ignore")  # opt in to keep what decodes
    assert 20 < len(out["video"]) < 125


def test_variable_frame_rate_is_kept_or_resampled_by_timestamp(tmp_path):
    times = [i * 0.04 for i in range(10)] + [0.4 + i * 0.1 for i in range(10)]  # 25 fps then 10 fps
    path = write_video(tmp_path / "vfr.mp4", synth_video(20), frame_times=times)
    frames = decode(path)["video"]
    assert [round(f.time, 3) for f in frames] == [round(t, 3) for t in times]
    # Constant 25 fps: each tick shows the latest source frame at or before it.
    const = decode(path, fps=25)["video"]
    ticks = [f.time for f in const]
    assert ticks == pytest.approx([i / 25 for i in range(len(const))])
    assert len(const) == 35  # 1.3 s of source (last frame shown 0.1 s) at 25 fps -> ticks 0..1.36
    src_index = [max(i for i, t in enumerate(times) if t <= tick + 1e-9) for tick in ticks]
    src_marks = [int(f.image[2, 2, 0]) for f in frames]
    assert [int(f.image[2, 2, 0]) for f in const] == pytest.approx([src_marks[i] for i in src_index], abs=6)


def test_images_and_folders(tmp_path, media_dir):
    out = decode(media_dir / "monalisa.png", fps=10)
    assert len(out["video"]) == 1 and out["info"][0].fps == 10
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (1, 2, 10):
        shutil.copy(media_dir / "musk.png", folder / f"img{i}.png")
    frames = decode(folder)["video"]
    assert [f.index for f in frames] == [0, 1, 2] and frames[2].time == pytest.approx(0.08)
    with pytest.raises(InputError, match="is a still image .*give it a video with sound"):
        decode(media_dir / "musk.png", outputs=("video", "audio"))


def _streams(path):
    with av.open(str(path)) as c:
        v = [f.time for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        a = [(f.time, f.samples, f.sample_rate) for f in c.decode(audio=0)]
    return v, a


def test_transcode_round_trip_keeps_frames_size_duration_and_sync(tmp_path, media_dir, repo_dir):
    res = avflow.run(repo_dir / "graphs" / "transcode.yaml", {"video": media_dir / "talking1.mp4"},
                     output_dir=tmp_path, device="cpu")
    out = res.outputs["video"].path
    v_in, a_in = _streams(media_dir / "talking1.mp4")
    v_out, a_out = _streams(out)
    assert len(v_out) == len(v_in) == 135
    with av.open(str(out)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (700, 700)
    frame = 1 / 22.13
    dur_in = sum(n for _, n, _ in a_in) / a_in[0][2]
    dur_out = sum(n for _, n, _ in a_out) / a_out[0][2]
    assert abs(dur_out - dur_in) < frame
    # A/V offset (first video frame vs first audio sample) within one frame of the input's.
    assert abs((v_out[0] - a_out[0][0]) - (v_in[0] - a_in[0][0])) < frame
    # Frame times match the input's (VFR-safe muxing keeps timestamps).
    assert np.allclose(v_out, v_in, atol=1e-3)
    # Pixels survive the re-encode (colour conversion matched to the decoder's, CRF 18).
    with av.open(str(media_dir / "talking1.mp4")) as a, av.open(str(out)) as b:
        for k, (fa, fb) in enumerate(zip(a.decode(video=0), b.decode(video=0))):
            if k % 30 == 0:
                diff = np.abs(fa.to_ndarray(format="rgb24").astype(int) - fb.to_ndarray(format="rgb24"))
                assert diff.mean() < 2.0 and np.median(diff) <= 1


def test_mux_constant_fps_and_resize(tmp_path, media_dir, repo_dir):
    res = avflow.run(repo_dir / "graphs" / "transcode.yaml",
                     {"video": media_dir / "talking1.mp4", "width": 321, "fps": 25},
                     output_dir=tmp_path, device="cpu")
    with av.open(str(res.outputs["video"].path)) as c:
        vs = c.streams.video[0]
        assert (vs.width, vs.height) == (320, 320) and vs.average_rate == 25
        assert vs.frames == pytest.approx(6.13 * 25, abs=2)


def test_failed_run_leaves_no_partial_output(tmp_path, media_dir):
    final = tmp_path / "transcoded.mp4"
    final.write_bytes(b"previous good output")
    graph = {"nodes": {
        "decode": {"type": "media.decode", "params": {"path": str(media_dir / "talking2.mp4")}},
        "crop": {"type": "media.resize", "inputs": {"frames": "decode.video"}, "params": {"crop": [800, 0, 100, 100]}},
        "mux": {"type": "media.mux", "inputs": {"video": "crop.frames"}, "params": {"path": "transcoded.mp4"}}}}
    with pytest.raises(NodeError, match="crop .* leaves the 844x844 frame"):
        avflow.run(graph, output_dir=tmp_path, device="cpu")
    assert final.read_bytes() == b"previous good output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transcoded.mp4"]


def test_audio_only_resampling_rates(tmp_path):
    path = write_video(tmp_path / "tone.mp4", synth_video(25), audio=synth_audio(1.0, 22050, channels=2),
                       sample_rate=22050)
    for rate in (16000, 8000, 44100):
        chunks = decode(path, outputs=("audio",), audio_rate=rate, audio_channels=1)["audio"]
        n = sum(c.n_samples for c in chunks)
        assert abs(n - rate) < rate * 0.05 and chunks[0].time_base == 1 / avflow.payloads.Fraction(rate)
