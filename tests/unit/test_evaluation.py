"""``avflow.evaluation``: RTTM from other tools in, DER/JER per file id out."""

from __future__ import annotations

import json

import pytest

from avflow import InputError
from avflow.evaluation import evaluate, read_rttm, scored_files


def write(path, lines):
    path.write_text("".join(f"SPEAKER {f} 1 {s:.3f} {e - s:.3f} <NA> <NA> {spk} <NA> <NA>\n"
                            for f, s, e, spk in lines))
    return path


def test_one_file_id_on_each_side_pairs_them_whatever_their_names(tmp_path):
    ref = write(tmp_path / "ref.rttm", [("clip.v1", 0, 4, "A"), ("clip.v1", 4, 8, "B")])
    hyp = write(tmp_path / "hyp.rttm", [("clip", 0, 4, "face_0"), ("clip", 4, 8, "face_1")])
    r = evaluate(ref, hyp)
    assert r["der"] == 0.0 and r["mapping"] == {"face_0": "A", "face_1": "B"}
    assert list(r["files"]) == ["clip.v1"]


def test_several_file_ids_are_scored_each_on_its_own(tmp_path):
    ref = write(tmp_path / "ref.rttm", [("a.1", 0, 4, "A"), ("b.2", 0, 2, "A"), ("b.2", 2, 4, "B")])
    # the same labels mean different people in each file: one mapping per file
    hyp = write(tmp_path / "hyp.rttm", [("b.2", 0, 2, "x"), ("b.2", 2, 4, "y"), ("a.1", 0, 4, "y")])
    r = evaluate(ref, hyp, collar=0)
    assert r["der"] == 0.0 and r["total"] == pytest.approx(8.0)
    assert r["mapping"] == {"a.1": {"y": "A"}, "b.2": {"x": "A", "y": "B"}}
    # a file the hypothesis lacks is missed speech
    hyp2 = write(tmp_path / "hyp2.rttm", [("b.2", 0, 2, "x"), ("b.2", 2, 4, "y"), ("c", 0, 1, "z")])
    r = evaluate(ref, hyp2, collar=0)
    assert r["files"]["a.1"]["missed"] == pytest.approx(4.0) and r["files"]["c"]["false_alarm"] == pytest.approx(1.0)
    assert r["der"] == pytest.approx(5.0 / 8.0)


def test_one_run_against_a_multi_file_reference_scores_its_file(tmp_path):
    ref = write(tmp_path / "ref.rttm", [("talk", 0, 4, "A"), ("other", 0, 9, "B")])
    out = tmp_path / "out"
    out.mkdir()
    write(out / "diarization.rttm", [("talk", 0, 4, "face_0")])
    (out / "diarization.json").write_text(json.dumps({"fps": 25.0, "n_frames": 100}))
    r = evaluate(ref, out)
    assert list(r["files"]) == ["talk"] and r["der"] == 0.0 and r["frame_accuracy"] == 1.0
    with pytest.raises(InputError, match="none in common"):
        evaluate(ref, write(tmp_path / "h.rttm", [("x", 0, 1, "s"), ("y", 0, 1, "s")]))


def test_scored_files_pairs_turns(tmp_path):
    turns = read_rttm(write(tmp_path / "r.rttm", [("a", 0, 1, "A"), ("b", 0, 1, "B")]))
    assert [(f, len(r), len(h)) for f, r, h in scored_files(turns, turns[1:])] == [("b", 1, 1)]


def test_malformed_rttm_lines_name_the_line(tmp_path):
    bad = tmp_path / "bad.rttm"
    bad.write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> A <NA> <NA>\nSPEAKER a 1 zero 1.0 <NA> <NA> A\n")
    with pytest.raises(InputError, match=r"bad.rttm:2: start and duration must be numbers"):
        read_rttm(bad)
    bad.write_text("SPEAKER a 1 0.0 -1 <NA> <NA> A\n")
    with pytest.raises(InputError, match="negative duration"):
        read_rttm(bad)
