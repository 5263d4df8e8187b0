"""Online voice clustering: voices created and updated as they are heard."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from avflow.testing import NodeRunner
from avflow_voice.nodes.online import OnlineVoiceClusterer
from avflow_voice.online import OnlineVoices
from avflow_voice.payloads import SpeechActivity, VoiceEmbedding


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


def _activity(start: float, end: float, on: bool, hop: float = 0.1) -> list[SpeechActivity]:
    n = int(round((end - start) / hop))
    return [SpeechActivity(pts=int(round((start + k * hop) * 1000)), time_base=Fraction(1, 1000),
                           probs=np.full(1, float(on), np.float32), hop=hop, speech=np.full(1, on))
            for k in range(n)]


def test_a_new_voices_single_window_is_labelled_after_a_silence():
    # voice a speaks 0-3 s (windows every 0.2 s), then voice b says one short utterance (one window,
    # 3.5-4.5 s) and silence follows: with the speech clock the window founds voice_1 once 0.6 s of
    # silence has passed, not when (if ever) a second window of b comes
    rng = np.random.default_rng(4)
    a, b = _centres(rng, 2)
    items = [(i * 0.2 + 0.5, VoiceEmbedding(pts=int((i * 0.2 + 0.5) * 1000), time_base=Fraction(1, 1000), start=i * 0.2,
                                            end=i * 0.2 + 1.0, vector=v.astype(np.float32), speech=1.0))
             for i, v in enumerate(_voice(rng, a, 11))]
    lone = VoiceEmbedding(pts=4000, time_base=Fraction(1, 1000), start=3.5, end=4.5,
                          vector=_voice(rng, b, 1)[0].astype(np.float32), speech=1.0)
    runner = NodeRunner(OnlineVoiceClusterer, threshold=0.3, min_new=2, hold=0.6)
    runner.open()
    for _, item in items:
        runner.feed("embeddings", item)
    for chunk in _activity(0.0, 4.5, True):
        runner.feed("speech", chunk)
    runner.feed("embeddings", lone)
    heard = []
    for chunk in _activity(4.5, 6.0, False):
        runner.feed("speech", chunk)
        heard.append((chunk.time, [x.voice for x in runner.outputs.get("labels", [])][-1]))
    labelled_at = next(t for t, v in heard if v == "voice_1")
    assert 4.5 + 0.6 - 0.1 - 1e-6 <= labelled_at <= 4.5 + 0.6 + 1e-6
    out = runner.outputs["labels"]
    assert [x.voice for x in out] == ["voice_0"] * 11 + ["voice_1"] and out[-1].new


def test_without_the_speech_input_a_lone_window_waits_for_a_second_one():
    rng = np.random.default_rng(5)
    a, b = _centres(rng, 2)
    windows = [VoiceEmbedding(pts=i, time_base=Fraction(1, 1000), start=0.2 * i, end=0.2 * i + 1.0,
                              vector=v.astype(np.float32), speech=1.0)
               for i, v in enumerate(list(_voice(rng, a, 5)) + list(_voice(rng, b, 1)))]
    runner = NodeRunner(OnlineVoiceClusterer, threshold=0.3, min_new=2)
    runner.open()
    for w in windows:
        runner.feed("embeddings", w)
    assert len(runner.outputs["labels"]) == 5  # the sixth is held
    assert [x.voice for x in runner.finish()["labels"]][-1] == "voice_0"  # the end: to the nearest voice
