"""The default diarization (voices first) end to end on composed fixtures no parameter was tuned on.

Tuning used talking1-3 with eng.wav/sun.wav at 25 fps; these fixtures use other voices
(yongen.wav, a pitch-shifted clip), 30 fps, small faces and a still portrait.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avflow.evaluation import evaluate
from avflow.testing.compose import Turn, compose_speakers
from avflow_sync.scoring import frame_accuracy

pytestmark = pytest.mark.slow


def _run(video, out, *sets):
    cmd = [sys.executable, "-m", "avflow", "run", "graphs/diarize.yaml", "--set", f"video={video}",
           "-o", str(out), "--quiet", *[f"--set={s}" for s in sets]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_two_talkers_and_an_offscreen_voice(media_dir, tmp_path, repo_dir, monkeypatch):
    monkeypatch.chdir(repo_dir)
    turns = [Turn(0.0, 4.0, 0), Turn(4.0, 8.0, 2), Turn(8.0, 12.5, 1), Turn(12.5, 16.0, 0)]
    fx = compose_speakers([media_dir / "talking2.mp4", media_dir / "talking3.mp4", media_dir / "yongen.wav",
                           media_dir / "sit.jpeg"], turns, size=(640, 360), fps=30.0, out=tmp_path / "fx.mp4")
    out = tmp_path / "out"
    r = _run(fx.path, out)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((out / "diarization.json").read_text())
    assert doc["schema"] == "avflow.diarization/2"
    assert len(doc["voices"]) == 3
    offscreen = [v for v in doc["voices"] if v["speaker"] is None]
    assert len(offscreen) == 1
    # the off-screen voice is in the RTTM under its voice id, and nobody visible is active then
    assert offscreen[0]["id"] in (out / "diarization.rttm").read_text()
    acc = frame_accuracy(fx, doc)
    assert acc >= 0.9, acc
    fx.rttm(tmp_path / "ref.rttm")
    scores = evaluate(tmp_path / "ref.rttm", out)
    assert scores["der"] < 0.15 and scores["frame_accuracy"] > 0.9, scores
    for name in ("diarization.rttm", "sync_signals.png", "annotated.mp4"):
        assert (out / name).stat().st_size > 0


def test_frame_decision_stays_selectable(media_dir, tmp_path, repo_dir, monkeypatch):
    monkeypatch.chdir(repo_dir)
    fx = compose_speakers([media_dir / "talking1.mp4", media_dir / "talking3.mp4"],
                          [Turn(0.0, 3.0, 0), Turn(3.0, 6.0, 1)], size=(640, 360), fps=25.0,
                          out=tmp_path / "fx.mp4")
    r = _run(fx.path, tmp_path / "out", "decision=frame")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "out" / "diarization.json").read_text())
    assert doc["schema"] == "avflow.diarization/1"


def test_voice_only_when_no_face_is_visible(media_dir, tmp_path, repo_dir, monkeypatch):
    monkeypatch.chdir(repo_dir)
    fx = compose_speakers([media_dir / "eng.wav", media_dir / "sun.wav", media_dir / "monalisa.png"],
                          [Turn(0.0, 5.0, 0), Turn(5.0, 10.0, 1)], size=(320, 240), fps=25.0,
                          out=tmp_path / "fx.mp4")
    r = _run(fx.path, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "out" / "diarization.json").read_text())
    assert len(doc["voices"]) == 2 and all(v["speaker"] is None for v in doc["voices"])
    assert all(a is None for a in doc["active"])
