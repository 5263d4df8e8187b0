"""`avflow run` keeps MediaPipe / TF Lite / absl start-up lines off stderr unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

from avflow.runtime.native_logs import is_noise

GRAPH = """
name: faces
nodes:
  decode: {type: media.decode, params: {path: "${video}", max_duration: 0.5}}
  detect: {type: faces.detect, inputs: {frames: decode.video}}
  track: {type: faces.track, inputs: {detections: detect.detections}}
  mesh: {type: faces.landmarks, inputs: {frames: decode.video, tracks: track.tracks}}
params:
  video: {type: path, required: true}
"""
CHATTER = ("inference_feedback_manager", "Created TensorFlow Lite XNNPACK delegate", "absl::InitializeLog")


def _run(tmp_path, media_dir, *extra):
    graph = tmp_path / "faces.yaml"
    graph.write_text(GRAPH, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "avflow", "run", str(graph), "--set",
                           f"video={media_dir / 'talking1.mp4'}", "-o", str(tmp_path / "out"), "-q", *extra],
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())


def test_native_chatter_is_dropped_by_default_and_shown_with_verbose(tmp_path, media_dir):
    quiet = _run(tmp_path, media_dir)
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if any(c in line for c in CHATTER)], quiet.stderr
    verbose = _run(tmp_path, media_dir, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert all(c in verbose.stderr for c in CHATTER[:2]), verbose.stderr


def test_only_chatter_is_noise():
    assert is_noise(b"W0000 00:00:1796114583.539622   10089 inference_feedback_manager.cc:114] Feedback manager")
    assert is_noise(b"I0412 10:11:12.123456  77 gl_context.cc:357] GL version: 3.2")
    assert is_noise(b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    assert is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not is_noise(b"E0000 00:00:1796114583.539622   10089 calculator_graph.cc:887] INTERNAL: failed")
    assert not is_noise(b"error: graph.yaml:3 decode(media.decode): no parameter 'pth'")
    assert not is_noise(b"Traceback (most recent call last):")
