"""sync.assign: pooled confidence, fixed face offsets, the short-input decision."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow import Box, FaceTrack, Score, TrackedFaces
from avflow.testing import NodeRunner
from avflow_sync.assign import EvidencePool, Pooled, assign_faces
from avflow_sync.nodes.assign import VoiceAssigner
from avflow_sync.payloads import SyncEvidence
from avflow_voice.payloads import VoiceTurns

TB = Fraction(1, 25)
OFFSETS = np.arange(-15, 16)


def curve(peak_at: int, height: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(0.0, noise, len(OFFSETS)) if noise else np.zeros(len(OFFSETS))
    c[OFFSETS == peak_at] += height
    return c


def test_the_peak_is_sought_inside_the_search_not_at_its_ends():
    c = curve(0, 0.3)
    c[-1] = 0.9  # still rising at the end of the search: no located peak there
    p = Pooled(c, OFFSETS, frames=100)
    assert p.offset == 0
    assert p.confidence == pytest.approx(0.3)
    assert p.confidence_at(0) == pytest.approx(0.3)
    assert p.confidence_at(5) == pytest.approx(0.0)
    assert p.confidence_at(99) == 0.0  # an offset outside the search
    assert p.confidence_at(None) == p.confidence


def test_the_peak_near_an_offset_is_read_within_its_reach():
    c = curve(0, 0.2) + curve(6, 0.5)
    p = Pooled(c, OFFSETS, frames=100)
    assert p.peak_near(0.0, 3.0) == (pytest.approx(0.2), 0)  # the higher peak at 6 is out of reach
    assert p.peak_near(5.0, 3.0) == (pytest.approx(0.5), 6)
    assert p.peak_near(40.0, 3.0) == (0.0, None)  # no offset of the search there
    rising = curve(0, 0.1) + curve(3, 0.3) + curve(4, 0.6)  # its peak at 4, just out of reach of 0
    assert Pooled(rising, OFFSETS, frames=100).peak_near(0.0, 3.0) == (0.0, None)  # a slope, not a peak near 0
    assert Pooled(rising, OFFSETS, frames=100).peak_near(1.0, 3.0) == (pytest.approx(0.6), 4)


def test_pool_means_per_offset_and_weighted_assignment():
    pool = EvidencePool()
    for _ in range(4):
        pool.add("v", "face_0", OFFSETS, curve(2, 1.0))
    p = pool.pooled("v", "face_0")
    assert p.frames == 4 and p.offset == 2 and p.confidence == pytest.approx(1.0)
    assert pool.pooled("v", "face_9").frames == 0
    conf = np.array([[0.30, 0.10], [0.35, 0.05]])
    # the long voice (weight 10) keeps face 0; the short one, though more confident there, does not
    assert assign_faces(conf, 0.08, np.array([10.0, 1.0])) == [0, None]
    assert assign_faces(conf, 0.08, np.array([1.0, 10.0])) == [1, 0]


def _evidence(frame: int, track: str, values: np.ndarray) -> SyncEvidence:
    return SyncEvidence(pts=frame, time_base=TB, track_id=track, frame_index=frame, offsets=OFFSETS,
                        values=values.astype(np.float32), frame_s=0.04, scale="motion")


def _tracked(frame: int, tracks: list[str]) -> TrackedFaces:
    faces = [FaceTrack(t, Box(10.0 + 100 * k, 10.0, 40.0, 40.0)) for k, t in enumerate(tracks)]
    return TrackedFaces(pts=frame, time_base=TB, frame_index=frame, width=300, height=100, faces=faces)


def _feed_voices(runner, turns, voices, n):
    runner.feed("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=turns,
                                     voices=[{"id": v} for v in voices], speech=[[0.0, n * 0.04]]))


def _turn(voice: str, a: int, b: int) -> dict:
    return {"voice": voice, "part": f"{voice}.0", "start": a * 0.04, "end": b * 0.04, "speech": (b - a) * 0.04}


def test_a_fragment_of_a_voice_joins_it_at_its_face_offset_whatever_its_own_chance_peak():
    """voice_0 and voice_2 (4 s each) are face_0's and face_1's, in sync; voice_1 (1.2 s) is a
    piece of face_1's person the audio clustered apart (the start of a turn). Its lips evidence for
    face_1 is clear at face_1's offset (0) but, pooled over so few frames, peaks higher by chance
    at +8: searched per voice, the offsets disagree and the piece stays an off-screen voice; read
    at the face's offset, it joins voice_2."""
    n = 100
    spans = {"voice_0": (0, n), "voice_2": (n, 2 * n), "voice_1": (2 * n, 2 * n + 30)}
    items = []
    for f in range(2 * n + 30):
        items.append(("tracks", _tracked(f, ["face_0", "face_1"])))
        voice = next(v for v, (a, b) in spans.items() if a <= f < b)
        c0 = curve(0, 0.4 if voice == "voice_0" else 0.0, 0.05, f)
        c1 = curve(0, 0.4 if voice == "voice_2" else 0.0, 0.05, 1000 + f)
        if voice == "voice_1":
            c1 = curve(0, 0.3, 0.05, 1000 + f) + curve(8, 0.45)
        items.append(("evidence", _evidence(f, "face_0", c0)))
        items.append(("evidence", _evidence(f, "face_1", c1)))
    turns = [_turn(v, a, b) for v, (a, b) in spans.items()]
    items.append(("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=turns,
                                       voices=[{"id": v} for v in ("voice_0", "voice_1", "voice_2")],
                                       speech=[[0.0, (2 * n + 30) * 0.04]])))

    def run(**params):
        runner = NodeRunner(VoiceAssigner, **params)
        for port, item in items:
            runner.feed(port, item)
        out = runner.finish()
        return ({v["id"]: v for v in out["voices"][0].data["voices"]},
                [r.data["active"] for r in out["active"]][2 * n:])

    voices, tail = run()
    assert set(voices) == {"voice_0", "voice_2"}
    assert voices["voice_2"]["speaker"] == "face_1" and voices["voice_2"]["offset"] == 0.0
    assert tail == ["face_1"] * 30
    voices, tail = run(face_offset=False)
    assert voices["voice_1"]["speaker"] is None and tail == [None] * 30


def test_an_off_screen_voice_does_not_join_the_visible_voice_on_a_chance_agreement():
    """voice_0 is face_0's, in sync (0.4 at offset 0); voice_1 is heard off screen while face_0's
    lips go on moving, which agree with it by chance a little (0.12 at offset 0, above the 0.08
    threshold, at voice_0's offset). One person's two voices would follow the lips about equally;
    at under half of voice_0's confidence, voice_1 stays a voice of its own (merge_ratio)."""
    n = 150
    items = []
    for f in range(2 * n):
        items.append(("tracks", _tracked(f, ["face_0"])))
        height = 0.4 if f < n else 0.12
        items.append(("evidence", _evidence(f, "face_0", curve(0, height, 0.02, f))))
    items.append(("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=[_turn("voice_0", 0, n),
                                                                           _turn("voice_1", n, 2 * n)],
                                       voices=[{"id": "voice_0"}, {"id": "voice_1"}], speech=[[0.0, 2 * n * 0.04]])))

    def run(**params):
        runner = NodeRunner(VoiceAssigner, **params)
        for port, item in items:
            runner.feed(port, item)
        out = runner.finish()
        return {v["id"]: v["speaker"] for v in out["voices"][0].data["voices"]}, \
            [r.data["active"] for r in out["active"]][n:]

    voices, tail = run()
    assert voices == {"voice_0": "face_0", "voice_1": None} and set(tail) == {None}
    voices, tail = run(merge_ratio=0.0)  # any agreement above the threshold at the offset merges
    assert voices == {"voice_0": "face_0"} and set(tail) == {"face_0"}


def test_pauses_of_min_pause_or_longer_are_silence_inside_a_turn():
    """One turn of voice_0 (frames 0-149, face_0 in sync) whose speech activity pauses for 0.4 s
    (frames 50-59) and for 0.2 s (frames 100-104): with min_pause 0.3 the first pause is silence,
    the second stays in the turn; with 0.5, as the turn had it, both stay; a gap of 0.2 s
    between two turns of voice_0 is bridged at 0.3, not at 0.1."""
    n = 150
    items = []
    for f in range(n):
        items.append(("tracks", _tracked(f, ["face_0"])))
        items.append(("evidence", _evidence(f, "face_0", curve(0, 0.4, 0.02, f))))
    speech = [[0.0, 50 * 0.04], [60 * 0.04, 100 * 0.04], [105 * 0.04, n * 0.04]]

    def run(turns, **params):
        runner = NodeRunner(VoiceAssigner, **params)
        for port, item in items:
            runner.feed(port, item)
        runner.feed("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=turns, voices=[{"id": "voice_0"}],
                                         speech=speech))
        return [r.data["active"] for r in runner.finish()["active"]]

    one = [_turn("voice_0", 0, n)]
    active = run(one)
    assert set(active[:50]) == {"face_0"} and set(active[50:60]) == {None} and set(active[60:]) == {"face_0"}
    assert set(run(one, min_pause=0.5)) == {"face_0"}
    assert set(run(one, min_pause=None)) == {"face_0"}
    two = [_turn("voice_0", 0, 100), _turn("voice_0", 105, n)]  # voice.cluster left the 0.2 s gap
    assert set(run(two)[100:105]) == {"face_0"}
    assert set(run(two, min_pause=0.1)[100:105]) == {None}


def test_a_searched_offset_pays_for_its_distance_from_zero():
    c = curve(0, 0.30) + curve(11, 0.33)  # the face's real peak, and a higher chance one at 0.44 s
    p = Pooled(c, OFFSETS, frames=50)
    assert p.offset == 11 and p.confidence_at(None) == pytest.approx(0.33)
    per_frame = 0.15 * 0.04  # sync.assign's default offset_penalty, per frame at 25 fps
    assert p.offset_with(per_frame) == 0
    assert p.confidence_at(None, per_frame) == pytest.approx(0.30)
    assert p.confidence_at(11, per_frame) == pytest.approx(0.33)  # a known offset is read as it is


def test_two_short_voices_are_not_swapped_by_chance_peaks_far_from_zero():
    """Two voices of 2 s each (too short to fix their faces' offsets), each in sync with its own
    face (0.25 at offset 0) and each with a chance peak for the other face (0.30 at +-0.4 s):
    searched without a penalty, the swapped pairing sums higher; with offset_penalty it does not."""
    n = 50
    items = []
    for f in range(2 * n):
        items.append(("tracks", _tracked(f, ["face_0", "face_1"])))
        first = f < n
        own, other = ("face_0", "face_1") if first else ("face_1", "face_0")
        items.append(("evidence", _evidence(f, own, curve(0, 0.25, 0.02, f))))
        items.append(("evidence", _evidence(f, other, curve(10 if first else -10, 0.30, 0.02, 500 + f))))
    turns = [_turn("voice_0", 0, n), _turn("voice_1", n, 2 * n)]
    items.append(("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=turns,
                                       voices=[{"id": "voice_0"}, {"id": "voice_1"}],
                                       speech=[[0.0, 2 * n * 0.04]])))

    def run(**params):
        runner = NodeRunner(VoiceAssigner, **params)
        for port, item in items:
            runner.feed(port, item)
        return {v["id"]: (v["speaker"], v["offset"]) for v in runner.finish()["voices"][0].data["voices"]}

    assert run() == {"voice_0": ("face_0", 0.0), "voice_1": ("face_1", 0.0)}
    assert run(offset_penalty=0.0) == {"voice_0": ("face_1", 0.4), "voice_1": ("face_0", -0.4)}


def test_a_track_seen_for_a_few_frames_does_not_take_a_voice():
    """A voice of 3 s in sync with face_0 (0.3 at offset 0); face_1, a fragment of a track seen
    for 15 of its frames, peaks at 0.6 there by chance: below min_frames it is no candidate."""
    voice = _one_voice_and_a_fragment(75, (30, 45), 0.3, (3, 0.6))
    assert voice["speaker"] == "face_0" and voice["evidence"]["face_1"] == 0.0


def _one_voice_and_a_fragment(n: int, seen: tuple[int, int], height: float, chance: tuple[int, float],
                              **params) -> dict:
    """voice_0 heard for ``n`` frames, in sync with face_0 (``height`` at offset 0); face_1 a track
    fragment seen on frames ``seen``, peaking by chance at ``chance`` (offset, height). The voice."""
    runner = NodeRunner(VoiceAssigner, **params)
    for f in range(n):
        shown = ["face_0", "face_1"] if seen[0] <= f < seen[1] else ["face_0"]
        runner.feed("tracks", _tracked(f, shown))
        runner.feed("evidence", _evidence(f, "face_0", curve(0, height, 0.02, f)))
        if "face_1" in shown:
            runner.feed("evidence", _evidence(f, "face_1", curve(chance[0], chance[1], 0.02, 500 + f)))
    _feed_voices(runner, [_turn("voice_0", 0, n)], ["voice_0"], n)
    return runner.finish()["voices"][0].data["voices"][0]


def test_too_little_speech_for_voices_is_decided_per_frame_from_the_scores():
    """1.6 s of speech, one voice for two people (0.8 s each): the scores decide each frame."""
    runner = NodeRunner(VoiceAssigner)
    n = 40
    for f in range(n):
        runner.feed("tracks", _tracked(f, ["face_0", "face_1"]))
        for t in ("face_0", "face_1"):
            runner.feed("evidence", _evidence(f, t, curve(0, 0.1, 0.05, f)))
            first = f < n // 2
            speaking = first if t == "face_0" else not first
            runner.feed("scores", Score(pts=f, time_base=TB, track_id=t, frame_index=f,
                                        value=0.6 if speaking else 0.0, extra={"threshold": 0.2}))
    # the voice ends 5 frames before the clip: a pause shorter than the minimum turn
    runner.feed("voices", VoiceTurns(pts=0, time_base=Fraction(1), turns=[_turn("voice_0", 0, n - 5)],
                                     voices=[{"id": "voice_0"}], speech=[[0.0, (n - 5) * 0.04]]))
    out = runner.finish()
    active = [r.data["active"] for r in out["active"]]
    assert active[2:18] == ["face_0"] * 16 and active[23:35] == ["face_1"] * 12
    assert active[35:] == [None] * 5
    assert [r.data["voice"] for r in out["active"]] == ["voice_0"] * 35 + [None] * 5
    assert "too little to tell voices apart" in out["voices"][0].data["warnings"][0]


def test_a_face_seen_for_part_of_a_voice_counts_for_the_frames_it_was_seen():
    """A voice of 10 s in sync with face_0 throughout (0.22 at offset 0); face_1, a still portrait
    the detector found for 60 of its frames (a fragment, above min_frames), peaks at 0.25 there by
    chance. Weighed by the frames each pairing has, face_0 keeps the voice; weighed as equals
    (pair_weight false), the fragment's higher mean takes it."""
    def run(**params):
        return _one_voice_and_a_fragment(250, (100, 160), 0.22, (2, 0.25), **params)["speaker"]

    assert run() == "face_0"
    assert run(pair_weight=False) == "face_1"


def test_one_voice_for_two_people_is_cut_in_time_by_their_lips():
    """Two people with similar voices the audio merged into voice_0: face_0 speaks frames 0-149 in
    sync (offset 0), face_1 frames 150-299 with its sound 0.32 s late (offset +8); each one's lips
    move out of sync with the other's speech (noise). Pooled over the whole voice, both faces have
    a clear peak at their own offsets: the lips cut the voice where face_1 takes over."""
    n, half = 300, 150

    def run(**params):
        runner = NodeRunner(VoiceAssigner, **params)
        for f in range(n):
            runner.feed("tracks", _tracked(f, ["face_0", "face_1"]))
            first = f < half
            runner.feed("evidence", _evidence(f, "face_0", curve(0, 0.4 if first else 0.0, 0.3, f)))
            runner.feed("evidence", _evidence(f, "face_1", curve(8, 0.0 if first else 0.4, 0.3, 900 + f)))
        _feed_voices(runner, [_turn("voice_0", 0, n)], ["voice_0"], n)
        out = runner.finish()
        return [r.data["active"] for r in out["active"]], out["voices"][0].data["voices"]

    active, voices = run()
    assert active[:half - 10] == ["face_0"] * (half - 10) and active[half + 10:] == ["face_1"] * (half - 10)
    assert {v["speaker"]: v["offset"] for v in voices} == {"face_0": 0.0, "face_1": 0.32}
    active, voices = run(lip_split=None)
    assert len(voices) == 1 and len(set(active)) == 1
