"""Who speaks, through the whole diarize graph, on composed fixtures where everybody's lips move.

Fixtures (avflow.testing.compose): talking tiles and a still portrait, one voice heard at a time in
random 2-4 s turns with silence gaps, the tiles not heard showing another part of their own clip
(lips moving, out of sync). Both decisions run the real graph: ``decision=frame`` (sync.motion ->
sync.smooth -> sync.speaker) and the default ``decision=voices`` (voices clustered, then given to
faces by sync.assign). Frame accuracy with a 6-frame collar around every change of the ground
truth (speaker changes, and pauses of 0.3 s or more, where nobody speaks).

Measured: per-frame decision 0.994, 0.930, 0.850 (two talkers) and 0.888 (three); voices decision
0.982, 0.995, 0.966 and 0.967 (mean 0.978 vs 0.916; see bench/README.md). The bars leave room
for the spread of single 12 s fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest

from avflow.testing.compose import compose_speakers, random_turns
from avflow_sync.scoring import frame_accuracy

pytestmark = pytest.mark.slow

DURATION = 12.0
SIZE = (960, 540)
CASES = {"two": [(("talking2.mp4", "talking3.mp4", "monalisa.png"), 21),
                 (("talking1.mp4", "talking3.mp4", "musk.png"), 22),
                 (("talking1.mp4", "talking2.mp4", "sit.jpeg"), 23)],
         "three": [(("talking1.mp4", "talking2.mp4", "talking3.mp4", "monalisa.png"), 24)]}


def fixture(media_dir, tmp_path, names, seed):
    sources = [media_dir / n for n in names]
    talking = [k for k, n in enumerate(names) if n.endswith(".mp4")]
    turns = random_turns(talking, DURATION, min_turn=2.0, max_turn=4.0, gap_prob=0.2, seed=seed)
    return compose_speakers(sources, turns, out=tmp_path / f"fx{seed}.mp4", size=SIZE, seed=seed)


@pytest.fixture(scope="module")
def results(media_dir, repo_dir, tmp_path_factory):
    import avflow

    tmp = tmp_path_factory.mktemp("accuracy")
    out = {"two": [], "three": []}
    for key, cases in CASES.items():
        for names, seed in cases:
            fx = fixture(media_dir, tmp, names, seed)
            row = {"names": names}
            for decision in ("frame", "voices"):
                result = avflow.run(repo_dir / "graphs" / "diarize.yaml", {"video": str(fx.path), "decision": decision},
                                    output_dir=tmp / f"out{seed}{decision}", device="cpu")
                row[decision] = frame_accuracy(fx, result.outputs["diarization"].data)
            out[key].append(row)
    print(out)
    return out


def test_two_talkers_and_a_portrait(results):
    frame = [r["frame"] for r in results["two"]]
    assert np.mean(frame) >= 0.9 and min(frame) >= 0.8, results["two"]
    # measured 0.982, 0.995, 0.966: talking1 and talking2 sound alike to the voice encoder, and on
    # seed 23 the long windows hold both in one voice; the 0.8 s windows split it (fine_split;
    # 0.673 before), and a track fragment on the portrait no longer takes a voice (min_frames)
    voices = [r["voices"] for r in results["two"]]
    assert np.mean(voices) >= 0.93 and min(voices) >= 0.9, results["two"]


def test_three_talkers_and_a_portrait(results):
    assert results["three"][0]["frame"] >= 0.8, results["three"]
    assert results["three"][0]["voices"] >= 0.9, results["three"]  # measured 0.967
