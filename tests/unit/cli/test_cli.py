"""The command line: exit codes (0 ok, 2 user error, 1 internal) and what the messages say."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pathlib import Path

from avflow.testing.plugins import write_plugin_distribution

FAILING_PLUGIN = """
import avflow
from avflow.testing.dummies import Slow

class Crash(Slow):
    type = "crash.node"

    def process(self, port, item, ctx):
        raise ZeroDivisionError("boom")

@avflow.hookimpl
def avflow_register_nodes():
    return [Crash]
"""


def avflow_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "avflow", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=300)


def test_validate_ok_and_lists_runtime_params(repo_dir):
    res = avflow_cli("validate", repo_dir / "graphs" / "transcode.yaml")
    assert res.returncode == 0, res.stderr
    assert "ok (3 nodes: decode -> resize -> mux)" in res.stdout
    assert "required at run time: --set video=..." in res.stdout


def test_validate_reports_every_problem_with_exit_2(tmp_path):
    g = tmp_path / "bad.yaml"
    g.write_text("nodes:\n  d:\n    type: media.decod\n  m:\n    type: media.mux\n    inputs: {video: d.video}\n"
                 "    params: {crf: high}\n")
    res = avflow_cli("validate", g)
    assert res.returncode == 2
    assert "2 errors in graph 'bad'" in res.stderr
    assert f"{g}:2 d: unknown node type 'media.decod'; did you mean 'media.decode'" in res.stderr
    assert f"{g}:7 m(media.mux).crf: expected int, got 'high'" in res.stderr


def test_run_errors_are_exit_2_with_clear_messages(tmp_path, repo_dir, media_dir):
    graph = repo_dir / "graphs" / "transcode.yaml"
    res = avflow_cli("run", graph, "-o", tmp_path)
    assert res.returncode == 2 and "graph parameter 'video' (path) is required: pass --set video=VALUE" in res.stderr
    res = avflow_cli("run", graph, "--set", f"video={tmp_path / 'missing.mp4'}", "-o", tmp_path, "-q")
    assert res.returncode == 2 and "video (sets decode.path): not found" in res.stderr
    res = avflow_cli("run", graph, "--set", f"video={media_dir / 'sun.mp4'}", "-o", tmp_path, "-q")
    assert res.returncode == 2 and "sun.mp4 has no audio stream" in res.stderr
    res = avflow_cli("run", graph, "--set", "vidoe=x", "-o", tmp_path)
    assert res.returncode == 2 and "no graph parameter 'vidoe'; did you mean 'video'?" in res.stderr
    res = avflow_cli("run", graph, "--bogus")
    assert res.returncode == 2 and "No such option '--bogus'" in res.stderr
    assert list(tmp_path.glob("*.mp4")) == []


def test_internal_failure_is_exit_1_naming_the_node(tmp_path, media_dir):
    site = write_plugin_distribution(tmp_path / "site", "crash-plugin", FAILING_PLUGIN)
    g = tmp_path / "g.yaml"
    g.write_text(f"nodes:\n  d: {{type: media.decode, params: {{path: '{media_dir / 'talking3.mp4'}'}}}}\n"
                 "  c: {type: crash.node, inputs: {items: d.video}}\n")
    res = avflow_cli("run", g, "-o", tmp_path / "out", "-q", env={"PYTHONPATH": str(site)})
    assert res.returncode == 1
    assert "node 'c' (crash.node) failed in process at t=0.000s (pts 0): ZeroDivisionError: boom" in res.stderr


def test_run_writes_output_and_profile(tmp_path, repo_dir, media_dir):
    res = avflow_cli("run", repo_dir / "graphs" / "transcode.yaml", "--set", f"video={media_dir / 'talking3.mp4'}",
                     "--set", "width=128", "-o", tmp_path, "--profile", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["outputs"]["video"] == str(tmp_path / "transcoded.mp4")
    assert "media.decode" in res.stderr and "wall time" in res.stderr  # the profile table
    # stderr is not a terminal: plain progress lines, no cursor codes; then what was written
    assert "progress: 125/125 frames (100%)" in res.stderr and "\x1b[" not in res.stderr
    assert "wrote 1 file(s) into" in res.stderr and "transcoded.mp4" in res.stderr
    prof = json.loads((tmp_path / "profile.json").read_text())
    assert [n["node"] for n in prof["nodes"]] == ["decode", "resize", "mux"]


def test_nodes_show_and_models(repo_dir):
    res = avflow_cli("nodes", "--json")
    data = json.loads(res.stdout)
    decode = next(n for n in data["nodes"] if n["type"] == "media.decode")
    assert decode["plugin"] == "media" and decode["params"]["path"]["required"] is True
    assert decode["outputs"]["video"]["kind"] == "VideoFrame"
    res = avflow_cli("show", repo_dir / "graphs" / "transcode.yaml", "--format", "dot")
    assert res.returncode == 0 and '"decode" -> "mux" [label="audio→audio"];' in res.stdout
    res = avflow_cli("show", repo_dir / "graphs" / "transcode.yaml")
    assert "flowchart LR" in res.stdout and "decode -- video → frames --> resize" in res.stdout
    res = avflow_cli("models", "--json")
    assert res.returncode == 0 and "models" in json.loads(res.stdout)


@pytest.mark.parametrize("args", [["run"], ["validate"], ["show", "x.yaml", "--format", "png"]])
def test_usage_errors_exit_2(args):
    assert avflow_cli(*args).returncode == 2


def test_ctrl_c_exits_130_closing_nodes_and_leaving_no_partial_file(tmp_path, media_dir):
    import signal
    import time

    from avflow.testing import synth_audio, synth_video, write_video

    long_input = write_video(tmp_path / "long.mp4", synth_video(1500, 320, 240), fps=25,
                             audio=synth_audio(60.0))
    proc = subprocess.Popen([sys.executable, "-m", "avflow", "run", "graphs/transcode.yaml", "--set",
                             f"video={long_input}", "-o", str(tmp_path / "out"), "-q"],
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out").glob(".transcoded.*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # wait until the muxer has started its temporary file
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    # no partial file, no empty folder (what the run said is kept for the rare failure, not yet explained)
    assert not (tmp_path / "out").exists(), (list((tmp_path / "out").iterdir()), err[-3000:])
