"""Audio-visual windows: mel start columns from timestamps, gaps, audio edges, offsets, buffering."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from avflow.errors import InputError
from avflow.payloads import Box, FaceCrop, Payload, Tensor
from avflow.testing import NodeRunner
from avflow_sync.mel import MEL_TIME_BASE
from avflow_sync.nodes.windows import SyncWindows
from avflow_sync.windows import WindowAssembler, mel_start_column, offset_starts, prepare_crop


# -- helpers --------------------------------------------------------------------------------------
def crop(track, index, pts, time_base, h=48, seed=None):
    rng = np.random.default_rng(seed if seed is not None else hash((track, index)) % 2**32)
    img = rng.integers(0, 256, (h, 96, 3), dtype=np.uint8)
    return FaceCrop(pts=pts, time_base=Fraction(time_base), track_id=track, frame_index=index, image=img,
                    box=Box(0, 0, 96, 96))


def mel_tensor(n_cols, first=0, start_sample=0):
    # Column c holds the value c everywhere: a window's content names its columns.
    data = np.tile(np.arange(first, first + n_cols, dtype=np.float32), (80, 1))
    return Tensor(pts=first, time_base=MEL_TIME_BASE, name="mel", data=data,
                  meta={"audio_start_sample": start_sample})


def run(crops, mel, **params):
    return NodeRunner(SyncWindows, connected_inputs=("crops", "mel"), **params).run({"crops": crops, "mel": mel})["windows"]


def cols(w, k=0):
    return [int(c) for c in w.mel[k, 0]]


# -- start columns ------------------------------------------------------------------------------
def test_start_columns_25_fps():
    # int(80 * i / 25) = int(3.2 i)
    assert [mel_start_column(Fraction(i, 25)) for i in range(8)] == [0, 3, 6, 9, 12, 16, 19, 22]


def test_start_columns_30_fps():
    # int(80 * i / 30) = int(8 i / 3)
    assert [mel_start_column(Fraction(i, 30)) for i in range(8)] == [0, 2, 5, 8, 10, 13, 16, 18]


def test_start_columns_22_08_fps():
    # 22.08 fps = 2208/100: int(80 * 100 i / 2208) = int(3.6232 i)
    assert [mel_start_column(Fraction(100 * i, 2208)) for i in range(8)] == [0, 3, 7, 10, 14, 18, 21, 25]


def test_start_column_is_relative_to_the_audio_start():
    assert mel_start_column(Fraction(12, 100), Fraction(1, 10)) == 1    # 80 * 0.02 = 1.6
    assert mel_start_column(Fraction(8, 100), Fraction(1, 10)) == -2    # before the audio: negative


def test_offsets_shift_by_whole_frames():
    times = [Fraction(i, 25) for i in range(10, 15)]
    # 3.2 columns per frame: frames 9, 10, 11 start at 28.8, 32, 35.2
    assert offset_starts(times, Fraction(0), 1) == [28, 32, 35]


# -- the node --------------------------------------------------------------------------------------
def test_windows_at_30_fps_pair_consecutive_frames_with_their_columns():
    crops = [crop("a", i, i, Fraction(1, 30)) for i in range(8)]
    out = run(crops, [mel_tensor(100)])
    assert [w.frame_index for w in out] == [0, 1, 2, 3]
    assert [w.mel_start for w in out] == [0, 2, 5, 8]
    assert cols(out[2]) == list(range(5, 21))
    # seconds per frame travel with each window (SyncNet's evidence gives its offsets in seconds)
    assert all(abs(w.meta["frame_s"] - 1 / 30) < 1e-9 for w in out)
    w = out[1]
    assert w.track_id == "a" and w.centre_index == 3 and w.pts == 3 and w.time_base == Fraction(1, 30)
    assert w.video.shape == (15, 48, 96) and w.video.dtype == np.uint8
    assert w.mel.shape == (1, 80, 16) and w.mel.dtype == np.float32 and w.mel_valid.tolist() == [True]
    # frames 1..5, each in BGR, frame-major
    for j in range(5):
        np.testing.assert_array_equal(w.video[3 * j:3 * j + 3], crops[1 + j].image[:, :, ::-1].transpose(2, 0, 1))


def test_windows_at_22_08_fps_with_a_millisecond_time_base():
    # VFR-style timestamps: pts in ms, rounded, of a 22.08 fps stream
    pts = [round(1000 * i / 22.08) for i in range(9)]   # 0, 45, 91, 136, 181, 226, 272, 317, 362
    out = run([crop("a", i, p, Fraction(1, 1000)) for i, p in enumerate(pts)], [mel_tensor(200)])
    # int(80 * pts / 1000): 0, 3.6, 7.28, 10.88, 14.48
    assert [w.mel_start for w in out] == [0, 3, 7, 10, 14]


def test_variable_frame_rate_uses_each_frames_time():
    times_ms = [0, 40, 100, 120, 200, 260, 300]
    out = run([crop("a", i, t, Fraction(1, 1000)) for i, t in enumerate(times_ms)], [mel_tensor(200)])
    assert [w.mel_start for w in out] == [0, 3, 8]


def test_a_gap_breaks_the_windows():
    idx = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    out = run([crop("a", i, i, Fraction(1, 25)) for i in idx], [mel_tensor(200)])
    assert [w.frame_index for w in out] == [0, 1, 7, 8]


def test_windows_past_the_end_of_the_audio_are_dropped():
    # 40 columns = 0.5 s of audio, 15 frames at 25 fps: a window needs int(3.2 i) + 16 <= 40
    out = run([crop("a", i, i, Fraction(1, 25)) for i in range(15)], [mel_tensor(40)])
    assert [w.frame_index for w in out] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert cols(out[-1]) == list(range(22, 38))


def test_frames_before_the_audio_starts_are_dropped():
    # audio starts at 0.1 s (sample 1600): frames 0..2 (0, 0.04, 0.08 s) have no audio
    out = run([crop("a", i, i, Fraction(1, 25)) for i in range(10)], [mel_tensor(100, start_sample=1600)])
    assert [(w.frame_index, w.mel_start) for w in out] == [(3, 1), (4, 4), (5, 8)]


def test_tracks_interleave_and_keep_their_own_runs():
    crops = []
    for i in range(7):
        crops.append(crop("a", i, i, Fraction(1, 25)))
        if i != 3:
            crops.append(crop("b", i, i, Fraction(1, 25)))
    out = run(crops, [mel_tensor(100)])
    assert [(w.track_id, w.frame_index) for w in out] == [("a", 0), ("a", 1), ("a", 2)]
    crops = [crop(t, i, i, Fraction(1, 25)) for i in range(6) for t in ("a", "b")]
    out = run(crops, [mel_tensor(100)])
    assert [(w.track_id, w.frame_index) for w in out] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_full_crops_are_halved_and_rgb_is_kept_when_asked():
    c = crop("a", 0, 0, Fraction(1, 25), h=96)
    np.testing.assert_array_equal(prepare_crop(c.image, "rgb"), c.image[48:].transpose(2, 0, 1))
    out = run([crop("a", i, i, Fraction(1, 25), h=96) for i in range(5)], [mel_tensor(50)], channel_order="rgb")
    assert len(out) == 1 and out[0].video.shape == (15, 48, 96)


def test_wrong_crop_size_is_an_input_error():
    bad = FaceCrop(pts=0, time_base=Fraction(1, 25), track_id="a", frame_index=0,
                   image=np.zeros((64, 64, 3), np.uint8), box=Box(0, 0, 1, 1))
    with pytest.raises(InputError, match="region=lower_half"):
        run([bad], [mel_tensor(50)])


def test_offset_search_cuts_shifted_windows_and_marks_missing_audio():
    out = run([crop("a", i, i, Fraction(1, 25)) for i in range(8)], [mel_tensor(27)], offset_search=1)
    # mel_start of frames 0..4: 0, 3, 6, 9, 12; offsets shift by 3.2 columns per frame; 27 columns of
    # audio: frame 4 (12..27) runs past the end, frame 3 at offset +1 (12..27) is marked invalid
    assert [w.frame_index for w in out] == [0, 1, 2, 3]
    assert [w.meta["mel_starts"] for w in out] == [[-4, 0, 3], [0, 3, 6], [3, 6, 9], [6, 9, 12]]
    assert [w.mel_valid.tolist() for w in out] == [[False, True, True], [True, True, True],
                                                   [True, True, True], [True, True, False]]
    assert out[0].mel.shape == (3, 80, 16)
    assert not out[0].mel[0].any() and cols(out[1], 0) == list(range(0, 16)) and cols(out[1], 2) == list(range(6, 22))


def test_crops_before_their_audio_wait_for_it():
    runner = NodeRunner(SyncWindows, connected_inputs=("crops", "mel"))
    for i in range(8):
        runner.feed("crops", crop("a", i, i, Fraction(1, 25)))
    assert runner.outputs["windows"] == []
    runner.feed("mel", mel_tensor(20))                  # columns 0..19: windows 0 (0..15) and 1 (3..18)
    assert [w.frame_index for w in runner.outputs["windows"]] == [0, 1]
    m = mel_tensor(30, first=20)
    runner.feed("mel", m)                               # up to column 49
    assert [w.frame_index for w in runner.outputs["windows"]] == [0, 1, 2, 3]
    assert [w.frame_index for w in runner.finish()["windows"]] == [0, 1, 2, 3]


def test_buffering_is_bounded_on_a_long_stream():
    asm = WindowAssembler(history_s=2.0)
    n = 0
    for i in range(1500):                               # 60 s at 25 fps, mel ~0.2 s ahead of the crops
        if i % 5 == 0:
            first = asm.mel_end
            n += len(asm.add_mel(np.zeros((80, 16), np.float32), first, Fraction(0)))
        for t in ("a", "b"):
            n += len(asm.add_crop(t, i, i, Fraction(1, 25), np.zeros((48, 96, 3), np.uint8)))
        assert asm.buffered_columns <= 2 * 80 + 32 and asm.pending <= 8
    n += len(asm.finish())
    assert n == 2 * 1496


@dataclass
class _Speech(Payload):
    speech: np.ndarray = None
    hop: float = 0.04


def test_windows_at_every_nth_frame_and_only_near_speech():
    crops = [crop("a", i, i, Fraction(1, 25)) for i in range(40)]
    mel = [mel_tensor(400)]
    assert [w.frame_index for w in run(crops, mel, every_n=3)] == list(range(0, 36, 3))
    # speech from 0.8 s to 1.2 s: windows centred within 0.2 s of it (0.6 .. 1.4 s: centres 15 .. 35)
    runner = NodeRunner(SyncWindows, speech_margin=0.22)
    runner.feed("speech", _Speech(pts=0, time_base=Fraction(1, 1000), speech=np.arange(60) // 10 == 2))
    for c in crops:
        runner.feed("crops", c)
    runner.feed("mel", mel[0])
    out = runner.finish()["windows"]
    assert [w.frame_index + 2 for w in out] == list(range(15, 36))
