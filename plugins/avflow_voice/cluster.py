"""Voices from embeddings: agglomerative clustering, then a segmentation in time.

:func:`cluster_voices` groups embedding windows into voices with scipy's hierarchical clustering
(average linkage on cosine distance), the number of voices estimated by a distance threshold or
given (``num_speakers``), and kept within ``min_speakers..max_speakers`` as pyannote's pipelines
take them. Memory stays bounded on long input: past ``max_items`` windows, scikit-learn's
``MiniBatchKMeans`` first summarises them into ``max_items`` centroids, so a 2-hour file never
builds an all-pairs matrix of every window.

:func:`segment_voices` then gives every window one voice with a Viterbi pass over the
windows' similarities to the voice centroids, a change of voice costing ``switch_cost``: a window
that resembles another voice for a moment does not start a turn, a real change is placed where
the similarities cross.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Voices:
    """A clustering: ``labels[i]`` is the voice of window ``i`` (0..k-1, by first appearance);
    ``centroids[k]`` the L2-normalised mean embedding of voice ``k``."""

    labels: np.ndarray
    centroids: np.ndarray

    @property
    def count(self) -> int:
        return int(self.centroids.shape[0])


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _centroids(emb: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    w = np.ones(len(emb)) if weights is None else weights
    return _normalise(np.stack([(emb[labels == j] * w[labels == j, None]).sum(axis=0) for j in range(k)]))


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance."""
    order: dict[int, int] = {}
    for lab in labels.tolist():
        order.setdefault(lab, len(order))
    return np.array([order[lab] for lab in labels.tolist()], np.int64)


def cluster_voices(embeddings: np.ndarray, *, threshold: float = 0.4, num_speakers: int | None = None,
                   min_speakers: int = 1, max_speakers: int | None = None, weights: np.ndarray | None = None,
                   max_items: int = 2000, seed: int = 0) -> Voices:
    """Cluster L2-normalised embeddings ``(n, d)`` into voices.

    :param threshold: cosine distance at which the hierarchy is cut when ``num_speakers`` is not
        given (two windows of one voice are typically within 0.2-0.3 of each other, two voices
        0.4-0.7 apart, for Resemblyzer's encoder).
    :param num_speakers: the exact number of voices, if known.
    :param min_speakers: at least this many voices (when there are as many windows).
    :param max_speakers: at most this many voices.
    :param weights: per-window weight of the centroids (e.g. speech seconds); default 1.
    :param max_items: above this many windows, MiniBatchKMeans summarises them first.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    emb = _normalise(embeddings)
    n = len(emb)
    if n == 0:
        return Voices(np.zeros(0, np.int64), np.zeros((0, emb.shape[1] if emb.ndim == 2 else 256)))
    if n == 1:
        return Voices(np.zeros(1, np.int64), emb.copy())
    items, assign = emb, np.arange(n)
    if n > max_items:
        from sklearn.cluster import MiniBatchKMeans

        km = MiniBatchKMeans(n_clusters=max_items, random_state=seed, n_init=1, batch_size=4096).fit(emb)
        assign = km.labels_
        used = np.unique(assign)
        remap = np.full(max_items, -1)
        remap[used] = np.arange(len(used))
        assign = remap[assign]
        items = _normalise(km.cluster_centers_[used])
    tree = linkage(items, method="average", metric="cosine")
    lo = max(1, min(int(min_speakers), len(items)))
    hi = len(items) if max_speakers is None else max(lo, min(int(max_speakers), len(items)))
    if num_speakers is not None:
        k = max(1, min(int(num_speakers), len(items)))
        item_labels = fcluster(tree, k, criterion="maxclust")
    else:
        item_labels = fcluster(tree, threshold, criterion="distance")
        k = len(np.unique(item_labels))
        if not lo <= k <= hi:
            item_labels = fcluster(tree, min(max(k, lo), hi), criterion="maxclust")
    labels = _relabel(item_labels[assign] - 1)
    k = int(labels.max()) + 1
    return Voices(labels, _centroids(emb, labels, k, weights))


def merge_small(voices: Voices, embeddings: np.ndarray, durations: np.ndarray, min_total: float,
                keep: int = 1) -> Voices:
    """Give the windows of voices with less than ``min_total`` seconds to the nearest larger voice
    (a cough, a laugh or a short overlap makes a cluster of its own). At least ``keep`` voices stay."""
    labels = voices.labels.copy()
    totals = np.bincount(labels, weights=durations, minlength=voices.count)
    big = [k for k in np.argsort(-totals) if totals[k] >= min_total] or [int(np.argmax(totals))]
    big = sorted(set(big) | set(np.argsort(-totals)[:keep].tolist()))
    if len(big) == voices.count:
        return voices
    emb = _normalise(embeddings)
    cent = voices.centroids[big]
    for i in np.flatnonzero(~np.isin(labels, big)):
        labels[i] = big[int(np.argmax(cent @ emb[i]))]
    labels = _relabel(labels)
    k = int(labels.max()) + 1
    return Voices(labels, _centroids(emb, labels, k))


def segment_voices(similarity: np.ndarray, switch_cost: float) -> np.ndarray:
    """The best voice per window: Viterbi over ``similarity`` ``(n, k)`` (each window earns its
    similarity to the voice it is given) with ``switch_cost`` per change of voice."""
    n, k = similarity.shape
    if n == 0 or k == 0:
        return np.zeros(n, np.int64)
    score = similarity[0].astype(np.float64).copy()
    back = np.zeros((n, k), np.int64)
    for i in range(1, n):
        stay = score
        best = int(np.argmax(score))
        switch = score[best] - switch_cost
        take = switch > stay
        back[i] = np.where(take, best, np.arange(k))
        score = np.where(take, switch, stay) + similarity[i]
    path = np.zeros(n, np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path
