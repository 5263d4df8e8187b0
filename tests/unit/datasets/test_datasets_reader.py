"""AVClipDataset against exact expectations and against DiffPoseTalk's loader semantics."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch

from avflow import InputError
from avflow_datasets import AVClipDataset

SEG = 10
N_MOTIONS = 7  # a crop is 14 frames


@pytest.fixture
def lmdb_dir(tmp_path, ref):
    subjects = {
        "alice/000": ref.ramp_subject(40, 37 * 640 + 100),  # audio-limited: 37 frames, clips 10/10/10/7
        "alice/001": ref.ramp_subject(14, 20 * 640, offset=1.0),  # exactly one crop long
        "bob/003": ref.ramp_subject(25, 30 * 640, offset=2.0),  # coef-limited: 25 frames
        "carl/000": ref.ramp_subject(13, 20 * 640),  # shorter than 2 * n_motions
    }
    path = ref.write_lmdb(tmp_path / "lmdb", subjects, SEG)
    (tmp_path / "ok.txt").write_text("alice/000\nalice/001\nbob/003\n")
    (tmp_path / "all.txt").write_text("alice/000\ncarl/000\n")
    np.savez(tmp_path / "stats.npz", shape_mean=np.full(4, 0.5, np.float32), shape_std=np.full(4, 0.25, np.float32),
             exp_mean=np.array([1, 2, 3], np.float32), exp_std=np.array([2, 4, 0], np.float32),
             pose_mean=np.zeros(6, np.float32), pose_std=np.ones(6, np.float32))
    return path


def _ds(lmdb_dir, split="ok.txt", stats=False, **kw):
    return AVClipDataset(lmdb_dir, lmdb_dir.parent / split,
                         lmdb_dir.parent / "stats.npz" if stats else None, n_motions=N_MOTIONS, **kw)


def _raw_audio(start: int, n_frames: int) -> torch.Tensor:
    pcm = ((np.arange((start + n_frames) * 640) * 37) % 20000 - 10000).astype(np.int16)
    return torch.from_numpy(pcm[start * 640:].astype(np.float32) / 32768)


def _check_audio_stats(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
    """The crop's own mean and unbiased std (float64-accumulated, rounded to float32)."""
    r = raw.double()
    assert mean.dtype == std.dtype == torch.float32
    assert float(mean) == np.float32(r.mean().item()) and float(std) == np.float32(r.std().item())


def test_lengths_and_constants(lmdb_dir):
    ds = _ds(lmdb_dir)
    assert len(ds) == 3
    assert ds.entries == ["alice/000", "alice/001", "bob/003"]
    assert ds.n_frames == [37, 14, 25]
    assert ds.clip_len == SEG and ds.audio_unit == 640.0
    assert ds.coef_total_len == 14 and ds.n_audio_samples == 7 * 640 and ds.audio_total_len == 14 * 640
    audio_pair, coef_pair, (mean, std) = ds[0]
    assert [a.shape for a in audio_pair] == [torch.Size([4480])] * 2
    assert [{k: tuple(v.shape) for k, v in c.items()} for c in coef_pair] == [
        {"shape": (7, 4), "exp": (7, 3), "pose": (7, 6)}] * 2
    assert audio_pair[0].dtype == torch.float32 and coef_pair[0]["exp"].dtype == torch.float32


def test_begin_crop_two_consecutive_windows(lmdb_dir):
    ds = _ds(lmdb_dir, crop_strategy="begin")
    audio_pair, coef_pair, (mean, std) = ds[0]
    assert coef_pair[0]["exp"][:, 0].tolist() == list(range(0, 7))
    assert coef_pair[1]["exp"][:, 0].tolist() == list(range(7, 14))  # crosses the clip 0/1 boundary
    raw = _raw_audio(0, 14)
    _check_audio_stats(raw, mean, std)
    norm = (raw - mean) / (std + 1e-5)
    assert torch.equal(audio_pair[0], norm[:4480]) and torch.equal(audio_pair[1], norm[4480:])


def test_end_crop_across_clip_boundaries(lmdb_dir):
    ds = _ds(lmdb_dir, crop_strategy="end")
    audio_pair, coef_pair, (mean, std) = ds[0]  # 37 frames: start 23, clips 2 (20-29) and 3 (30-36)
    assert coef_pair[0]["exp"][:, 0].tolist() == list(range(23, 30))
    assert coef_pair[1]["exp"][:, 0].tolist() == list(range(30, 37))
    raw = _raw_audio(23, 14)
    _check_audio_stats(raw, mean, std)
    assert torch.equal(torch.cat(audio_pair), (raw - mean) / (std + 1e-5))
    # a sequence exactly 2 * n_motions long: begin == end == 0
    _, c, _ = ds[1]
    assert c[0]["exp"][:, 0].tolist() == list(range(7)) and c[1]["exp"][:, 0].tolist() == list(range(7, 14))


def test_random_crop_uses_numpy_randint_like_the_original(lmdb_dir):
    ds = _ds(lmdb_dir)
    np.random.seed(123)
    expected = [np.random.randint(0, 37 - 14 + 1) for _ in range(20)]
    np.random.seed(123)
    starts = [int(ds[0][1][0]["exp"][0, 0]) for _ in range(20)]
    assert starts == expected
    assert all(0 <= s <= 23 for s in starts)


def test_random_crop_with_own_seed_covers_every_start(lmdb_dir):
    ds = _ds(lmdb_dir, seed=5)
    rng = np.random.default_rng(5)
    expected = [int(rng.integers(0, 24)) for _ in range(300)]
    starts = []
    for _ in range(300):
        _, c, _ = ds[0]
        s = int(c[0]["exp"][0, 0])
        assert c[1]["exp"][:, 0].tolist() == list(range(s + 7, s + 14))
        starts.append(s)
    assert starts == expected and set(starts) == set(range(24))


def test_coefficients_normalised_with_stats(lmdb_dir):
    ds = _ds(lmdb_dir, stats=True, crop_strategy="end")
    _, coef_pair, _ = ds[2]  # bob/003: 25 frames, start 11
    f = torch.arange(11, 25, dtype=torch.float32)
    raw_exp = torch.stack([f, 2 * f + 2.0, torch.sin(f)], dim=1)
    mean, std = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 0.0])
    expected = (raw_exp - mean) / (std + 1e-9)
    got = torch.cat([coef_pair[0]["exp"], coef_pair[1]["exp"]])
    assert torch.allclose(got[:, :2], expected[:, :2], rtol=0, atol=1e-6)
    assert got[:, 0].tolist() == [(x - 1) / 2 for x in range(11, 25)]
    assert torch.allclose(got[:, 2], (torch.sin(f) - 3) / 1e-9, rtol=1e-5)  # std 0: divided by 1e-9
    expected_shape = (torch.tensor([0, 1 / 3, 2 / 3, 1]) + 2.0 - 0.5) / 0.25
    assert torch.allclose(coef_pair[0]["shape"], expected_shape.expand(7, 4), rtol=0, atol=1e-5)


@pytest.mark.parametrize("strategy", ["begin", "end", "random"])
def test_identical_to_the_original_loader(lmdb_dir, ref, strategy):
    stats = dict(np.load(lmdb_dir.parent / "stats.npz"))
    ds = _ds(lmdb_dir, stats=True, crop_strategy=strategy, seed=1)
    items = [(ds.entries[i], ds[i]) for i in range(len(ds)) for _ in range(3)]
    del ds
    gc.collect()  # LMDB allows one handle per process: let the reference open its own
    for entry, (audio_pair, coef_pair, (mean, std)) in items:
        raw_pose0 = float(coef_pair[0]["pose"][0, 0])  # (f / 100 - 0) / (1 + 1e-9)
        start = int(round(raw_pose0 * 100))
        r_audio, r_coef, (r_mean, r_std) = ref.item(lmdb_dir, entry, start, N_MOTIONS, stats)
        # torch's float32 reductions round differently from a float64 accumulation: ulps apart
        assert torch.allclose(mean, r_mean, rtol=1e-5, atol=1e-9) and torch.allclose(std, r_std, rtol=1e-6)
        for a, b in zip(audio_pair, r_audio):
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)
        for c, rc in zip(coef_pair, r_coef):
            assert c.keys() == rc.keys() and all(torch.equal(c[k], rc[k]) for k in c)


def test_cache_does_not_change_items(lmdb_dir):
    cached, uncached = _ds(lmdb_dir, crop_strategy="end"), _ds(lmdb_dir, crop_strategy="end", cache_mb=0)
    for i in range(3):
        for _ in range(2):
            a, b = cached[i], uncached[i]
            assert all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
    assert uncached._cache == {} and len(cached._cache) > 0


def test_short_sequence_is_a_clear_error(lmdb_dir):
    with pytest.raises(InputError, match=r"carl/000 \(13 frames\)") as e:
        _ds(lmdb_dir, split="all.txt")
    assert "2 * n_motions = 14" in str(e.value)


def test_bad_arguments(lmdb_dir, tmp_path):
    (tmp_path / "missing.txt").write_text("alice/000\nzoe/000\n")
    with pytest.raises(InputError, match="zoe/000"):
        _ds(lmdb_dir, split="missing.txt")
    with pytest.raises(InputError, match="crop_strategy"):
        _ds(lmdb_dir, crop_strategy="middle")
    with pytest.raises(InputError, match="rot_repr"):
        _ds(lmdb_dir, rot_repr="6d")
    with pytest.raises(InputError, match="no data.mdb"):
        AVClipDataset(tmp_path, tmp_path / "missing.txt")


def test_several_datasets_and_pickling_in_one_process(lmdb_dir):
    a = _ds(lmdb_dir, crop_strategy="begin")
    b = _ds(lmdb_dir, split="ok.txt", crop_strategy="begin")  # same LMDB: one shared handle
    assert a._env is b._env
    c = pickle.loads(pickle.dumps(a))
    assert c._env is None and torch.equal(c[1][0][0], a[1][0][0])


def test_dataloader_workers_open_their_own_lmdb(lmdb_dir):
    ds = _ds(lmdb_dir, crop_strategy="end")
    ds[0]  # the parent has used its handle before the workers fork
    expected = [ds[i] for i in range(3)]
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    got = list(loader)
    assert len(got) == 3
    for (audio_pair, coef_pair, (mean, std)), (ea, ec, (em, es)) in zip(got, expected):
        assert torch.equal(audio_pair[1][0], ea[1]) and torch.equal(coef_pair[0]["exp"][0], ec[0]["exp"])
        assert torch.equal(mean[0], em)


def test_seeded_crops_in_workers_follow_torch_seed(lmdb_dir):
    ds = _ds(lmdb_dir, split="ok.txt", seed=0)

    def starts():
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
        return [[int(x) for x in batch[1][0]["exp"][:, 0, 0]] for batch in loader]

    torch.manual_seed(1)
    first = [starts(), starts()]  # two epochs
    torch.manual_seed(1)
    again = [starts(), starts()]
    assert first == again and first[0] != first[1]


def test_split_by_name_as_the_build_writes_it(lmdb_dir, tmp_path):
    # README: AVClipDataset("/data/hdtf_lmdb", "train", ...) -> <lmdb>/train.txt, from any folder.
    (lmdb_dir / "train.txt").write_text("alice/000\nbob/003\n")
    ds = AVClipDataset(lmdb_dir, "train", n_motions=5, crop_strategy="begin")
    assert ds.split_file == lmdb_dir / "train.txt" and len(ds) == 2
    with pytest.raises(InputError, match="give a path or a split name"):
        AVClipDataset(lmdb_dir, "val", n_motions=5)
