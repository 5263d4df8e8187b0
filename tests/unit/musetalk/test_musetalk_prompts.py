"""``musetalk.audio_prompts``: the output timeline, the backward/forward cycle, streaming."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow import InputError, MediaInfo, Tensor
from avflow.testing import NodeRunner
from avflow_musetalk.nodes.prompts import AudioPrompts, pingpong
from avflow_musetalk.slicer import audio_prompt

L, D = 5, 4


def features(seconds: float) -> np.ndarray:
    n = int(round(seconds * 50))
    return (np.arange(n)[:, None, None] + 1 + np.zeros((1, L, D))).astype(np.float32)


def segments(feats: np.ndarray, sizes: list[int] | None = None, tail: int = 0) -> list[Tensor]:
    """Features as the Whisper node emits them: in pieces, with the audio length so far
    (``tail``: samples past the last whole feature frame, which the Whisper node drops)."""
    sizes = sizes or [len(feats)]
    out, start = [], 0
    for i, n in enumerate(sizes):
        extra = tail if i == len(sizes) - 1 else 0
        out.append(Tensor(pts=start, time_base=Fraction(1, 50), name="whisper", data=feats[start:start + n],
                          meta={"n_samples": (start + n) * 320 + extra}))
        start += n
    return out


def run(frames, feats, sizes=None, info=None, frames_first=True, tail=0, **params):
    runner = NodeRunner(AudioPrompts, **params)
    inputs = {"frames": frames, "features": segments(feats, sizes, tail)}
    if not frames_first:
        inputs = {"features": inputs["features"], "frames": frames}
    if info is not None:
        inputs = {"video_info": [info], **inputs}
    return runner, runner.run(inputs)["frames"]


def test_pingpong_order():
    assert [pingpong(k, 3) for k in range(10)] == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2]
    assert [pingpong(k, 1) for k in range(4)] == [0, 0, 0, 0]


@pytest.mark.parametrize("frames_first", [True, False])
def test_video_longer_than_audio_is_cut_at_the_audio_end(frames_first, encoded_frames):
    feats = features(2.0)
    _, out = run(encoded_frames(60), feats, frames_first=frames_first)
    assert len(out) == 50  # 2 s at 25 fps
    for k, f in enumerate(out):
        assert (f.out_index, f.index, f.pts, f.time_base) == (k, k, k, Fraction(1, 25))
        np.testing.assert_array_equal(f.prompt, audio_prompt(feats, Fraction(k, 25)))
        assert f.latents[0, 0, 0] == k and f.image[0, 0, 0] == k
    assert out[0].prompt.shape == (10 * L, D)


def test_audio_longer_than_video_plays_backward_then_forward(encoded_frames):
    feats = features(1.2)
    runner, out = run(encoded_frames(10), feats, sizes=[13, 40, 7])
    assert len(out) == 30
    assert [f.index for f in out] == [*range(10), *range(9, -1, -1), *range(10)]
    assert [f.pts for f in out] == list(range(30))  # time goes on at the video's frame interval
    for k, f in enumerate(out):
        assert f.image[0, 0, 0] == f.index and f.latents[0, 0, 0] == f.index and f.box == (2, 2, 18, 14)
        np.testing.assert_array_equal(f.prompt, audio_prompt(feats, Fraction(k, 25)))
    assert runner.node._store is None  # the frame file is gone once the output is complete


def test_timeline_starts_at_zero_whatever_the_first_pts(encoded_frames):
    _, out = run(encoded_frames(30, start_pts=7), features(1.0), tail=200)
    assert len(out) == 25 and out[0].pts == 0 and out[-1].pts == 24


def steps(prompt: np.ndarray) -> list[int]:
    """Feature frame (1-based, as features() numbers them) of each of a prompt's 10 steps; 0: zeros."""
    return [int(v) for v in prompt.reshape(10, L, D)[:, 0, 0]]


@pytest.mark.parametrize("frames_first", [True, False])
def test_edges_of_the_audio_and_the_frame_count(frames_first, encoded_frames):
    """2.00625 s of audio (32100 samples): 100 whole feature frames (the partial 101st is zeros),
    50 frames at 25 fps (a 51st, shown from 2.00 to 2.04 s, would outlast the audio); v1 and
    v1.5 alike, zeros outside the audio (hand-computed, as MuseTalk's get_whisper_chunk)."""
    runner, out = run(encoded_frames(60), features(2.0), tail=100, frames_first=frames_first)
    assert len(out) == 50
    assert steps(out[0].prompt) == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert steps(out[1].prompt) == [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert steps(out[2].prompt) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert steps(out[48].prompt) == [93, 94, 95, 96, 97, 98, 99, 100, 0, 0]
    assert steps(out[49].prompt) == [95, 96, 97, 98, 99, 100, 0, 0, 0, 0]
    assert runner.progress_events[-1] == (50, 50)


def test_a_frame_ending_exactly_at_the_audio_end_is_kept(encoded_frames):
    _, out = run(encoded_frames(60), features(2.04))  # 32640 samples: 51 frames exactly
    assert len(out) == 51 and steps(out[50].prompt) == [97, 98, 99, 100, 101, 102, 0, 0, 0, 0]


def test_frame_count_at_30_fps_and_at_one_frame_a_second(encoded_frames):
    _, out = run(encoded_frames(40, fps=30), features(1.0), tail=100)  # 1.00625 s
    assert len(out) == 30  # floor(1.00625 x 30)
    _, out = run(encoded_frames(3, fps=1), features(2.5))  # a still at 1 fps: frame 2 would end at 3 s
    assert [f.pts for f in out] == [0, 1]


def test_frame_durations_decide_the_last_frame(encoded_frames):
    """Frames carrying their duration (as decoded ones do) are judged by it."""
    frames = [advance_duration(f, Fraction(1, 25)) for f in encoded_frames(60)]
    _, out = run(frames, features(2.0), tail=319)
    assert len(out) == 50


def advance_duration(frame, duration):
    frame.duration = duration
    return frame


def test_audio_shorter_than_a_frame_is_an_input_error(encoded_frames):
    with pytest.raises(InputError, match="shorter than one video frame"):
        run(encoded_frames(3), features(0.02))


def test_frames_do_not_wait_in_memory_for_late_audio(encoded_frames):
    runner = NodeRunner(AudioPrompts)
    for f in encoded_frames(100):
        runner.feed("frames", f)
    node = runner.node
    assert len(node._pending) == 100
    assert sum(p[3] is not None for p in node._pending) == 32  # the rest wait on disk
    for seg in segments(features(3.0), [70, 80]):
        runner.feed("features", seg)
    runner.end("features")
    runner.end("frames")
    out = runner.finish()["frames"]
    runner.close()
    assert [f.index for f in out] == list(range(75))
    assert all(f.image[0, 0, 0] == f.index for f in out)


def test_known_video_duration_skips_keeping_frames(encoded_frames):
    info = MediaInfo(pts=0, time_base=Fraction(1, 1000), path="v.mp4", duration=4.0, fps=25.0, n_frames=100)
    runner = NodeRunner(AudioPrompts)
    runner.feed("video_info", info)
    for seg in segments(features(2.0)):
        runner.feed("features", seg)
    runner.end("features")
    for f in encoded_frames(20):
        runner.feed("frames", f)
    assert runner.node._store is None


def test_frame_count_beats_container_duration(encoded_frames):
    """A decoder limited by max_duration reports the container's duration but fewer frames."""
    info = MediaInfo(pts=0, time_base=Fraction(1, 1000), path="v.mp4", duration=10.7, fps=25.0, n_frames=15)
    _, out = run(encoded_frames(15), features(2.0), info=info)
    assert [f.index for f in out] == [pingpong(k, 15) for k in range(50)]


def test_too_long_a_video_for_the_cycle_is_a_clear_error(encoded_frames):
    with pytest.raises(InputError, match="max_avatar_frames=5"):
        run(encoded_frames(10), features(1.0), max_avatar_frames=5)


def test_frames_without_face_keep_their_place(encoded_frames):
    frames = encoded_frames(10)
    frames[3] = encoded_frames(10, face=False)[3]
    _, out = run(frames, features(0.4))
    assert len(out) == 10 and out[3].box is None and out[4].box is not None


def test_no_audio_or_no_video_is_an_input_error(encoded_frames):
    with pytest.raises(InputError, match="no samples"):
        run(encoded_frames(3), np.zeros((0, L, D), np.float32))
    with pytest.raises(InputError, match="no frames"):
        run([], features(1.0))
