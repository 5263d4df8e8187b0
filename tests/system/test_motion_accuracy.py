"""sync.motion picks the speaker on composed fixtures where everybody's lips move; mouth motion alone cannot.

Fixtures (avflow.testing.compose): talking tiles and a still portrait, one voice heard at a time in
random 2-4 s turns with silence gaps, the tiles not heard showing another part of their own
clip (lips moving, out of sync). Landmarks come from MediaPipe face mesh run on each tile
(motion_eval.tile_tracks). Decision: the graph's (motion_eval.graph_decision: sync.smooth over 9
frames, then sync.speaker with its defaults and min_turn 8). Frame accuracy with a 6-frame collar
around every change of the ground truth (speaker changes, and pauses of 0.3 s or more, where
nobody speaks).

Measured on the fixtures below: 0.994, 0.940, 0.823 (two talkers) and 0.888 (three). On fresh
fixtures (bench/motion_scorer.py) two talkers + a portrait average 0.94-0.95 and three 0.85-0.87;
through the whole diarize graph (its own per-track face mesh; 17 fixtures) 0.950 and 0.920. The 95 % target is
not asserted because it is not reached (see the bench's analysis); the bars leave room for the
spread of single 12 s fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest

from avflow.testing.compose import compose_speakers, random_turns

pytestmark = pytest.mark.slow

DURATION = 12.0
SIZE = (960, 540)


def fixture(media_dir, tmp_path, names, seed):
    sources = [media_dir / n for n in names]
    talking = [k for k, n in enumerate(names) if n.endswith(".mp4")]
    turns = random_turns(talking, DURATION, min_turn=2.0, max_turn=4.0, gap_prob=0.2, seed=seed)
    return compose_speakers(sources, turns, out=tmp_path / f"fx{seed}.mp4", size=SIZE, seed=seed)


@pytest.fixture(scope="module")
def results(media_dir, tmp_path_factory):
    from avflow_sync.motion_eval import evaluate

    tmp = tmp_path_factory.mktemp("accuracy")
    two = [(("talking2.mp4", "talking3.mp4", "monalisa.png"), 21),
           (("talking1.mp4", "talking3.mp4", "musk.png"), 22),
           (("talking1.mp4", "talking2.mp4", "sit.jpeg"), 23)]
    three = [(("talking1.mp4", "talking2.mp4", "talking3.mp4", "monalisa.png"), 24)]
    out = {"two": [], "three": []}
    for key, cases in (("two", two), ("three", three)):
        for names, seed in cases:
            r = evaluate(fixture(media_dir, tmp, names, seed))
            out[key].append({k: r[k] for k in ("motion", "baseline", "ms_per_frame")} | {"names": names})
    return out


def test_two_talkers_and_a_portrait(results):
    motion = [r["motion"] for r in results["two"]]
    print("two talkers + portrait:", results["two"])
    assert np.mean(motion) >= 0.9
    assert min(motion) >= 0.8


def test_three_talkers_and_a_portrait(results):
    print("three talkers + portrait:", results["three"])
    assert results["three"][0]["motion"] >= 0.8


def test_mouth_motion_baseline_fails(results):
    rows = results["two"] + results["three"]
    assert max(r["baseline"] for r in rows) < 0.65
    assert all(r["motion"] > r["baseline"] + 0.25 for r in rows)


def test_scorer_is_cheap(results):
    assert max(r["ms_per_frame"] for r in results["two"] + results["three"]) < 5.0


def test_diarize_graph_end_to_end(media_dir, repo_dir, tmp_path):
    """The whole default graph (detection, tracking, face mesh, sync.motion, smoothing, decision)."""
    import avflow
    from avflow.testing.compose import frame_accuracy

    fx = fixture(media_dir, tmp_path, ("talking2.mp4", "talking3.mp4", "monalisa.png"), 21)
    result = avflow.run(repo_dir / "graphs" / "diarize.yaml", {"video": str(fx.path)}, output_dir=tmp_path / "out",
                        device="cpu")
    doc = result.outputs["diarization"].data
    assert frame_accuracy(fx, doc) >= 0.95  # measured 0.994 (video-mode face mesh per track)
