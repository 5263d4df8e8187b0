"""Person splits and coefficient statistics."""

from __future__ import annotations

import numpy as np
import pytest

from avflow import InputError
from avflow_datasets.layout import READERS
from avflow_datasets.splits import check_ratios, coef_stats, split_by_person

KEYS = [f"p{p:02d}/{v:03d}" for p in range(20) for v in range(p % 3 + 1)]


def test_no_person_in_two_splits_and_counts():
    s = split_by_person(KEYS, (0.7, 0.2, 0.1), seed=3)
    persons = {name: {k.split("/")[0] for k in keys} for name, keys in s.items()}
    assert [len(persons[n]) for n in ("train", "val", "test")] == [14, 4, 2]
    assert not (persons["train"] & persons["val"] or persons["train"] & persons["test"]
                or persons["val"] & persons["test"])
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(KEYS)
    assert all(keys == sorted(keys) for keys in s.values())


def test_seeded_and_order_independent():
    a = split_by_person(KEYS, (0.6, 0.2, 0.2), seed=1)
    assert a == split_by_person(list(reversed(KEYS)), (0.6, 0.2, 0.2), seed=1)
    assert a != split_by_person(KEYS, (0.6, 0.2, 0.2), seed=2)


def test_train_keeps_a_person():
    s = split_by_person(["a/000", "b/000"], (0.1, 0.45, 0.45), seed=0)
    assert len(s["train"]) == 1 and len(s["val"]) + len(s["test"]) == 1
    assert split_by_person(["a/000"], (0.8, 0.1, 0.1))["train"] == ["a/000"]


def test_ratios_are_checked():
    assert check_ratios([0.8, 0.1, 0.1]) == (0.8, 0.1, 0.1)
    for bad in ([0.5, 0.5], [0.5, 0.6, 0.1], [0, 0.5, 0.5], [1.2, -0.1, -0.1]):
        with pytest.raises(ValueError):
            check_ratios(bad)


def test_stats_over_every_train_frame(tmp_path, ref):
    a, b = ref.ramp_subject(23, 23 * 640), ref.ramp_subject(9, 9 * 640, offset=3.0)
    path = ref.write_lmdb(tmp_path / "db", {"a/000": a, "b/000": b, "c/000": ref.ramp_subject(5, 5 * 640)}, 10)
    env = READERS.get(path)
    stats = coef_stats(env, ["a/000", "b/000"])
    assert sorted(stats) == ["exp_mean", "exp_std", "pose_mean", "pose_std", "shape_mean", "shape_std"]
    for k in ("shape", "exp", "pose"):
        rows = np.concatenate([a[0][k], b[0][k]]).astype(np.float64)
        assert stats[f"{k}_mean"].dtype == np.float32
        assert np.allclose(stats[f"{k}_mean"], rows.mean(0), atol=1e-5)
        assert np.allclose(stats[f"{k}_std"], rows.std(0), atol=1e-5)  # population std
    assert stats["exp_mean"][0] == pytest.approx((sum(range(23)) + sum(range(9))) / 32)


def test_stats_from_sampled_frames(tmp_path, ref):
    subj = {f"p{i}/000": ref.ramp_subject(30, 30 * 640) for i in range(4)}
    env = READERS.get(ref.write_lmdb(tmp_path / "db", subj, 10))
    sampled = coef_stats(env, list(subj), max_frames=40, seed=0)
    again = coef_stats(env, list(subj), max_frames=40, seed=0)
    assert all(np.array_equal(sampled[k], again[k]) for k in sampled)
    full = coef_stats(env, list(subj))
    assert not np.allclose(sampled["exp_mean"], full["exp_mean"])
    assert abs(sampled["exp_mean"][0] - full["exp_mean"][0]) < 5  # a fair sample of frames 0..29
    assert np.allclose(coef_stats(env, list(subj), max_frames=10_000)["exp_mean"], full["exp_mean"])
    with pytest.raises(InputError, match="train split is empty"):
        coef_stats(env, [])


def test_build_warns_of_short_sequences_and_empty_splits(tmp_path, ref):
    # Two persons with 5-6 s clips: n_motions=100 cannot crop them, and val/test are empty.
    from avflow_datasets.build import build_warnings

    subjects = {"alice/000": ref.ramp_subject(140, 140 * 640), "bob/000": ref.ramp_subject(260, 260 * 640)}
    path = ref.write_lmdb(tmp_path / "lmdb", subjects, 100)
    split = split_by_person(list(subjects), (0.8, 0.1, 0.1), seed=0)
    env = READERS.get(path)
    warnings = build_warnings(env, sorted(subjects), split, (0.8, 0.1, 0.1), 25.0)
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("1 of 2 sequences are shorter than 200 frames (8 s")
    assert "alice/000" in warnings[0] and "n_motions <= 70 works for all" in warnings[0]
    assert {w.split("'")[1] for w in warnings[1:]} == {"val", "test"}
    assert all("is empty" in w for w in warnings[1:])
    assert build_warnings(env, sorted(subjects), {"train": ["alice/000"], "val": ["bob/000"], "test": []},
                          (0.5, 0.5, 0.0), 25.0)[1:] == []
