"""Train/val/test splits by person, and the coefficient statistics of a split."""

from __future__ import annotations

import random
from typing import Any, Iterable, Sequence

import numpy as np

from avflow import InputError

from .layout import COEF_KEYS, META_KEY, clip_key, n_clips, subject_meta_key
from .pickles import safe_loads

SPLIT_NAMES = ("train", "val", "test")


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """``(train, val, test)`` fractions: three numbers >= 0 summing to 1, train > 0."""
    if len(ratios) != 3 or any(not isinstance(r, (int, float)) or r < 0 for r in ratios):
        raise ValueError(f"splits must be three fractions [train, val, test] >= 0, got {list(ratios)!r}")
    if abs(sum(ratios) - 1.0) > 1e-6 or ratios[0] <= 0:
        raise ValueError(f"splits must sum to 1 with a train fraction > 0, got {list(ratios)!r}")
    return float(ratios[0]), float(ratios[1]), float(ratios[2])


def split_by_person(keys: Iterable[str], ratios: Sequence[float] = (0.8, 0.1, 0.1),
                    seed: int = 0) -> dict[str, list[str]]:
    """Assign whole persons to train/val/test; no person is in two splits.

    Persons (the part of ``<person>/<NNN>`` before the slash) are sorted, then shuffled with
    ``random.Random(seed)``. Of the ``n`` shuffled persons, val gets ``round(n * val)``, test
    ``round(n * test)`` and train the rest, in that order (train first), train keeping at least
    one person. Each split lists its keys sorted.
    """
    _, r_val, r_test = check_ratios(ratios)
    by_person: dict[str, list[str]] = {}
    for key in keys:
        by_person.setdefault(key.split("/", 1)[0], []).append(key)
    persons = sorted(by_person)
    random.Random(seed).shuffle(persons)
    n = len(persons)
    n_val, n_test = round(n * r_val), round(n * r_test)
    while n and n_val + n_test > n - 1:  # keep a person for train
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    n_train = n - n_val - n_test
    groups = {"train": persons[:n_train], "val": persons[n_train:n_train + n_val],
              "test": persons[n_train + n_val:]}
    return {name: sorted(k for p in groups[name] for k in by_person[p]) for name in SPLIT_NAMES}


def _combine(acc: dict[str, Any], k: str, x: np.ndarray) -> None:
    """Chan et al.'s parallel update of count/mean/M2 with the rows of ``x``."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if len(x) == 0:
        return
    n_b, mean_b = len(x), x.mean(axis=0)
    m2_b = ((x - mean_b) ** 2).sum(axis=0)
    if k not in acc:
        acc[k] = [n_b, mean_b, m2_b]
        return
    n_a, mean_a, m2_a = acc[k]
    n = n_a + n_b
    delta = mean_b - mean_a
    acc[k] = [n, mean_a + delta * n_b / n, m2_a + m2_b + delta ** 2 * n_a * n_b / n]


def coef_stats(env: Any, subjects: Sequence[str], max_frames: int | None = None,
               seed: int = 0) -> dict[str, np.ndarray]:
    """``<k>_mean`` and ``<k>_std`` (float32, population std) per coefficient key over ``subjects``.

    :param max_frames: None: every frame of every subject. N: N frames drawn uniformly without
        replacement (``numpy.random.default_rng(seed)``) over all frames, reading only the clips
        that hold them (for huge datasets).
    :raises InputError: no subject, or no frame.
    """
    if not subjects:
        raise InputError("cannot compute coefficient statistics: the train split is empty")
    with env.begin() as txn:
        seg_len = int(safe_loads(txn.get(META_KEY), "LMDB key 'metadata'")["seg_len"])
        lengths = [int(safe_loads(txn.get(subject_meta_key(s)), f"LMDB key '{s}/metadata'")["n_frames"])
                   for s in subjects]
        total = sum(lengths)
        if total == 0:
            raise InputError("cannot compute coefficient statistics: the train split has no frame")
        acc: dict[str, Any] = {}
        wanted: dict[tuple[int, int], np.ndarray] | None = None
        if max_frames is not None and max_frames < total:
            picks = np.sort(np.random.default_rng(seed).choice(total, size=max_frames, replace=False))
            starts = np.cumsum([0] + lengths[:-1])
            subj = np.searchsorted(starts, picks, side="right") - 1
            local = picks - starts[subj]
            wanted = {}
            for s_i, f in zip(subj.tolist(), local.tolist()):
                wanted.setdefault((s_i, f // seg_len), []).append(f % seg_len)  # type: ignore[arg-type]
        for s_i, subject in enumerate(subjects):
            for c in range(n_clips(lengths[s_i], seg_len)):
                if wanted is not None and (s_i, c) not in wanted:
                    continue
                key = clip_key(subject, c)
                raw = txn.get(key)
                if raw is None:
                    raise InputError(f"LMDB lacks clip '{key.decode()}'")
                coef = safe_loads(raw, f"LMDB key '{key.decode()}'")["coef"]
                for k in COEF_KEYS:
                    rows = np.asarray(coef[k])
                    if wanted is not None:
                        rows = rows[wanted[(s_i, c)]]
                    _combine(acc, k, rows)
    out: dict[str, np.ndarray] = {}
    for k in COEF_KEYS:
        n, mean, m2 = acc[k]
        out[f"{k}_mean"] = mean.astype(np.float32)
        out[f"{k}_std"] = np.sqrt(m2 / n).astype(np.float32)
    return out
