"""Diarization formats: captions, label tracks, pyannote and lhotse objects, RTTM from other tools.

Every format is read back with a real parser (webvtt-py, PyAV, pyannote.core, lhotse, csv) and
must give the JSON's turns to the millisecond.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from fractions import Fraction
from types import SimpleNamespace

import av
import pytest
import webvtt

from avflow import MediaInfo, Record, TrackedFaces, read_rttm
from avflow.testing import NodeRunner
from avflow.testing.synth import synth_video, write_video
from avflow_sync import formats
from avflow_sync.nodes.diarization import DiarizationWriter
from avflow_sync.report import FrameResult, document

FPS = 25


def voices_doc(video="talk.v2.mp4"):
    """A schema /2 document: face_0 speaks as voice_0, an off-screen voice_1, then face_1 as voice_2."""
    plan = [(None, None)] * 3 + [("face_0", "voice_0")] * 30 + [(None, "voice_1")] * 22 + \
        [(None, None)] * 5 + [("face_1", "voice_2")] * 40
    frames = [FrameResult(index=i, time=i / FPS, active=a, voice=v) for i, (a, v) in enumerate(plan)]
    voices = {"voices": [{"id": "voice_0", "speaker": "face_0"}, {"id": "voice_1", "speaker": None},
                         {"id": "voice_2", "speaker": "face_1"}], "overlaps": []}
    return document(video, FPS, 320, 240, frames, len(frames) / FPS, voices=voices)


def expected(doc):
    """(label, start ms, end ms) of every turn, as the RTTM has them."""
    return [(s["speaker"] or s["voice"], round(s["start"] * 1000), round(s["end"] * 1000)) for s in doc["segments"]]


def ms(seconds):
    return round(float(seconds) * 1000)


def test_the_document_has_faces_and_an_offscreen_voice():
    assert expected(voices_doc()) == [("face_0", 120, 1320), ("voice_1", 1320, 2200), ("face_1", 2400, 4000)]


def test_webvtt_round_trip_with_voice_spans(tmp_path):
    doc = voices_doc()
    path = tmp_path / "d.vtt"
    path.write_text(formats.webvtt(doc), encoding="utf-8")
    cues = webvtt.read(str(path))
    assert [c.voice for c in cues] == ["face_0", "voice_1", "face_1"]
    assert [c.text for c in cues] == ["face_0 (voice_0)", "voice_1 (off screen)", "face_1 (voice_2)"]
    assert [c.identifier for c in cues] == ["1", "2", "3"]
    assert [(c.voice, c.start_time.in_milliseconds(), c.end_time.in_milliseconds()) for c in cues] == expected(doc)


def test_srt_round_trip(tmp_path):
    doc = voices_doc()
    path = tmp_path / "d.srt"
    path.write_text(formats.srt(doc), encoding="utf-8")
    cues = webvtt.from_srt(str(path))
    assert [c.text for c in cues] == ["face_0 (voice_0)", "voice_1 (off screen)", "face_1 (voice_2)"]
    assert [(c.text.split()[0], c.start_time.in_milliseconds(), c.end_time.in_milliseconds())
            for c in cues] == expected(doc)
    assert formats.srt({"schema": "avflow.diarization/1", "segments": []}) == ""


def test_schema_1_captions_name_the_face():
    doc = {"schema": "avflow.diarization/1", "video": "a.mp4",
           "segments": [{"speaker": "face_1", "start": 3661.5, "end": 3662.25}]}
    assert formats.webvtt(doc) == "WEBVTT\n\n1\n01:01:01.500 --> 01:01:02.250\n<v face_1>face_1</v>\n\n"
    assert formats.srt(doc) == "1\n01:01:01,500 --> 01:01:02,250\nface_1\n\n"


def test_pyav_reads_the_captions_and_they_fit_the_video(tmp_path):
    video = write_video(tmp_path / "talk.v2.mp4", synth_video(4 * FPS), fps=FPS)
    doc = voices_doc(str(video))
    for suffix, text in ((".vtt", formats.webvtt(doc)), (".srt", formats.srt(doc))):
        path = tmp_path / f"captions{suffix}"
        path.write_text(text, encoding="utf-8")
        with av.open(str(video)) as v, av.open(str(path)) as c:
            duration = float(v.duration / av.time_base)
            stream = c.streams.subtitles[0]
            cues = [(ms(p.pts * stream.time_base), ms((p.pts + p.duration) * stream.time_base),
                     [sub.dialogue for sub in p.decode()])
                    for p in c.demux(stream) if p.pts is not None]
        assert [(a, b) for a, b, _ in cues] == [(s, e) for _, s, e in expected(doc)]
        assert all(0 <= a < b <= round(duration * 1000) for a, b, _ in cues), (cues, duration)
        assert [texts for _, _, texts in cues] == [[b"face_0 (voice_0)"], [b"voice_1 (off screen)"],
                                                   [b"face_1 (voice_2)"]]


def test_label_tracks_for_audacity_and_elan():
    doc = voices_doc()
    rows = list(csv.reader(io.StringIO(formats.audacity_labels(doc)), delimiter="\t"))
    assert [(r[2], ms(r[0]), ms(r[1])) for r in rows] == expected(doc)
    assert rows[0] == ["0.120000", "1.320000", "face_0"]
    table = list(csv.DictReader(io.StringIO(formats.elan_tsv(doc)), delimiter="\t"))
    assert list(table[0]) == list(formats.ELAN_COLUMNS)
    assert [(r["Tier"], ms(r["Begin Time"]), ms(r["End Time"])) for r in table] == expected(doc)
    assert [ms(r["Duration"]) for r in table] == [e - s for _, s, e in expected(doc)]
    assert table[1]["Annotation"] == "voice_1 (off screen)"


def test_pyannote_annotation_from_every_kind_of_result(tmp_path):
    doc = voices_doc()
    (tmp_path / "diarization.json").write_text(json.dumps(doc))
    record = Record(pts=0, time_base=Fraction(1), data=doc)
    run_result = SimpleNamespace(outputs={"diarization": record, "json": None})
    for source in (doc, record, run_result, tmp_path, tmp_path / "diarization.json", str(tmp_path)):
        ann = formats.to_annotation(source)
        assert ann.uri == "talk.v2"
        got = [(label, ms(seg.start), ms(seg.end)) for seg, _, label in ann.itertracks(yield_label=True)]
        assert got == expected(doc)
    assert formats.to_annotation(doc, uri="mine").uri == "mine"
    with pytest.raises(ValueError, match="no 'diarization' output"):
        formats.to_annotation(SimpleNamespace(outputs={"video": None}))
    with pytest.raises(ValueError, match="not a diarization document"):
        formats.load({"schema": "other"})


def test_pyannote_metrics_take_the_annotation():
    from pyannote.metrics.diarization import DiarizationErrorRate

    ann = formats.to_annotation(voices_doc())
    assert DiarizationErrorRate()(ann, ann) == 0.0


def test_lhotse_supervisions(tmp_path):
    from lhotse import SupervisionSet

    doc = voices_doc()
    sups = formats.to_supervisions(doc)
    assert [(s.speaker, ms(s.start), ms(s.end)) for s in sups] == expected(doc)
    assert {s.recording_id for s in sups} == {"talk.v2"} and {s.channel for s in sups} == {0}
    assert sups[1].custom == {"face": None, "voice": "voice_1"}
    sset = formats.to_supervision_set(doc, recording_id="rec1")
    assert isinstance(sset, SupervisionSet) and len(sset) == 3
    sset.to_file(tmp_path / "sups.jsonl.gz")
    back = SupervisionSet.from_file(tmp_path / "sups.jsonl.gz")
    assert [(s.recording_id, s.speaker, ms(s.start), ms(s.end)) for s in back] == [
        ("rec1", *e) for e in expected(doc)]


def test_missing_libraries_name_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lhotse", None)
    for convert in (formats.to_supervisions, formats.to_supervision_set):
        with pytest.raises(ImportError, match="pip install lhotse"):
            convert(voices_doc())
    monkeypatch.setitem(sys.modules, "pyannote.core", None)
    with pytest.raises(ImportError, match="pip install pyannote.core"):
        formats.to_annotation(voices_doc())


# RTTM as pyannote, dscore and AVA-AVD tools write it: a byte-order mark, comments, tabs and
# runs of spaces, file ids with dots and dashes, <NA> fields, overlapping turns, two file ids.
FOREIGN_RTTM = (
    "\ufeff;; written by another tool\n"
    "SPEAKER talk.v2.final 1 0.500 1.250 <NA> <NA> spk_A <NA> <NA>\n"
    "SPEAKER\ttalk.v2.final\t1\t1.000\t2.000\t<NA>\t<NA>\tspk_B\t<NA>\t<NA>\n"  # overlaps spk_A
    "SPEAKER  -5KQ66BBWC4_c_01  1  10.00  0.5  <NA>  <NA>  3  0.91  <NA>\n"
    "SPKR-INFO talk.v2.final 1 <NA> <NA> <NA> unknown spk_A <NA> <NA>\n"
    "SPEAKER talk.v2.final 1 4.2 0.8 <NA> <NA> spk_A <NA>\n"
)


def test_read_rttm_from_other_tools(tmp_path):
    path = tmp_path / "ref.rttm"
    path.write_text(FOREIGN_RTTM, encoding="utf-8")
    turns = read_rttm(path)
    assert [(t.file, ms(t.start), ms(t.end), t.speaker) for t in turns] == [
        ("talk.v2.final", 500, 1750, "spk_A"), ("talk.v2.final", 1000, 3000, "spk_B"),
        ("-5KQ66BBWC4_c_01", 10000, 10500, "3"), ("talk.v2.final", 4200, 5000, "spk_A")]
    anns = formats.to_annotations(path)
    assert list(anns) == ["talk.v2.final", "-5KQ66BBWC4_c_01"]
    a = anns["talk.v2.final"]
    assert [(lab, ms(s.start), ms(s.end)) for s, _, lab in a.itertracks(yield_label=True)] == [
        ("spk_A", 500, 1750), ("spk_B", 1000, 3000), ("spk_A", 4200, 5000)]
    assert ms(a.get_overlap().duration()) == 750  # both overlapping turns kept
    with pytest.raises(ValueError, match="several file ids"):
        formats.to_annotation(path)
    assert formats.to_annotation(path, uri="-5KQ66BBWC4_c_01").labels() == ["3"]
    with pytest.raises(ValueError, match="no file id 'nope'"):
        formats.to_annotation(path, uri="nope")
    sups = formats.to_supervisions(path)
    assert [(s.recording_id, s.speaker, ms(s.start), ms(s.end)) for s in sups] == [
        (t.file, t.speaker, ms(t.start), ms(t.end)) for t in turns]


def test_the_rttm_avflow_writes_reads_back_as_the_json(tmp_path):
    from avflow_sync.report import rttm

    doc = voices_doc()
    path = tmp_path / "diarization.rttm"
    path.write_text(rttm(formats.file_id(doc), doc["segments"]))
    assert formats.to_annotation(path) == formats.to_annotation(doc)


def test_writer_writes_the_chosen_outputs(tmp_path):
    runner = NodeRunner(DiarizationWriter, output_dir=tmp_path, video="talk.mp4",
                        outputs=("json", "vtt", "srt", "audacity", "elan", "annotated"))
    runner.feed("info", MediaInfo(pts=0, time_base=Fraction(1, 1000), path="talk.mp4", duration=0.2,
                                  width=200, height=100, fps=25.0, n_frames=5))
    tb = Fraction(1, FPS)
    for i, active in enumerate([None, "face_0", "face_0", "face_0", None]):
        runner.feed("tracks", TrackedFaces(pts=i, time_base=tb, frame_index=i, width=200, height=100, faces=[]))
        runner.feed("active", Record(pts=i, time_base=tb, data={"frame_index": i, "time": i / FPS, "active": active}))
    out = runner.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "diarization.elan.tsv", "diarization.json", "diarization.labels.txt", "diarization.srt", "diarization.vtt"]
    assert {k for k, v in out.items() if v} == {"json", "vtt", "srt", "audacity", "elan", "result"}
    assert out["vtt"][0].path.read_text() == formats.webvtt(out["result"][0].data)
    assert "<v face_0>" in out["vtt"][0].path.read_text()


def test_the_rttm_file_id_of_a_stream_url_names_its_path_or_host():
    from avflow_sync.formats import file_id

    assert file_id({"video": "tcp://127.0.0.1:9000"}) == "127.0.0.1_9000"
    assert file_id({"video": "udp://127.0.0.1:5000?pkt_size=1316"}) == "127.0.0.1_5000"
    assert file_id({"video": "rtsp://cam.local/live/stream1"}) == "stream1"
    assert file_id({"video": "https://cdn.example/x/index.m3u8"}) == "index"
    assert file_id({"video": "/dev/video0"}) == "video0"
    assert file_id({"video": "talk show.mp4"}) == "talk_show"
