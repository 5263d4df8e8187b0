"""Online voice clustering: voices created and updated as they are heard."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from avflow.testing import NodeRunner
from avflow_voice.nodes.online import OnlineVoiceClusterer
from avflow_voice.online import OnlineVoices
from avflow_voice.payloads import VoiceEmbedding


def _voice(rng, centre, n, noise=0.15):
    x = centre[None, :] + noise * rng.normal(size=(n, centre.size)) / np.sqrt(centre.size)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _centres(rng, k, d=256):
    c = rng.normal(size=(k, d))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def test_two_voices_in_turns_get_two_stable_ids():
    rng = np.random.default_rng(0)
    a, b = _centres(rng, 2)
    seq = [_voice(rng, a, 10), _voice(rng, b, 10), _voice(rng, a, 10)]
    ov = OnlineVoices(threshold=0.3, min_new=2)
    labels = {}
    for i, e in enumerate(np.concatenate(seq)):
        for d in ov.push(i, e):
            labels[d.key] = d.voice
    for d in ov.flush():
        labels[d.key] = d.voice
    got = [labels[i] for i in range(30)]
    assert got == [0] * 10 + [1] * 10 + [0] * 10
    assert ov.count == 2


def test_one_stray_window_does_not_found_a_voice():
    rng = np.random.default_rng(1)
    a, stray = _centres(rng, 2)
    windows = list(_voice(rng, a, 5)) + [stray] + list(_voice(rng, a, 5))
    ov = OnlineVoices(threshold=0.3, min_new=2)
    decided = [d for i, e in enumerate(windows) for d in ov.push(i, e)] + ov.flush()
    assert ov.count == 1 and len(decided) == len(windows)
    assert {d.voice for d in decided} == {0}


def test_memory_is_bounded_by_max_voices():
    rng = np.random.default_rng(2)
    ov = OnlineVoices(threshold=0.3, min_new=1, max_voices=3)
    for i, c in enumerate(_centres(rng, 10)):
        ov.push(i, c)
    assert ov.count == 3


def test_the_node_labels_every_window_in_order():
    rng = np.random.default_rng(3)
    a, b = _centres(rng, 2)
    vectors = np.concatenate([_voice(rng, a, 6), _voice(rng, b, 6)])
    items = [VoiceEmbedding(pts=i * 200, time_base=Fraction(1, 1000), start=i * 0.2 - 0.5, end=i * 0.2 + 0.5,
                            vector=v.astype(np.float32), speech=1.0) for i, v in enumerate(vectors)]
    out = NodeRunner(OnlineVoiceClusterer, threshold=0.3, min_new=2).run({"embeddings": items})["labels"]
    assert [x.pts for x in out] == [x.pts for x in items]
    assert [x.voice for x in out] == ["voice_0"] * 6 + ["voice_1"] * 6
    assert out[6].new and out[7].new  # the founding windows say so
