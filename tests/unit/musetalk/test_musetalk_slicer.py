"""The Whisper slicer against hand-written windows at the start, middle and end of an utterance."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow_musetalk.slicer import FeatureWindow, audio_prompt, feature_count, frame_count, prompt_window, take

N, L, D = 100, 2, 3  # 2 s of audio: 100 feature frames, 2 layers of 3 values


def features(n: int = N) -> np.ndarray:
    """Feature frame i holds (i + 1) * 100 + layer * 10 + d, so zeros mark padding."""
    i = np.arange(n)[:, None, None]
    return ((i + 1) * 100 + np.arange(L)[None, :, None] * 10 + np.arange(D)[None, None, :]).astype(np.float32)


def frames_of(prompt: np.ndarray) -> list[int]:
    """Which feature frame each of the prompt's 10 time steps came from (-1: zero padding)."""
    rows = prompt.reshape(-1, L, D)
    assert rows.shape[0] == 10
    # Rows are time-major: each time step holds layer 0 then layer 1, in order.
    for step in rows:
        assert step[1, 0] - step[0, 0] in (10, 0) and step[0, 2] - step[0, 0] in (2, 0)
    return [int(v) // 100 - 1 if v else -1 for v in rows[:, 0, 0]]


def t(i: int, fps: int = 25) -> Fraction:
    return Fraction(i, fps)


def test_prompt_shape_is_10_frames_times_layers_by_d_model():
    p = audio_prompt(features(), t(10))
    assert p.shape == (10 * L, D)
    # whisper-tiny: 5 hidden states of 384 -> 50 x 384
    assert audio_prompt(np.zeros((60, 5, 384), np.float32), t(3)).shape == (50, 384)


@pytest.mark.parametrize("i, expected", [
    # start of the utterance: 4 feature frames before the audio are zeros (v1.5)
    (0, [-1, -1, -1, -1, 0, 1, 2, 3, 4, 5]),
    (1, [-1, -1, 0, 1, 2, 3, 4, 5, 6, 7]),
    (2, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    # middle: frame 20 is at 0.8 s = feature 40; window 36..45
    (20, [36, 37, 38, 39, 40, 41, 42, 43, 44, 45]),
    # end: the last frame (1.96 s = feature 98) runs 4 frames past the 100 features
    (48, [92, 93, 94, 95, 96, 97, 98, 99, -1, -1]),
    (49, [94, 95, 96, 97, 98, 99, -1, -1, -1, -1]),
])
def test_windows_at_25fps(i, expected):
    """The same for v1 and v1.5: current MuseTalk slices both with zeros outside the audio."""
    assert frames_of(audio_prompt(features(), t(i))) == expected


@pytest.mark.parametrize("i, fps, expected", [
    # 30 fps: frame 7 at 7/30 s = feature 11.67 -> 11; window 7..16
    (7, 30, [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    # 30 fps, frame 1 at 1/30 s = feature 1.67 -> 1
    (1, 30, [-1, -1, -1, 0, 1, 2, 3, 4, 5, 6]),
    # 24 fps, last frame before 2 s: frame 47 at 1.958 s = feature 97.9 -> 97
    (47, 24, [93, 94, 95, 96, 97, 98, 99, -1, -1, -1]),
    # 50 fps: one feature frame per video frame
    (60, 50, [56, 57, 58, 59, 60, 61, 62, 63, 64, 65]),
])
def test_windows_follow_the_frame_time_at_any_fps(i, fps, expected):
    assert frames_of(audio_prompt(features(), t(i, fps))) == expected


def test_matches_musetalk_v15_indexing_at_25fps():
    """MuseTalk 1.5 pads 2 * floor(50 / fps) zeros on the left and cuts [2 i, 2 i + 10)."""
    feats = features()
    padded = np.concatenate([np.zeros((4, L, D), np.float32), feats, np.zeros((12, L, D), np.float32)])
    for i in range(50):
        musetalk = padded[2 * i: 2 * i + 10].reshape(-1, D)
        np.testing.assert_array_equal(audio_prompt(feats, t(i)), musetalk)


def test_float_times_snap_to_the_intended_frame():
    # 0.12 as a float is 0.11999...; it must still be feature 6, like Fraction(3, 25).
    assert prompt_window(0.12) == prompt_window(Fraction(3, 25)) == (2, 12)


def test_custom_context():
    assert prompt_window(Fraction(1), left=1, right=3) == (48, 58)
    p = take(features(), 48, 58)
    assert frames_of(p) == list(range(48, 58))


def test_feature_count_keeps_whole_frames_only():
    """MuseTalk keeps floor(n x 50 / 16000) feature frames: a partial last one is dropped."""
    assert feature_count(0) == 0
    assert feature_count(319) == 0
    assert feature_count(320) == 1
    assert feature_count(321) == 1
    assert feature_count(32100) == 100
    assert feature_count(16000 * 30) == 1500


@pytest.mark.parametrize("n_samples, fps, expected", [
    (32000, 25, 50),    # 2 s
    (32100, 25, 50),    # 2.00625 s: a 51st frame would end at 2.04 s, after the audio
    (32639, 25, 50),    # one sample short of 51 frames
    (32640, 25, 51),    # 2.04 s exactly
    (18560, 25, 29),    # 1.16 s: MuseTalk's float product gives 28.999... -> 28; exact here
    (16100, 30, 30),
    (16000, Fraction(30000, 1001), 29),  # 1 s at 29.97 fps
])
def test_frame_count_is_the_frames_shown_within_the_audio(n_samples, fps, expected):
    assert frame_count(n_samples, fps) == expected


def test_musetalk_float_frame_count_differs_for_a_few_exact_lengths():
    """Documented in the slicer: math.floor((n / 16000) * 25) loses a frame at 1.16 s."""
    import math

    assert math.floor((18560 / 16000) * 25) == 28 and frame_count(18560, 25) == 29


def test_streaming_window_equals_whole_array():
    """Features arriving in pieces, dropped as windows advance, give the same prompts."""
    feats = features(130)
    win = FeatureWindow()
    pieces = [(0, 37), (37, 90), (90, 130)]
    got = []
    frame = 0
    for a, b in pieces:
        win.append(a, feats[a:b])
        if b == 130:
            win.close()
        while True:
            start, stop = prompt_window(t(frame))
            if t(frame) * 50 >= 130 or not win.ready(stop):
                break
            got.append(win.cut(start, stop))
            win.drop_before(start)
            frame += 1
    assert frame == 65
    for i, p in enumerate(got):
        np.testing.assert_array_equal(p, audio_prompt(feats, t(i)))


def test_window_refuses_unknown_and_dropped_features():
    win = FeatureWindow()
    win.append(0, features(20))
    assert not win.ready(25)
    with pytest.raises(ValueError, match="not known yet"):
        win.cut(15, 25)
    win.drop_before(10)
    with pytest.raises(ValueError, match="already dropped"):
        win.cut(4, 14)
    with pytest.raises(ValueError, match="in order"):
        win.append(5, features(3))
