"""The fixture composer: what it writes is what its ground truth says (frames, turns, A/V)."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from avflow.testing.compose import ComposedVideo, Turn, _load_audio, compose_speakers, random_turns, speech_mask
from avflow_sync.scoring import change_errors, frame_accuracy

SR = 16000


@pytest.fixture(scope="module")
def composed(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compose") / "fx.mp4"
    sources = [media_dir / "talking1.mp4", media_dir / "talking2.mp4", media_dir / "monalisa.png"]
    # talking1 (22.08 fps, variable) loops: 7.5 s > its 6.1 s
    turns = [(0.0, 2.0, 0), (2.0, 2.5, None), (2.5, 5.0, 1), (5.0, 7.5, 0)]
    return compose_speakers(sources, turns, out=out, size=(480, 270), fps=25.0, sample_rate=SR)


def decode(path):
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio


def expected_audio(fx: ComposedVideo, tile: int, t0: float, t1: float) -> np.ndarray:
    src = fx.tiles[tile]
    a = _load_audio(src.source, SR)
    loop = int(round(src.duration * SR))
    a = np.pad(a, (0, max(0, loop - len(a))))[:loop]
    times = np.arange(int(t0 * SR), int(t1 * SR)) / SR
    return a[np.floor((src.offset + times) * SR).astype(int) % loop]


def test_frames_size_and_streams(composed):
    fx = composed
    assert (fx.width, fx.height, fx.n_frames, fx.duration) == (480, 270, 188, 7.5)
    frames, audio = decode(fx.path)
    assert len(frames) == fx.n_frames
    assert frames[0].shape == (270, 480, 3)
    assert abs(len(audio) / SR - fx.duration) < 0.1  # AAC pads its last 1024-sample frame
    with av.open(str(fx.path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].codec_context.sample_rate == SR


def test_ground_truth(composed):
    fx = composed
    assert [t.kind for t in fx.tiles] == ["talking", "talking", "still"]
    for t in fx.tiles:  # inside the frame, even-sized, centres map back
        x, y, w, h = t.box
        assert x >= 0 and y >= 0 and x + w <= fx.width and y + h <= fx.height and w % 2 == 0 == h % 2
        assert fx.tile_at(x + w / 2, y + h / 2) == t.index
    assert fx.heard[:50] == [0] * 50 and fx.heard[50:62] == [None] * 12
    assert fx.heard[63:125] == [1] * 62 and fx.heard[125:] == [0] * 63
    # whoever is active is the one heard; pauses inside a turn are nobody
    assert all(a is None or a == h for a, h in zip(fx.active, fx.heard))
    assert fx.active.count(None) > fx.heard.count(None)
    assert fx.segments()[0]["speaker"] == 0
    # ground truth survives a save/load, and scores itself perfectly
    path = fx.path.with_suffix(".json")
    fx.save(path)
    back = ComposedVideo.load(path)
    assert back == fx and json.loads(path.read_text())["schema"] == "avflow.composed/1"
    assert frame_accuracy(fx, fx.active) == 1.0
    assert frame_accuracy(fx, [None] * fx.n_frames) < 0.6


def test_frame_accuracy_of_a_diarization(composed):
    fx = composed
    tracks = [{"id": f"face_{t.index}",
               "boxes": [[i, t.box[0] + 10, t.box[1] + 10, 40, 40] for i in range(fx.n_frames)]}
              for t in fx.tiles]
    doc = {"tracks": tracks, "active": [None if a is None else f"face_{a}" for a in fx.active]}
    assert frame_accuracy(fx, doc) == 1.0
    doc["active"] = [None if a is None else f"face_{1 - a}" for a in fx.active]
    assert frame_accuracy(fx, doc) < 0.5


def test_change_errors_say_where_each_change_of_speaker_was_placed(composed):
    fx = composed  # 0, a pause, 1, a pause, 0: two changes of speaker (pauses of 0.72 and 1.0 s)
    assert change_errors(fx, fx.active) == [0.0, 0.0]
    late = [None] * 3 + list(fx.active[:-3])  # every change 3 frames (0.12 s) late
    assert change_errors(fx, late) == pytest.approx([3 / fx.fps] * 2)
    swapped = [None if a is None else 1 - a for a in fx.active]  # the faces' changes, not these
    assert change_errors(fx, swapped) == []


def test_audio_is_the_heard_clip_in_sync(composed):
    fx = composed
    _, audio = decode(fx.path)
    for t0, t1, tile in ((0.1, 1.9, 0), (2.6, 4.9, 1), (5.1, 7.4, 0)):
        want = expected_audio(fx, tile, t0, t1)
        got = audio[int(t0 * SR): int(t0 * SR) + len(want)]
        assert np.corrcoef(want, got)[0, 1] > 0.99  # same samples, same time: AAC only
    gap = audio[int(2.05 * SR): int(2.45 * SR)]
    assert np.sqrt(np.mean(gap ** 2)) < 1e-3


def test_video_tiles_show_the_scheduled_source_time(composed, media_dir):
    """The heard tile shows the frame of its source clip at its source clock (by timestamps)."""
    import cv2

    fx = composed
    frames, _ = decode(fx.path)
    tile = fx.tiles[1]
    x, y, w, h = tile.box
    with av.open(str(media_dir / "talking2.mp4")) as c:
        src = [(float(f.pts * f.time_base),
                cv2.resize(f.to_ndarray(format="rgb24"), (w, h), interpolation=cv2.INTER_AREA))
               for f in c.decode(video=0)]
    for i in (70, 90, 110):
        pos = (tile.offset + i / fx.fps) % tile.duration
        k = max(j for j, (t, _) in enumerate(src) if t <= pos + 1e-6)
        got = frames[i][y:y + h, x:x + w].astype(float)
        err = [np.abs(got - src[j][1]).mean() for j in range(len(src))]
        assert int(np.argmin(err)) == k


def test_still_tile_and_still_mode(media_dir, tmp_path):
    sources = [media_dir / "talking3.mp4", media_dir / "talking2.mp4", media_dir / "musk.png"]
    fx = compose_speakers(sources, [Turn(0, 1.5, 0), Turn(1.5, 3.0, 1)], out=tmp_path / "still.mp4",
                          size=(480, 270), others="still")
    frames, _ = decode(fx.path)
    x, y, w, h = fx.tiles[1].box
    tile1 = [f[y:y + h, x:x + w].astype(float) for f in frames]
    frozen = np.mean([np.abs(tile1[i + 1] - tile1[i]).mean() for i in range(5, 30)])
    moving = np.mean([np.abs(tile1[i + 1] - tile1[i]).mean() for i in range(40, 70)])
    assert frozen < moving / 4  # tile 1 is still until its turn, then talks
    x, y, w, h = fx.tiles[2].box
    assert np.abs(frames[10][y:y + h, x:x + w].astype(float) - frames[60][y:y + h, x:x + w]).mean() < 2.0


def test_schedules_and_errors(media_dir, tmp_path):
    turns = random_turns([0, 1, 2], 30.0, min_turn=2.0, max_turn=4.0, gap_prob=0.3, seed=3)
    assert turns[0].start == 0 and turns[-1].end == 30.0
    assert all(b.start == a.end for a, b in zip(turns, turns[1:]))
    spoken = [t for t in turns if t.tile is not None]
    assert all(a.tile != b.tile for a, b in zip(spoken, spoken[1:]) if a.end == b.start)
    assert all(2.0 - 1e-9 <= t.end - t.start <= 4.0 + 1e-9 for t in spoken[:-1])
    with pytest.raises(ValueError, match="still image"):
        compose_speakers([media_dir / "talking1.mp4", media_dir / "monalisa.png"], [(0, 1, 1)], out=tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="overlap"):
        compose_speakers([media_dir / "talking1.mp4"], [(0, 2, 0), (1, 3, 0)], out=tmp_path / "y.mp4")
    with pytest.raises(ValueError, match="no audio"):
        compose_speakers([media_dir / "sun.mp4"], [(0, 1, 0)], out=tmp_path / "z.mp4")
    assert not list(tmp_path.glob("*.mp4"))  # nothing half-written


def test_speech_mask_bridges_short_pauses():
    sr = 1000
    x = np.concatenate([np.ones(500), np.zeros(200), np.ones(500), np.zeros(500), np.ones(300)]) * 0.1
    m = speech_mask(x.astype(np.float32), sr, min_pause=0.3)
    assert m[:120].all()  # the 0.2 s pause is bridged
    assert not m[125:165].any()  # the 0.5 s pause is not
