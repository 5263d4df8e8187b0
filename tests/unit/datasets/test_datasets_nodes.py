"""The datasets nodes on their own (NodeRunner), their registration and their graphs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import avflow
from avflow import AudioChunk, GraphValidationError, InputError, VideoFrame
from avflow.testing import NodeRunner, synth_video
from avflow_datasets.nodes import FaceCoefs, NpzCoefs, ShardWriter
from avflow_datasets.payloads import FaceCoefficients


def _coef_frames(n, first=0, fps=25):
    return [FaceCoefficients(pts=first + i, time_base=Fraction(1, fps), frame_index=first + i,
                             shape=np.zeros(2, np.float32), exp=np.full(3, i, np.float32),
                             pose=np.full(6, i / 10, np.float32)) for i in range(n)]


def _audio(start_s, seconds, rate=16000, chunk=1000):
    n = int(seconds * rate)
    samples = ((np.arange(n) % 1000) / 1000 - 0.5).astype(np.float32)
    first = int(round(start_s * rate))
    return [AudioChunk(pts=first + a, time_base=Fraction(1, rate), samples=samples[None, a:a + chunk],
                       sample_rate=rate) for a in range(0, n, chunk)], samples


def test_registered_through_the_entry_point():
    registry = avflow.Registry.default()
    for t in ("datasets.build", "datasets.face_coefs", "datasets.npz_coefs", "datasets.shard_writer"):
        assert registry.plugin_of(t) == "datasets"
        assert "Ports:" in registry.get(t).__doc__ and "Example::" in registry.get(t).__doc__


def test_dataset_graph_checks_fps_and_splits():
    registry = avflow.Registry.default()
    graph = avflow.load_graph(registry.find_graph("dataset"))
    plan = avflow.validate(graph, registry, {"videos": "v/"})
    assert plan.order == ["build"]
    with pytest.raises(GraphValidationError, match="16000"):
        avflow.validate(graph, registry, {"videos": "v/", "fps": 30.0})
    with pytest.raises(GraphValidationError, match="splits"):
        avflow.validate(graph, registry, {"videos": "v/", "splits": [0.5, 0.1]})


def test_the_build_runs_the_shipped_per_video_graphs():
    from avflow_datasets.build import _graph_and_params

    registry = avflow.Registry.default()
    graph, params = _graph_and_params(None, None, Path("."), 25.0, 0.2)
    assert graph == registry.find_graph("dataset_video") and params == {"fps": 25.0, "max_missing_faces": 0.2}


def test_shard_writer_aligns_audio_by_timestamps(tmp_path):
    # coefficient frames start at 0.2 s; audio starts at 0: the shard's audio starts 3200 samples in
    chunks, samples = _audio(0.0, 2.0)
    out = NodeRunner(ShardWriter, output_dir=tmp_path, fps=25.0).run(
        {"coefs": _coef_frames(60, first=5), "audio": chunks})
    path = out["shard"][0].path
    with np.load(path) as z:
        assert z["audio"].dtype == np.int16
        assert np.array_equal(z["audio"], np.rint(samples[3200:] * 32768).astype(np.int16))
        assert int(z["n_frames"]) == (32000 - 3200) // 640 == 45
        assert z["exp"].shape == (60, 3) and z["exp"][:, 0].tolist() == list(range(60))
        assert z["face_found"].all() and float(z["fps"]) == 25.0 and int(z["sample_rate"]) == 16000
    # audio starting after the first frame is preceded by silence
    chunks, samples = _audio(0.5, 1.0)
    out = NodeRunner(ShardWriter, output_dir=tmp_path / "b", fps=25.0).run(
        {"coefs": _coef_frames(50), "audio": chunks})
    with np.load(out["shard"][0].path) as z:
        assert not z["audio"][:8000].any() and len(z["audio"]) == 24000 and int(z["n_frames"]) == 37


def test_shard_writer_errors(tmp_path):
    with pytest.raises(InputError, match="no audio"):
        NodeRunner(ShardWriter, output_dir=tmp_path).run({"coefs": _coef_frames(3), "audio": []})
    chunks, _ = _audio(0, 0.5, rate=44100)
    with pytest.raises(InputError, match="44100 Hz"):
        NodeRunner(ShardWriter, output_dir=tmp_path).run({"coefs": _coef_frames(3), "audio": chunks})
    assert not list(tmp_path.rglob("*.npz"))


def test_npz_coefficients_by_relative_path(tmp_path):
    video = tmp_path / "videos" / "ann" / "4.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    coef = tmp_path / "coefs" / "ann" / "4.npz"
    coef.parent.mkdir(parents=True)
    np.savez(coef, shape=np.arange(5, dtype=np.float32), exp=np.ones((300, 3)), pose=np.zeros((300, 6)))
    out = NodeRunner(NpzCoefs, path=video, coef_dir=tmp_path / "coefs", videos_root=tmp_path / "videos",
                     fps=25.0).run()
    frames = out["coefs"]
    assert len(frames) == 300 and frames[-1].pts == 299 and frames[-1].time_base == Fraction(1, 25)
    assert frames[7].shape.tolist() == [0, 1, 2, 3, 4] and frames[7].exp.dtype == np.float32


def test_npz_coefficient_errors(tmp_path):
    video = tmp_path / "v.mp4"
    with pytest.raises(InputError, match=r"expected .*coefs/v\.npz"):
        NodeRunner(NpzCoefs, path=video, coef_dir=tmp_path / "coefs").run()
    (tmp_path / "coefs").mkdir()
    np.savez(tmp_path / "coefs" / "v.npz", shape=np.zeros((3, 2)), exp=np.zeros((3, 2)))
    with pytest.raises(InputError, match="lacks pose"):
        NodeRunner(NpzCoefs, path=video, coef_dir=tmp_path / "coefs").run()
    np.savez(tmp_path / "coefs" / "v.npz", shape=np.zeros((3, 2)), exp=np.zeros((3, 2)), pose=np.zeros((4, 6)))
    with pytest.raises(InputError, match="frame counts differ"):
        NodeRunner(NpzCoefs, path=video, coef_dir=tmp_path / "coefs").run()
    np.savez(tmp_path / "coefs" / "v.npz", shape=np.array([{"x": 1}] * 3, dtype=object), exp=np.zeros((3, 2)),
             pose=np.zeros((3, 6)))
    with pytest.raises(InputError, match="without pickles"):
        NodeRunner(NpzCoefs, path=video, coef_dir=tmp_path / "coefs").run()


def test_face_coefs_without_a_face_is_an_input_error():
    frames = [VideoFrame(pts=i, time_base=Fraction(1, 25), image=img, index=i)
              for i, img in enumerate(synth_video(5, 96, 96))]
    with pytest.raises(InputError, match="no face found in any of the 5 frames"):
        NodeRunner(FaceCoefs).run({"frames": frames})


def test_face_coefs_on_a_real_face(media_dir):
    import av

    frames = []
    with av.open(str(media_dir / "talking2.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            frames.append(VideoFrame(pts=f.pts, time_base=f.time_base, image=f.to_ndarray(format="rgb24"), index=i))
            if i == 11:
                break
    frames[4] = VideoFrame(pts=frames[4].pts, time_base=frames[4].time_base, index=4,
                           image=np.zeros_like(frames[4].image))  # a frame without a face: interpolated
    out = NodeRunner(FaceCoefs).run({"frames": frames})["coefs"]
    assert [c.frame_index for c in out] == list(range(12)) and [c.pts for c in out] == [f.pts for f in frames]
    assert [c.face_found for c in out] == [i != 4 for i in range(12)]
    assert out[0].shape.shape == (100,) and out[0].exp.shape == (50,) and out[0].pose.shape == (6,)
    assert np.array_equal(out[0].shape, out[11].shape)
    assert np.all(np.abs(out[0].pose[:3]) < 1.0)  # a roughly frontal head, in radians
    # the missing frame's head rotation and landmarks are the mean of its neighbours'
    assert np.allclose(out[4].pose[:3], (out[3].pose[:3] + out[5].pose[:3]) / 2, atol=1e-6)
    assert np.allclose(out[4].exp[:48], (out[3].exp[:48] + out[5].exp[:48]) / 2, atol=1e-6)
    with pytest.raises(InputError, match="more than max_missing=0"):
        NodeRunner(FaceCoefs, max_missing=0.0).run({"frames": frames})
