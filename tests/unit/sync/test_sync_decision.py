"""Smoothing and the speaker decision on hand-written score sequences."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow.payloads import AudioChunk, Box, FaceTrack, Score, TrackedFaces
from avflow.testing import NodeRunner
from avflow_sync.decision import (EnergyMeter, HysteresisPicker, MinTurnFilter, ViterbiSegmenter, decide_sequence,
                                  is_silent)
from avflow_sync.nodes.smooth import ScoreSmoother
from avflow_sync.nodes.speaker import SpeakerDecision
from avflow_sync.smoothing import TrackSmoother, smooth_sequence

TB = Fraction(1, 25)


def score(track, frame, value):
    return Score(pts=frame, time_base=TB, track_id=track, frame_index=frame, value=value)


def tracked(frame, tracks):
    return TrackedFaces(pts=frame, time_base=TB, frame_index=frame, width=320, height=240,
                        faces=[FaceTrack(t, Box(0, 0, 10, 10)) for t in tracks])


# -- smoothing ------------------------------------------------------------------------------------
def test_moving_mean_ignores_holes_and_keeps_them():
    seq = [1.0, None, 3.0, 5.0, None, None, 9.0]
    assert smooth_sequence(seq, 3) == [1.0, None, 4.0, 4.0, None, None, 9.0]
    assert smooth_sequence(seq, 5) == [2.0, None, 3.0, 4.0, None, None, 9.0]
    assert smooth_sequence(seq, 1) == seq


def test_moving_median():
    assert smooth_sequence([1.0, 10.0, 2.0, 3.0], 3, "median") == [5.5, 2.0, 3.0, 2.5]


def test_track_smoother_streams_with_half_a_window_of_delay():
    sm = TrackSmoother(5)
    got = [sm.push(i, float(i)) for i in range(6)]
    assert got[:2] == [[], []]
    assert got[2] == [(0, 1.0)]               # mean of 0, 1, 2
    assert got[5] == [(3, 3.0)]               # mean of 1..5
    assert sm.release(None) == [(4, 3.5), (5, 4.0)]


def test_smooth_node_emits_every_input_once_with_smoothed_values():
    a = [0.2, 0.4, 0.6, None, 1.0]
    b = [0.9, 0.9, 0.0, 0.0, 0.3]
    items = [score(t, f, v[f]) for f in range(5) for t, v in (("a", a), ("b", b))]
    runner = NodeRunner(ScoreSmoother, window=3)
    for it in items[:6]:                     # frames 0..2 of both tracks
        runner.feed("scores", it)
    assert [(s.track_id, s.frame_index) for s in runner.outputs["scores"]] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    for it in items[6:]:
        runner.feed("scores", it)
    out = runner.finish()["scores"]
    got = {(s.track_id, s.frame_index): s.value for s in out}
    assert len(out) == 10
    assert got == pytest.approx({("a", 0): 0.3, ("a", 1): 0.4, ("a", 2): 0.5, ("a", 3): None, ("a", 4): 1.0,
                                 ("b", 0): 0.9, ("b", 1): 0.6, ("b", 2): 0.3, ("b", 3): 0.1, ("b", 4): 0.15})
    assert all(s.pts == s.frame_index and s.time_base == TB for s in out)
    assert [s.extra["raw"] for s in out if s.track_id == "a"] == a


def test_smooth_node_flushes_a_track_that_stopped():
    runner = NodeRunner(ScoreSmoother, window=5)
    runner.feed("scores", score("b", 0, 0.5))
    runner.feed("scores", score("b", 1, 0.7))
    for f in range(12):
        runner.feed("scores", score("a", f, 0.1))
    assert {(s.track_id, s.frame_index) for s in runner.outputs["scores"] if s.track_id == "b"} == {("b", 0), ("b", 1)}


# -- decision steps --------------------------------------------------------------------------------
def test_threshold_and_hysteresis():
    frames = [{"a": 0.6, "b": 0.2},
              {"a": 0.6, "b": 0.65},   # b is better but not by more than the margin
              {"a": 0.6, "b": 0.75},   # now it is
              {"a": 0.7, "b": 0.75},   # a is better? no: b stays
              {"a": 0.8, "b": 0.75},   # a beats b, but only by 0.05
              {"a": 0.3, "b": 0.4},    # nobody reaches the threshold
              {"a": None, "b": 0.9},
              {"a": 0.9, "b": None}]   # the current speaker has no score: the best candidate takes over
    assert decide_sequence(frames, threshold=0.5, margin=0.1) == ["a", "a", "b", "b", "b", None, "b", "a"]
    assert decide_sequence(frames, threshold=0.5, margin=0.0) == ["a", "b", "b", "b", "a", None, "b", "a"]


def test_silence_clears_the_speaker():
    p = HysteresisPicker(0.5, 0.1)
    assert [p.step({"a": 0.9}, s) for s in (False, True, False)] == ["a", None, "a"]


def test_min_turn_absorbs_short_runs():
    raw = [None, "a", "a", "a", "b", "a", "a", None, None, "a", "a", "b", "b", "b", "b", "a"]
    mt = MinTurnFilter(3)
    out = [lab for i, r in enumerate(raw) for _, lab in mt.push(i, r)] + [lab for _, lab in mt.flush()]
    assert out == [None, "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]
    mt = MinTurnFilter(3)
    released = [[j for j, _ in mt.push(i, r)] for i, r in enumerate(raw[:5])]
    assert released == [[0], [], [], [1, 2, 3], []]   # at most min_turn - 1 frames held back


def test_is_silent_and_levels():
    assert is_silent(None, -10.0, 30, -60)              # no audio there
    assert is_silent(-45.0, -10.0, 30, -60)             # 35 dB below the loudest
    assert not is_silent(-35.0, -10.0, 30, -60)
    assert is_silent(-65.0, -70.0, 30, -60)             # below the absolute floor
    m = EnergyMeter()
    t = np.arange(16000) / 16000
    m.add((0.5 * np.sin(2 * np.pi * 200 * t))[None], Fraction(0), 16000)   # RMS 0.5 / sqrt 2: -9.03 dBFS
    m.add(np.zeros((2, 8000)), Fraction(1), 16000)                           # stereo silence
    assert m.level_db(0.0, 1.0) == pytest.approx(-9.03, abs=0.01)
    assert m.ref_db == pytest.approx(-9.03, abs=0.01)
    assert m.level_db(1.0, 1.5) == -120.0
    assert m.level_db(2.0, 2.5) is None
    assert m.complete_until == pytest.approx(1.5)


# -- the speaker node ------------------------------------------------------------------------------
def scene():
    """20 frames at 25 fps: tracks a and b in frames 0..14, nobody in 15..19.

    a scores 0.8 in frames 2..7 and 0.2 after; b 0.3, then 0.9 from frame 8; frames 0 and 1 have no
    scores (window edges). Speech (a 200 Hz tone) until 0.48 s (frame 12), silence after.
    """
    tracks = [tracked(f, ["a", "b"] if f < 15 else []) for f in range(20)]
    scores = [score(t, f, v) for f in range(2, 15)
              for t, v in (("a", 0.8 if f < 8 else 0.2), ("b", 0.3 if f < 8 else 0.9))]
    t = np.arange(12800) / 16000
    audio = np.where(t < 0.48, 0.5 * np.sin(2 * np.pi * 200 * t), 0.0).astype(np.float32)[None]
    chunks = [AudioChunk(pts=i, time_base=Fraction(1, 16000), samples=audio[:, i:i + 1000], sample_rate=16000)
              for i in range(0, audio.shape[1], 1000)]
    return tracks, scores, chunks


def active(records):
    return [r.data["active"] for r in records]


@pytest.mark.parametrize("min_turn,expected", [
    (1, [None] * 2 + ["a"] * 6 + ["b"] * 4 + [None] * 8),
    (3, [None] * 2 + ["a"] * 6 + ["b"] * 4 + [None] * 8),
    (5, [None] * 2 + ["a"] * 10 + [None] * 8),            # b's 4 frames are too short a turn
])
def test_speaker_per_frame_with_silence_and_no_faces(min_turn, expected):
    tracks, scores, chunks = scene()
    out = NodeRunner(SpeakerDecision, method="hysteresis", min_turn=min_turn).run(
        {"tracks": tracks, "scores": scores, "audio": chunks})["active"]
    assert [r.data["frame_index"] for r in out] == list(range(20))
    assert [r.pts for r in out] == list(range(20)) and all(r.time_base == TB for r in out)
    assert active(out) == expected
    assert [r.data["silent"] for r in out] == [False] * 12 + [True] * 8
    assert out[0].data["scores"] == {"a": None, "b": None}
    assert out[8].data["scores"] == {"a": 0.2, "b": 0.9}
    assert out[16].data["scores"] == {}
    assert out[12].data["candidate"] is None and out[12].data["audio_db"] == -120.0


def test_speaker_decides_while_streaming():
    tracks, scores, chunks = scene()
    runner = NodeRunner(SpeakerDecision, method="hysteresis", lookahead=2, min_turn=1)
    for c in chunks[:6]:                     # audio up to 0.375 s: frames 0..8 complete
        runner.feed("audio", c)
    for f in range(20):
        runner.feed("tracks", tracks[f])
    for s in scores:
        if s.frame_index <= 7:
            runner.feed("scores", s)
    # scores up to frame 7 with a lookahead of 2: frames 0..5 can be decided
    assert active(runner.outputs["active"]) == [None, None, "a", "a", "a", "a"]
    runner.feed("scores", score("a", 3, 0.0))          # too late: frame 3 is decided already
    out = runner.finish()["active"]
    assert len(out) == 20 and out[3].data["active"] == "a"


def test_speaker_without_tracks_uses_the_scored_frames_as_clock():
    scores = [score("a", f, 0.9) for f in (3, 4, 5, 6, 9, 10, 11)]
    out = NodeRunner(SpeakerDecision, method="hysteresis", min_turn=1).run({"scores": scores})["active"]
    assert [r.data["frame_index"] for r in out] == list(range(3, 12))
    assert [r.pts for r in out] == list(range(3, 12))            # pts of frames 7, 8 interpolated
    assert active(out) == ["a"] * 4 + [None] * 2 + ["a"] * 3
    assert all(r.data["silent"] is None for r in out)


@pytest.mark.parametrize("method", ["viterbi", "hysteresis"])
def test_speaker_nobody_when_no_face_scores_well(method):
    tracks = [tracked(f, ["a"]) for f in range(6)]
    scores = [score("a", f, 0.3) for f in range(6)]
    out = NodeRunner(SpeakerDecision, method=method, min_turn=1).run({"tracks": tracks, "scores": scores})["active"]
    assert active(out) == [None] * 6


@pytest.mark.parametrize("method", ["viterbi", "hysteresis"])
def test_speaker_uses_the_scorers_recommended_threshold_unless_set(method):
    from fractions import Fraction

    from avflow import Score
    from avflow.testing import NodeRunner
    from avflow_sync.nodes.speaker import SpeakerDecision

    def scores(hint):
        return [Score(pts=i, time_base=Fraction(1, 25), track_id="face_0", frame_index=i, value=0.3,
                      extra={} if hint is None else {"threshold": hint}) for i in range(50)]

    def actives(hint=None, **params):
        out = NodeRunner(SpeakerDecision, method=method, min_turn=1, lookahead=0, **params).run(
            {"scores": scores(hint)})
        return [r.data["active"] for r in out["active"]]

    assert actives(hint=0.2) == ["face_0"] * 50        # the scorer's scale: 0.3 is speech
    assert actives() == [None] * 50                   # no hint: 0.5
    assert actives(hint=0.2, threshold=0.4) == [None] * 50  # the graph's value wins


# -- viterbi ------------------------------------------------------------------------------------
def turns(*runs):
    """Score frames from runs of (frames, {track: score})."""
    return [dict(sc) for n, sc in runs for _ in range(n)]


def test_viterbi_ignores_a_brief_flip_and_keeps_sharp_changes():
    frames = turns((60, {"a": 0.6, "b": 0.1}), (6, {"a": 0.35, "b": 0.55}), (60, {"a": 0.6, "b": 0.1}),
                   (50, {"a": 0.1, "b": 0.5}))
    labels = decide_sequence(frames, 0.2, method="viterbi")
    assert labels == ["a"] * 126 + ["b"] * 50            # the flip is not worth two changes; the turn is
    hyst = decide_sequence(frames, 0.2, margin=0.05)
    assert hyst[60:66] == ["b"] * 6                      # frame by frame, the flip gets through


def test_viterbi_pauses_and_off_screen_voices():
    quiet = {"a": 0.0, "b": 0.0}
    frames = turns((40, {"a": 0.5, "b": 0.1}), (4, quiet), (40, {"a": 0.5, "b": 0.1}), (25, quiet),
                   (40, {"a": 0.5, "b": 0.1}), (40, {"a": 0.05, "b": 0.1}))
    silent = [False] * 40 + [True] * 4 + [False] * 40 + [True] * 25 + [False] * 80
    labels = decide_sequence(frames, 0.2, method="viterbi", silent=silent)
    # a short pause stays within the turn, a long one is nobody's; speech that no face
    # matches (the last 40 frames) is nobody's too
    assert labels == ["a"] * 84 + [None] * 25 + ["a"] * 40 + [None] * 40
    # a track without a score cannot speak
    frames[10] = {"a": None, "b": 0.1}
    assert decide_sequence(frames, 0.2, method="viterbi", silent=silent)[10] is None


def test_viterbi_streams_with_a_fixed_lag():
    seg: ViterbiSegmenter[int] = ViterbiSegmenter(0.2, 0.08, 0.04, delay=10)
    frames = turns((30, {"a": 0.6, "b": 0.1}), (30, {"a": 0.1, "b": 0.6}))
    released = []
    for i, sc in enumerate(frames):
        out = seg.push(i, sc, False, 0.04)
        assert [j for j, _ in out] == ([i - 10] if i >= 10 else [])   # frame t leaves with frame t + 10
        assert len(seg._frames) <= 11
        released += out
    released += seg.flush()
    assert [j for j, _ in released] == list(range(60))
    assert [lab for _, lab in released] == ["a"] * 30 + ["b"] * 30


def test_viterbi_forgets_tracks_that_left():
    seg: ViterbiSegmenter[int] = ViterbiSegmenter(0.2, 0.08, 0.04, delay=2, keep=20)
    for i in range(100):
        seg.push(i, {f"t{i // 10}": 0.5}, False, 0.04)     # a new track every 10 frames
    assert len(seg._score) <= 2 * 3 + 1


def test_speaker_node_matches_decide_sequence():
    values = [0.6] * 40 + [0.3] * 5 + [0.6] * 20 + [0.1] * 40
    other = [0.1] * 40 + [0.5] * 5 + [0.1] * 20 + [0.5] * 40
    scores = [s for f in range(len(values)) for s in (score("a", f, values[f]), score("b", f, other[f]))]
    tracks = [tracked(f, ["a", "b"]) for f in range(len(values))]
    out = NodeRunner(SpeakerDecision, min_turn=3, threshold=0.2, method="viterbi").run(
        {"tracks": tracks, "scores": scores})["active"]
    ref = decide_sequence([{"a": values[f], "b": other[f]} for f in range(len(values))], 0.2, min_turn=3,
                          method="viterbi", delay=25, frame_s=0.04)
    assert active(out) == ref
    assert ref == ["a"] * 65 + ["b"] * 40
