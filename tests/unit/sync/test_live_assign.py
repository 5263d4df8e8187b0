"""sync.live_assign: each frame decided once, in order, within the latency, from the evidence so far."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from avflow import Box, FaceTrack, Score, TrackedFaces
from avflow.testing import NodeRunner
from avflow_sync.nodes.live_assign import LiveVoiceAssigner
from avflow_sync.payloads import SyncEvidence
from avflow_voice.payloads import SpeechActivity, VoiceLabel

FPS = 25
TB = Fraction(1, FPS)
OFFSETS = np.arange(-6, 7)


def _frame(i: int, voice: str = "voice_0", **label) -> list[tuple[str, object]]:
    """Frame i as it arrives: two faces' tracks, 0.04 s of speech, a window of ``voice`` centred
    on it (``label``: more VoiceLabel fields, its similarity)."""
    t = i / FPS
    faces = [FaceTrack(f"face_{k}", Box(100.0 * k, 0, 50, 50)) for k in range(2)]
    return [("tracks", TrackedFaces(pts=i, time_base=TB, frame_index=i, width=320, height=240, faces=faces)),
            ("speech", SpeechActivity(pts=i * 640, time_base=Fraction(1, 16000), probs=np.ones(1, np.float32),
                                      hop=0.04, speech=np.ones(1, bool))),
            ("labels", VoiceLabel(pts=i, time_base=TB, start=t - 0.5, end=t + 0.5, voice=voice, **label))]


def _stream(seconds: float = 6.0, peak: int = 0, curve: np.ndarray | None = None):
    """Items in arrival order: a frame's tracks, speech and a voice label at once, its evidence 0.5 s
    later; voice_0 speaks throughout and face_0's lips follow it (a clear peak at offset ``peak``,
    or face_0's evidence is ``curve`` over OFFSETS in every frame)."""
    n = int(seconds * FPS)
    items = []
    own = np.where(OFFSETS == peak, 1.0, 0.0) if curve is None else np.asarray(curve, np.float64)
    for i in range(n):
        items += _frame(i)
        j = i - int(0.5 * FPS)
        if j >= 0:
            for k in range(2):
                values = own if k == 0 else np.zeros(len(OFFSETS))
                items.append(("evidence", SyncEvidence(pts=j, time_base=TB, track_id=f"face_{k}", frame_index=j,
                                                       offsets=OFFSETS, values=values.astype(np.float32))))
    return n, items


def test_every_frame_is_decided_once_in_order_within_the_latency():
    n, items = _stream()
    runner = NodeRunner(LiveVoiceAssigner, latency=1.0, wall_clock=False)
    runner.open()
    clock = -1.0
    decided = []
    for port, item in items:
        if port == "tracks":
            clock = item.time
        before = len(runner.outputs.get("active", []))
        runner.feed(port, item)
        for rec in runner.outputs.get("active", [])[before:]:
            assert clock - rec.data["time"] <= 1.0 + 1e-6  # decided when due, not later
            decided.append(rec.data)
    decided += [r.data for r in runner.finish().get("active", [])[len(decided):]]
    assert [d["frame_index"] for d in decided] == list(range(n))
    assert [d["frame_index"] for d in decided if d["voice"] != "voice_0"] == []
    speakers = [d["active"] for d in decided]
    first = speakers.index("face_0")
    assert first <= 12 and all(s == "face_0" for s in speakers[first:])  # once known, kept
    voices = runner.outputs["voices"][-1].data["voices"]
    assert voices[0]["id"] == "voice_0" and voices[0]["speaker"] == "face_0"


def test_a_face_late_by_an_offset_of_its_own_is_found_once_the_evidence_suffices():
    # face_0's sound comes 0.2 s late (5 frames), past `near` (0.12 s) of the stream's offset: the
    # peak there counts once the pairing has search_after (3 s) of evidence, as sync.assign finds it
    _, items = _stream(seconds=8.0, peak=5)
    decided = _decide(items)
    first = decided.index("face_0")  # decided 1 s after it was heard, with 3 s of evidence in by then
    assert 2 * FPS <= first <= 3 * FPS and set(decided[first:]) == {"face_0"}
    assert set(_decide(items, search_after=None)) == {None}  # near the stream's offset only: never


def test_the_reported_offset_is_the_one_the_confidence_was_read_at():
    # face_0's curve peaks at the stream's offset (0) and higher 5 frames out: with under
    # search_after (3 s) of evidence the confidence is read near the stream's offset, and the
    # voice's summary says so (it said 0.2 s, the curve's highest point, before); past it the
    # penalised peak is read (1.2 - 5 frames x 0.006 > 1.0), and the summary says 0.2 s
    curve = np.where(OFFSETS == 0, 1.0, 0.0) + np.where(OFFSETS == 5, 1.2, 0.0)
    for seconds, offset in ((2.5, 0.0), (6.0, 0.2)):
        _, items = _stream(seconds=seconds, curve=curve)
        voice = _run(items).outputs["voices"][-1].data["voices"][0]
        assert voice["speaker"] == "face_0" and voice["offset"] == offset, (seconds, voice)


def _early_stream(scores_of, seconds: float = 2.5):
    """voice_0 speaks throughout, no evidence yet (a voice's first seconds); ``scores_of(i)`` gives
    each face's sync.motion score at frame i, sent 0.4 s after the frame (as the scorer looks ahead)."""
    n = int(seconds * FPS)
    items = []
    for i in range(n):
        items += _frame(i)
        j = i - int(0.4 * FPS)
        if j >= 0:
            for k, value in enumerate(scores_of(j)):
                items.append(("scores", Score(pts=j, time_base=TB, track_id=f"face_{k}", frame_index=j, value=value,
                                              extra={"threshold": 0.2})))
    return items


def _run(items, **params) -> NodeRunner:
    """The node fed ``items`` in order and finished, with a 1 s latency by media time."""
    runner = NodeRunner(LiveVoiceAssigner, latency=1.0, wall_clock=False, **params)
    runner.open()
    for port, item in items:
        runner.feed(port, item)
    runner.finish()
    return runner


def _decide(items, **params):
    return [r.data["active"] for r in _run(items, **params).outputs["active"]]


def test_a_new_voice_goes_to_the_face_whose_scores_over_its_frames_are_highest():
    # face_1 follows the voice (0.35 throughout); face_0 has a burst of chance agreement in the
    # middle (0.6 on frames 25-34, 0 elsewhere): frame by frame it leads there, over the voice's
    # frames so far it does not, and no frame flickers to it
    items = _early_stream(lambda j: (0.6 if 25 <= j < 35 else 0.0, 0.35))
    assert set(_decide(items)) == {"face_1"}


def test_early_frames_go_to_nobody_when_no_face_follows_the_voice():
    # both faces below half the scorer's threshold (0.1) on average: an off-screen voice, as far as
    # the early evidence says; with a lower early_threshold the better face takes it
    items = _early_stream(lambda j: (0.05, 0.08))
    assert set(_decide(items)) == {None}
    assert set(_decide(items, early_threshold=0.06)) == {"face_1"}


def test_a_change_of_voice_lands_where_the_windows_holding_one_voice_meet():
    """voice_0 speaks until 2.0 s, voice_1 after; the 1 s windows across the change hold both
    (similarity 0.5, against 0.9 for a window of one voice) and the encoder calls them voice_0
    until they are centred 0.4 s past it. A frame takes the voice of its most similar window:
    the change lands at 2.0 s; by the window centred nearest, 0.4 s late."""
    n, change = 4 * FPS, 2 * FPS
    items = []
    for i in range(n):
        t = i / FPS
        for port, item in _frame(i):
            if port == "labels":
                mixed = abs(t - change / FPS) < 0.5
                voice = "voice_0" if t < change / FPS + 0.4 else "voice_1"
                item = VoiceLabel(pts=i, time_base=TB, start=t - 0.5, end=t + 0.5, voice=voice,
                                  similarity=0.5 if mixed else 0.9)
            items.append((port, item))

    def voices(**params):
        runner = NodeRunner(LiveVoiceAssigner, latency=1.0, wall_clock=False, **params)
        runner.open()
        for port, item in items:
            runner.feed(port, item)
        runner.finish()
        heard = [r.data["voice"] for r in runner.outputs["active"]]
        return heard.index("voice_1")

    assert abs(voices() - change) <= 1  # frames 0.04 s apart: no window of one voice at 2.0 s itself
    assert abs(voices(label_by="centre") - (change + int(0.4 * FPS))) <= 1


def test_past_its_first_second_an_early_voice_does_not_take_a_face_another_voice_holds():
    """voice_0 speaks 0-4 s and face_0's lips follow it; then voice_1, heard off screen, while
    face_0's lips go on moving (its scores 0.35, chance agreement; no peak in its evidence). While
    voice_1 is early (under 3 s of evidence) its first second goes by the scores, to face_0; past
    ``early_span`` only a face the pairing gives to no other voice may take it: none here."""
    n, change = int(6.5 * FPS), 4 * FPS
    peak = np.where(OFFSETS == 0, 1.0, 0.0).astype(np.float32)
    flat = np.zeros(len(OFFSETS), np.float32)
    items = []
    for i in range(n):
        items += _frame(i, "voice_0" if i < change else "voice_1",
                        similarity=0.9 if abs(i - change) > FPS // 2 else 0.5)
        j = i - int(0.4 * FPS)
        if j >= 0:
            for k, value in enumerate((0.35, 0.0)):
                items.append(("scores", Score(pts=j, time_base=TB, track_id=f"face_{k}", frame_index=j,
                                              value=value, extra={"threshold": 0.2})))
        j = i - int(0.5 * FPS)
        if j >= 0:
            for k in range(2):
                values = peak if k == 0 and j < change else flat
                items.append(("evidence", SyncEvidence(pts=j, time_base=TB, track_id=f"face_{k}", frame_index=j,
                                                       offsets=OFFSETS, values=values)))
    decided = _decide(items)
    first = change + FPS // 2 + 2  # past the windows that hold both voices
    assert set(decided[FPS: change - 2]) == {"face_0"}
    assert set(decided[first: change + FPS]) == {"face_0"}  # the voice's first second, by the scores
    assert set(decided[change + FPS + 2:]) == {None}
    assert set(_decide(items, early_span=10.0)[first:]) == {"face_0"}  # the scores alone: face_0 throughout


def test_a_voice_heard_longer_does_not_keep_a_face_whose_lips_follow_another_voice_better():
    """voice_0 speaks 0-6 s, face_0's evidence with it a chance peak of 0.4; then voice_1 2 s,
    face_0's lips following it (a peak of 1.0). Weighed by all of its evidence (150 frames
    against 50) voice_0 would keep the face; counted up to ``weigh_until`` (1 s) each, the face
    goes to the voice its lips follow, and voice_0 is off screen."""
    n, change = 8 * FPS, 6 * FPS
    items = []
    for i in range(n):
        items += _frame(i, "voice_0" if i < change else "voice_1")
        j = i - int(0.5 * FPS)
        if j >= 0:
            height = 0.4 if j < change else 1.0
            for k in range(2):
                values = np.where(OFFSETS == 0, height if k == 0 else 0.0, 0.0).astype(np.float32)
                items.append(("evidence", SyncEvidence(pts=j, time_base=TB, track_id=f"face_{k}", frame_index=j,
                                                       offsets=OFFSETS, values=values)))

    def speakers(**params):
        return {v["id"]: v["speaker"] for v in _run(items, **params).outputs["voices"][-1].data["voices"]}

    assert speakers() == {"voice_0": None, "voice_1": "face_0"}
    assert speakers(weigh_until=None) == {"voice_0": "face_0", "voice_1": None}  # all frames weighed
