"""graphs/dataset.yaml on real clips: build, read back independently, resume, atomicity.

The LMDB is checked with a reader written only from the layout in docs/formats.md ("LMDB dataset")
(lmdb + pickle + soundfile), not with avflow's own code.
"""

from __future__ import annotations

import gc
import io
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import avflow
from avflow import InputError
from avflow_datasets import AVClipDataset, build_dataset
from avflow.testing import synth_audio, synth_video, write_video

COEF_DIMS = {"shape": 100, "exp": 50, "pose": 6}


# -- an independent reader: only lmdb, pickle and soundfile --------------------------------------
def read_layout(path: Path) -> dict:
    """Every subject of a DiffPoseTalk-layout LMDB: {key: {"n_frames", "clips": [(coef, audio, info)]}}."""
    import lmdb
    import soundfile as sf

    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            seg_len = pickle.loads(txn.get(b"metadata"))["seg_len"]
            subjects = {}
            for key in (path / "keys.txt").read_text().split():
                n = pickle.loads(txn.get(f"{key}/metadata".encode()))["n_frames"]
                clips = []
                for i in range(math.ceil(n / seg_len)):
                    value = pickle.loads(txn.get(f"{key}/{i:03d}".encode()))
                    info = sf.info(io.BytesIO(value["audio"]))
                    audio, sr = sf.read(io.BytesIO(value["audio"]), dtype="int16")
                    clips.append((value["coef"], audio, (sr, info.channels, info.subtype, info.format)))
                assert txn.get(f"{key}/{len(clips):03d}".encode()) is None
                subjects[key] = {"n_frames": n, "clips": clips}
    finally:
        env.close()
    return {"seg_len": seg_len, "subjects": subjects}


def joined(subject: dict) -> tuple[dict, np.ndarray]:
    coefs = {k: np.concatenate([c[0][k] for c in subject["clips"]]) for k in COEF_DIMS}
    return coefs, np.concatenate([c[1] for c in subject["clips"]])


def check_layout(path: Path, seg_len: int) -> dict:
    data = read_layout(path)
    assert data["seg_len"] == seg_len
    for key, s in data["subjects"].items():
        n = s["n_frames"]
        for i, (coef, audio, info) in enumerate(s["clips"]):
            frames = min(seg_len, n - i * seg_len)
            assert info == (16000, 1, "PCM_16", "FLAC"), key
            assert len(audio) == frames * 640, key
            assert set(coef) == set(COEF_DIMS) and all(coef[k].shape[0] == frames for k in coef), key
    keys = (path / "keys.txt").read_text().split()
    splits = {name: (path / f"{name}.txt").read_text().split() for name in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == sorted(keys) == sorted(data["subjects"])
    persons = {name: {k.split("/")[0] for k in v} for name, v in splits.items()}
    assert not (persons["train"] & persons["val"] or persons["train"] & persons["test"]
                or persons["val"] & persons["test"])
    stats = dict(np.load(path / "stats_train.npz"))
    for k in COEF_DIMS:
        rows = np.concatenate([joined(data["subjects"][s])[0][k] for s in splits["train"]]).astype(np.float64)
        assert np.allclose(stats[f"{k}_mean"], rows.mean(0), atol=1e-5)
        assert np.allclose(stats[f"{k}_std"], rows.std(0), atol=1e-5)
    return data


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mediapipe_build(media_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mp")
    videos = root / "videos"
    videos.mkdir()
    for name in ("talking1.mp4", "talking2.mp4", "talking3.mp4", "sun.mp4"):  # sun.mp4 has no audio
        (videos / name).symlink_to(media_dir / name)
    write_video(videos / "noface.mp4", synth_video(25, 96, 96), fps=25, audio=synth_audio(1.0))
    out = root / "dataset"
    report = build_dataset(videos, out, seg_len=25, fps=25, executor="sequential", keep_shards=True)
    return out, report


def _shard(out: Path, stem: str) -> dict:
    with np.load(out.parent / f".{out.name}.build" / "shards" / stem / "shard.npz") as z:
        return {k: z[k] for k in z.files}


# -- MediaPipe coefficients ------------------------------------------------------------------------
def test_mediapipe_build_writes_the_layout(mediapipe_build):
    out, report = mediapipe_build
    assert report.written == ["talking1/000", "talking2/000", "talking3/000"] == report.subjects
    failed = {f["key"]: f["error"] for f in report.failed}
    assert set(failed) == {"noface/000", "sun/000"}
    assert "no audio stream" in failed["sun/000"] and "no face found" in failed["noface/000"]
    data = check_layout(out, 25)
    durations = {"talking1/000": 6.13, "talking2/000": 5.01, "talking3/000": 5.01}
    for key, stem in (("talking1/000", "talking1"), ("talking2/000", "talking2"), ("talking3/000", "talking3")):
        shard = _shard(out, stem)
        s = data["subjects"][key]
        n = s["n_frames"]
        # n_frames = min(coefficient frames, audio samples // 640)
        assert n == min(len(shard["exp"]), len(shard["audio"]) // 640) == int(shard["n_frames"])
        assert abs(n - durations[key] * 25) <= 3
        assert len(s["clips"]) == math.ceil(n / 25)
        coefs, audio = joined(s)
        for k, d in COEF_DIMS.items():
            assert coefs[k].shape == (n, d) and coefs[k].dtype == np.float32
            assert np.array_equal(coefs[k], shard[k][:n])
        assert np.array_equal(audio, shard["audio"][:n * 640])
        assert np.abs(audio).max() > 1000  # real speech, not silence
        assert np.allclose(coefs["shape"], coefs["shape"][0])  # one neutral geometry per subject
    report_file = (out / "build_report.json").read_text()
    assert "noface/000" in report_file and "avflow.dataset_build/1" in report_file


def test_avclipdataset_reads_the_build(mediapipe_build):
    out, _ = mediapipe_build
    data = read_layout(out)
    stats = dict(np.load(out / "stats_train.npz"))
    ds = AVClipDataset(out, out / "train.txt", out / "stats_train.npz", coef_fps=25, n_motions=50,
                       crop_strategy="begin")
    assert len(ds) == 3 and ds.n_frames == [data["subjects"][k]["n_frames"] for k in ds.entries]
    for i, key in enumerate(ds.entries):
        audio_pair, coef_pair, (mean, std) = ds[i]
        coefs, audio = joined(data["subjects"][key])
        raw = torch.from_numpy(audio[:100 * 640].astype(np.float32) / 32768)
        assert torch.allclose(mean, raw.mean(), rtol=1e-5, atol=1e-9) and torch.allclose(std, raw.std(), rtol=1e-6)
        assert torch.equal(torch.cat(audio_pair), (raw - mean) / (std + 1e-5))
        for k in COEF_DIMS:
            expected = (coefs[k][:100] - stats[f"{k}_mean"]) / (stats[f"{k}_std"] + 1e-9)
            assert np.allclose(torch.cat([coef_pair[0][k], coef_pair[1][k]]).numpy(), expected, atol=1e-4)
    random_ds = AVClipDataset(out, out / "keys.txt", out / "stats_train.npz", n_motions=50, seed=0)
    loader = torch.utils.data.DataLoader(random_ds, batch_size=3, num_workers=2)
    (audio_pair, coef_pair, (mean, std)), = list(loader)
    assert audio_pair[0].shape == (3, 32000) and coef_pair[1]["exp"].shape == (3, 50, 50)
    assert coef_pair[0]["pose"].shape == (3, 50, 6) and mean.shape == (3,)


# -- precomputed coefficients through graphs/dataset.yaml ------------------------------------------
def _npz_tree(root: Path, media_dir: Path) -> tuple[Path, Path]:
    videos, coefs = root / "videos", root / "coefs"
    layout = {"alice/1.mp4": ("talking1.mp4", 100), "alice/2.mp4": ("talking2.mp4", 400),
              "bob/7.mp4": ("talking3.mp4", 200), "carol/1.mp4": ("talking1.mp4", None)}
    for rel, (src, n) in layout.items():
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        (videos / rel).symlink_to(media_dir / src)
        if n is None:
            continue  # no coefficient file: reported and skipped
        f = np.arange(n, dtype=np.float32)
        (coefs / rel).parent.mkdir(parents=True, exist_ok=True)
        np.savez(coefs / Path(rel).with_suffix(".npz"), shape=np.full(100, len(rel), np.float32),
                 exp=np.repeat(f[:, None], 50, axis=1), pose=np.stack([f / 1000] * 6, axis=1))
    return videos, coefs


def test_npz_build_through_the_graph(media_dir, tmp_path):
    videos, coefs = _npz_tree(tmp_path, media_dir)
    result = avflow.run("graphs/dataset.yaml", {"videos": str(videos), "coef_dir": str(coefs), "seg_len": 40,
                                               "executor": "sequential", "splits": [0.5, 0.5, 0.0], "seed": 1},
                        output_dir=tmp_path / "out")
    out = result.outputs["dataset"].path
    assert out == (tmp_path / "out" / "lmdb").resolve()
    report = result.outputs["report"].data
    assert report["written"] == ["alice/001", "alice/002", "bob/007"]
    assert [f["key"] for f in report["failed"]] == ["carol/001"]
    assert "no coefficient file" in report["failed"][0]["error"]
    data = check_layout(out, 40)
    n_frames = {k: s["n_frames"] for k, s in data["subjects"].items()}
    # coefficient-limited (100 < 6.1 s of audio), audio-limited (5.0 s of audio: 125 frames)
    assert n_frames == {"alice/001": 100, "alice/002": 125, "bob/007": 125}
    for key, s in data["subjects"].items():
        c, audio = joined(s)
        assert [len(clip[1]) // 640 for clip in s["clips"]] == [40] * (n_frames[key] // 40) + (
            [n_frames[key] % 40] if n_frames[key] % 40 else [])
        assert c["exp"][:, 0].tolist() == list(range(n_frames[key]))  # frames in order across clips
        assert np.array_equal(c["pose"][:, 3], np.arange(n_frames[key], dtype=np.float32) / 1000)
        assert np.all(c["shape"] == {"alice/001": 11, "alice/002": 11, "bob/007": 9}[key])  # len(rel path)
        assert np.abs(audio).max() > 1000
    assert report["splits"]["test"] == [] and len(report["splits"]["train"]) in (1, 2)
    assert not (tmp_path / "out" / ".lmdb.build").exists()


# -- atomic and resumable --------------------------------------------------------------------------
def test_failed_build_leaves_no_dataset_and_resume_skips_written_subjects(media_dir, tmp_path, monkeypatch):
    import avflow
    import avflow_datasets.build as build_mod

    videos, coefs = _npz_tree(tmp_path, media_dir)
    shutil.rmtree(videos / "carol")
    out = tmp_path / "ds"
    kw = dict(coef_dir=coefs, seg_len=50, executor="sequential")

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    # a first build that fails at the end leaves nothing under the final name
    with monkeypatch.context() as m:
        m.setattr(build_mod, "coef_stats", boom)
        with pytest.raises(RuntimeError, match="disk on fire"):
            build_dataset(str(videos / "alic?" / "1.mp4"), out, **kw)
    assert not out.exists() and (tmp_path / ".ds.build" / "lmdb" / "data.mdb").is_file()

    first = build_dataset(str(videos / "alic?" / "1.mp4"), out, **kw)  # resumes: nothing left to run
    assert first.skipped == ["alice/001"] and first.written == [] and first.subjects == ["alice/001"]
    good = read_layout(out)

    # extending it fails: the previous good dataset is untouched
    with monkeypatch.context() as m:
        m.setattr(build_mod, "coef_stats", boom)
        with pytest.raises(RuntimeError):
            build_dataset(videos, out, **kw)
    assert (out / "keys.txt").read_text() == "alice/001\n"
    assert read_layout(out)["subjects"].keys() == good["subjects"].keys()

    # resumed: subjects already written are skipped, the per-video graph does not run again
    ran = []
    real = avflow.run_many

    def counting(graph, inputs, **k):
        ran.extend(inputs)
        return real(graph, inputs, **k)

    monkeypatch.setattr(avflow, "run_many", counting)  # what the build calls
    again = build_dataset(videos, out, **kw)
    assert ran == [] and again.written == [] and sorted(again.skipped) == ["alice/001", "alice/002", "bob/007"]
    assert again.subjects == ["alice/001", "alice/002", "bob/007"]
    assert not (tmp_path / ".ds.build").exists()
    check_layout(out, 50)

    with pytest.raises(InputError, match="seg_len=50"):
        build_dataset(videos, out, **{**kw, "seg_len": 25})
    fresh = build_dataset(videos, out, **{**kw, "seg_len": 25}, resume=False)
    assert len(ran) == 3 and fresh.written == ["alice/001", "alice/002", "bob/007"]
    assert read_layout(out)["seg_len"] == 25


def test_build_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video file"):
        build_dataset(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an LMDB dataset"):
        build_dataset(tmp_path, tmp_path / "taken")
    with pytest.raises(InputError, match="fps=30"):
        build_dataset(tmp_path, tmp_path / "out", fps=30)
    gc.collect()
