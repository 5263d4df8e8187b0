"""sync.motion on synthetic faces and sounds: in sync scores high, out of sync and still score low."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow.payloads import AudioChunk, Box, FaceTrack, TrackedFaces
from avflow.testing import NodeRunner
from avflow_sync.nodes.motion import MotionScorer, _Signals
from avflow_faces.mesh import EYE_OUTER
from avflow_sync.motion_features import MOUTH_PAIRS, BandEnvelope, mouth_signals, window_sync

SR = 16000


def envelope(duration: float, seed: int, rate: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """A speech-like envelope in [0, 1]: low-passed noise (syllables, ~2-6 Hz), sampled at ``rate``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * rate)) / rate
    noise = rng.standard_normal(len(t) + rate)
    k = np.hanning(int(0.12 * rate))
    smooth = np.convolve(noise, k / k.sum(), mode="same")[rate // 2: rate // 2 + len(t)]
    env = np.clip(smooth / (3 * smooth.std()) + 0.4, 0.0, 1.0)
    return t, env


def env_at(t_env: np.ndarray, env: np.ndarray, times: np.ndarray) -> np.ndarray:
    return np.interp(times, t_env, env)


def face(opening: float, x0: float = 100.0, scale: float = 1.0) -> np.ndarray:
    """468 face-mesh points: eyes 60 px apart, the mouth opened by ``opening`` (eye units)."""
    lm = np.zeros((468, 3), np.float32)
    lm[:, 0], lm[:, 1] = x0 + 30, 100  # everything at the nose by default
    lm[EYE_OUTER[0], :2] = (x0, 80)
    lm[EYE_OUTER[1], :2] = (x0 + 60, 80)
    eye = 60.0
    lm[1, :2] = (x0 + 30, 110)                               # nose tip
    lm[168, :2] = (x0 + 30, 82)                              # nose bridge
    lm[13, :2] = (x0 + 30, 125)                              # upper inner lip
    lm[14, :2] = (x0 + 30, 125 + opening * eye)              # lower inner lip
    lm[152, :2] = (x0 + 30, 150 + 0.6 * opening * eye)       # chin
    lm[:, :2] = (lm[:, :2] - x0) * scale + x0
    return lm


def speech(times_env: np.ndarray, env: np.ndarray, duration: float, lag: float = 0.0) -> np.ndarray:
    """Tones in each scorer band, amplitude-modulated by the envelope (delayed by ``lag`` s)."""
    t = np.arange(int(duration * SR)) / SR
    amp = env_at(times_env, env, t - lag)
    carrier = sum(np.sin(2 * np.pi * f * t) for f in (1100.0, 2200.0, 4400.0)) / 3
    return (0.5 * amp * carrier).astype(np.float32)


def stream(n_frames: int, fps: float, faces_at, audio: np.ndarray, sr: int = SR, chunk: int = 1600,
           frame_times: np.ndarray | None = None):
    """(tracks, audio chunks) as a decoder and face pipeline would produce them."""
    times = frame_times if frame_times is not None else np.arange(n_frames) / fps
    tb = Fraction(1, 90000)
    tracks = []
    for i, t in enumerate(times):
        faces = [FaceTrack(tid, Box(0, 0, 10, 10), landmarks=lm) for tid, lm in faces_at(i, t)]
        tracks.append(TrackedFaces(pts=int(round(t * 90000)), time_base=tb, frame_index=i, width=640, height=360,
                                   faces=faces))
    audio = np.atleast_2d(audio)
    chunks = [AudioChunk(pts=s, time_base=Fraction(1, sr), samples=audio[:, s:s + chunk], sample_rate=sr)
              for s in range(0, audio.shape[1], chunk)]
    return tracks, chunks


def run(tracks, chunks, order: str = "interleaved", **params) -> dict[str, dict[int, float | None]]:
    runner = NodeRunner(MotionScorer, **params)
    if order == "audio_first":
        items = [("audio", c) for c in chunks] + [("tracks", t) for t in tracks]
    elif order == "tracks_first":
        items = [("tracks", t) for t in tracks] + [("audio", c) for c in chunks]
    else:
        items = sorted([("tracks", t) for t in tracks] + [("audio", c) for c in chunks], key=lambda pi: pi[1].time)
    try:
        for port, item in items:
            runner.feed(port, item)
        out = runner.finish()["scores"]
    finally:
        runner.close()
    result: dict[str, dict[int, float | None]] = {}
    for s in out:
        result.setdefault(s.track_id, {})[s.frame_index] = s.value
    return result


DUR = 8.0


@pytest.fixture(scope="module")
def scene():
    """Four faces and one voice: the speaker, a talker out of sync, a still face, a face without landmarks."""
    t_env, env = envelope(DUR + 3, seed=1)
    _, other = envelope(DUR + 3, seed=2)
    audio = speech(t_env, env, DUR)

    def faces_at(i, t):
        return [("speaker", face(0.25 * env_at(t_env, env, np.array([t]))[0])),
                ("other", face(0.25 * env_at(t_env, other, np.array([t]))[0], x0=300)),
                ("shifted", face(0.25 * env_at(t_env, env, np.array([t + 1.5]))[0], x0=500)),
                ("still", face(0.05, x0=700)),
                ("blind", None)]
    return stream(int(DUR * 25), 25.0, faces_at, audio)


def mid(values: dict[int, float | None], n: int) -> np.ndarray:
    """Values away from the ends (windows there are cut short)."""
    return np.array([values[i] for i in range(25, n - 25)], dtype=float)


def test_speaker_high_others_low(scene):
    tracks, chunks = scene
    out = run(tracks, chunks)
    n = len(tracks)
    assert set(out) == {"speaker", "other", "shifted", "still", "blind"}
    assert all(len(v) == n for v in out.values())  # one score per track per frame
    speaker, other, shifted = mid(out["speaker"], n), mid(out["other"], n), mid(out["shifted"], n)
    assert speaker.min() > 0.6 and speaker.mean() > 0.85
    assert abs(other.mean()) < 0.2 and abs(shifted.mean()) < 0.2
    assert np.mean(speaker > np.maximum(other, shifted) + 0.3) > 0.95
    # a face that does not move scores 0 (to rounding), one without landmarks has no score
    assert max(abs(v) for v in out["still"].values()) < 1e-9
    assert all(v is None for v in out["blind"].values())


def test_mouth_motion_alone_is_not_enough(scene):
    """The out-of-sync talkers move their lips exactly as much as the speaker does."""
    tracks, _ = scene
    opening = {tid: [] for tid in ("speaker", "shifted")}
    for tr in tracks:
        for f in tr.faces:
            if f.track_id in opening:
                opening[f.track_id].append(mouth_signals(f.landmarks)[2])
    assert np.std(opening["shifted"]) == pytest.approx(np.std(opening["speaker"]), rel=0.25)


def test_silence_scores_zero():
    t_env, env = envelope(6, seed=3)

    def faces_at(i, t):
        return [("a", face(0.25 * env_at(t_env, env, np.array([t]))[0]))]
    tracks, chunks = stream(100, 25.0, faces_at, np.zeros(int(4 * SR), np.float32))
    out = run(tracks, chunks)
    assert all(v == 0.0 for v in out["a"].values())


def test_order_of_arrival_does_not_matter(scene):
    tracks, chunks = scene
    ref = run(tracks, chunks, "interleaved")
    for order in ("audio_first", "tracks_first"):
        assert run(tracks, chunks, order) == ref


def test_any_fps_rate_and_layout():
    """30 fps with jittered timestamps, 44.1 kHz stereo: still in sync."""
    t_env, env = envelope(9, seed=4)
    _, other = envelope(9, seed=5)
    rng = np.random.default_rng(0)
    n = 180
    times = np.arange(n) / 30.0 + rng.uniform(-0.004, 0.004, n)
    times[0] = 0.0
    audio16 = speech(t_env, env, 6.0)
    t44 = np.arange(int(6.0 * 44100)) / 44100
    audio44 = np.interp(t44, np.arange(len(audio16)) / SR, audio16).astype(np.float32)
    carrier = sum(np.sin(2 * np.pi * f * t44) for f in (1100.0, 2200.0, 4400.0)) / 3
    audio44 = (0.5 * env_at(t_env, env, t44) * carrier).astype(np.float32)
    stereo = np.stack([audio44, audio44])

    def faces_at(i, t):
        return [("speaker", face(0.25 * env_at(t_env, env, np.array([t]))[0], scale=2.0)),
                ("other", face(0.25 * env_at(t_env, other, np.array([t]))[0], x0=400, scale=0.5))]
    tracks, chunks = stream(n, 30.0, faces_at, stereo, sr=44100, chunk=4410, frame_times=times)
    out = run(tracks, chunks)
    sp, ot = mid(out["speaker"], n), mid(out["other"], n)
    assert sp.mean() > 0.85 and abs(ot.mean()) < 0.25


def test_audio_offset_within_max_lag():
    """The sound 80 ms late (2 frames at 25 fps) is still found; extra['lag'] says so."""
    t_env, env = envelope(9, seed=6)
    audio = speech(t_env, env, 6.0, lag=0.08)

    def faces_at(i, t):
        return [("a", face(0.25 * env_at(t_env, env, np.array([t]))[0]))]
    tracks, chunks = stream(150, 25.0, faces_at, audio)
    runner = NodeRunner(MotionScorer)
    for port, item in sorted([("tracks", t) for t in tracks] + [("audio", c) for c in chunks],
                             key=lambda pi: pi[1].time):
        runner.feed(port, item)
    scores = runner.finish()["scores"]
    runner.close()
    assert all(s.extra["threshold"] == 0.2 for s in scores)  # sync.speaker's default for this scale
    inner = [s for s in scores if 25 <= s.frame_index < 125]
    assert np.mean([s.value for s in inner]) > 0.85
    assert np.median([s.extra["lag"] for s in inner]) == pytest.approx(0.08)


def test_streaming_memory_is_bounded(scene):
    tracks, chunks = scene
    runner = NodeRunner(MotionScorer)
    biggest = 0
    emitted_before_end = 0
    for port, item in sorted([("tracks", t) for t in tracks] + [("audio", c) for c in chunks],
                             key=lambda pi: pi[1].time):
        runner.feed(port, item)
        biggest = max(biggest, len(runner.node._frames))
        emitted_before_end = len(runner.outputs["scores"])
    runner.finish()
    runner.close()
    reach = runner.node._extents()["reach"]
    assert biggest <= 2 * reach + 4  # the frames of one window on each side, not the whole clip
    assert len(runner.node._signals._data) <= 2 * (2 * reach + 5)  # their mouth signals too
    assert emitted_before_end > 0.6 * len(tracks) * 5  # most scores leave before the input ends


def test_signal_rows_are_the_held_frames_and_tracks_that_left_are_dropped():
    # faces come and go for hours on live input: the array of mouth signals holds what the held
    # frames show, and a window of it is what a loop over those frames would build
    rng = np.random.default_rng(1)
    buf, frames = _Signals(), []
    for step in range(3000):
        ids = sorted(rng.choice(40 + step // 10, rng.integers(0, 5), replace=False))
        tracks = [(f"t{k}", rng.random(3) if rng.random() > 0.2 else None) for k in ids]
        frames.append(tracks)
        buf.append(tracks)
        if len(frames) > 100:
            n = int(rng.integers(1, 3))
            del frames[:n]
            buf.drop(n)
        if step % 7 == 0:
            want = [t for t, _ in frames[-1]] + ["never"]
            lo, hi = sorted(int(v) for v in rng.integers(0, len(frames) + 1, 2))
            ref = np.full((hi - lo, len(want), 3), np.nan)
            for j, fr in enumerate(frames[lo:hi]):
                for tid, sig in fr:
                    if tid in want and sig is not None:
                        ref[j, want.index(tid)] = sig
            np.testing.assert_array_equal(buf.window(want, lo, hi), ref)
    assert len(buf.cols) < 200 and len(buf._data) <= 256  # of 340 tracks seen, 100 frames held


def test_window_sync_exact():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 3))
    audio = x[:, 0, :] * 2.0 + 1.0
    visual = np.concatenate([x, -x, np.zeros_like(x), np.full_like(x, np.nan)], axis=1)
    r = window_sync(visual, audio, 0, 40, 0, 0.0)
    assert r.shape == (1, 4)
    assert r[0, 0] == pytest.approx(1.0)
    assert r[0, 1] == pytest.approx(-1.0)
    assert r[0, 2] == 0.0
    assert np.isnan(r[0, 3])
    # a shifted copy is found at its lag: visual[j] matches audio[j + 2]
    shifted = np.roll(audio, 2, axis=0)
    r = window_sync(x, shifted, 5, 35, 3, 0.0)
    assert int(np.argmax(r[:, 0])) - 3 == 2 and r[5, 0] == pytest.approx(1.0)
    # the motion floor shrinks the correlation of a face that hardly moves
    small = window_sync(x * 1e-4, audio, 0, 40, 0, 0.005)
    assert abs(small[0, 0]) < 0.05


def test_mouth_signals():
    assert mouth_signals(None) is None
    assert mouth_signals(np.zeros((10, 2))) is None
    a, b = mouth_signals(face(0.2)), mouth_signals(face(0.2, scale=3.0))
    np.testing.assert_allclose(a, b)  # independent of the face size
    assert a[2] == pytest.approx(0.2)  # inner-lip gap in eye-corner units
    assert len(a) == len(MOUTH_PAIRS)


def test_band_envelope():
    env = BandEnvelope(SR)
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 2000 * t)  # 1.5-3 kHz band
    env.push(tone[:5000], 0)
    env.push(tone[5000:], 5000)
    assert np.allclose(np.diff(env.times), 0.01)
    p = np.array(env.powers)
    assert (p[:, 0] > 100 * p[:, 1]).all() and (p[:, 0] > 100 * p[:, 2]).all()
    assert p[:, 3].mean() == pytest.approx(0.5, rel=0.1)  # level band: mean square of the tone
    n = len(env.times)
    env.push(np.zeros(100), SR + 1600)  # a 0.1 s gap is silence
    assert len(env.times) > n


def test_evidence_alone_is_the_evidence_computed_with_the_scores(scene):
    """Without ``scores`` connected the node takes a shorter path (only the evidence window, no
    frame without landmarks): the evidence is the same."""
    tracks, chunks = scene
    # gaps in the landmarks, as the face mesh leaves them far from speech
    tracks = [t if 60 <= t.frame_index < 140 else TrackedFaces(
        pts=t.pts, time_base=t.time_base, frame_index=t.frame_index, width=t.width, height=t.height,
        faces=[FaceTrack(f.track_id, f.box, landmarks=None) for f in t.faces]) for t in tracks]
    items = sorted([("tracks", t) for t in tracks] + [("audio", c) for c in chunks], key=lambda pi: pi[1].time)
    got = {}
    for wired in (("scores", "evidence"), ("evidence",)):
        runner = NodeRunner(MotionScorer, connected_outputs=wired)
        for port, item in items:
            runner.feed(port, item)
        runner.finish()
        runner.close()
        got[wired] = {(e.track_id, e.frame_index): (e.offsets, e.values) for e in runner.outputs["evidence"]}
    both, alone = got[("scores", "evidence")], got[("evidence",)]
    assert both.keys() == alone.keys() and len(both) > 200
    for key, (offsets, values) in both.items():
        np.testing.assert_array_equal(alone[key][0], offsets)
        np.testing.assert_allclose(alone[key][1], values, rtol=1e-6, atol=1e-7)
