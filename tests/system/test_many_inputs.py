"""Many inputs through graphs/transcode.yaml: local and Ray executors, a corrupt input, resume
after a killed run, Ctrl-C. Real clips from ../shared/media, kept short (width 64, 2 s)."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avflow.executors import collect_inputs, run_many
from avflow.executors.store import MARKER, OutputRoot

SETS = {"width": "64", "decode.max_duration": "2"}
CLIPS = ("talking1", "talking2", "talking3")


def _link_clips(media_dir: Path, folder: Path, names: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, clip in names.items():
        (folder / f"{name}.mp4").symlink_to(media_dir / f"{clip}.mp4")
    return folder


@pytest.fixture(scope="module")
def reference(media_dir, repo_dir, tmp_path_factory) -> dict[str, bytes]:
    """Each clip transcoded by a plain sequential run: what every executor must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    clips = _link_clips(media_dir, root / "in", {c: c for c in CLIPS})
    result = run_many(repo_dir / "graphs" / "transcode.yaml", collect_inputs(clips), params=SETS, cli_strings=True,
                      output_root=root / "out", executor="sequential")
    assert result.all_ok, result.summary()
    return {c: (root / "out" / c / "transcoded.mp4").read_bytes() for c in CLIPS}


@pytest.fixture
def clips_with_corrupt(media_dir, tmp_path) -> Path:
    folder = _link_clips(media_dir, tmp_path / "clips", {c: c for c in CLIPS})
    (folder / "corrupt.mp4").write_bytes((media_dir / "talking1.mp4").read_bytes()[:20000])  # cut short
    return folder


def _avflow() -> list[str]:
    exe = Path(sys.executable).with_name("avflow")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "avflow"]


def _cli(inputs: Path, out: Path, *extra: str) -> list[str]:
    sets = [a for k, v in SETS.items() for a in ("--set", f"{k}={v}")]
    return _avflow() + ["run", "graphs/transcode.yaml", "--inputs", str(inputs), "-o", str(out), *sets, *extra]


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _assert_every_folder_complete(out: Path) -> list[str]:
    """No folder under a final name may be partial: each has its marker and every listed file whole."""
    root = OutputRoot(out)
    names = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names:
        marker = json.loads((out / name / MARKER).read_text())
        assert root.complete(name, marker["input"]) is not None, name
        assert not [p for p in (out / name).iterdir() if ".partial" in p.name]
    return names


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_first_output(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.glob(f"*/{MARKER}")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no output appeared"
        time.sleep(0.02)


def test_local_executor_matches_sequential_and_isolates_a_corrupt_input(clips_with_corrupt, reference, repo_dir,
                                                                        tmp_path):
    out = tmp_path / "out"
    result = run_many(repo_dir / "graphs" / "transcode.yaml", collect_inputs(clips_with_corrupt), params=SETS,
                      cli_strings=True, output_root=out, executor="local", workers=2)
    assert [(r.input.stem, r.status) for r in result.results] == [
        ("corrupt", "failed"), ("talking1", "ok"), ("talking2", "ok"), ("talking3", "ok")]
    assert "corrupt.mp4" in result.results[0].error and not result.all_ok
    for c in CLIPS:
        assert (out / c / "transcoded.mp4").read_bytes() == reference[c], c
    assert _assert_every_folder_complete(out) == list(CLIPS)
    assert {Path(e["input"]).stem: e["status"] for e in _manifest(out)} == {
        "corrupt": "failed", "talking1": "ok", "talking2": "ok", "talking3": "ok"}


def test_cli_exits_3_with_a_corrupt_input_and_records_it(clips_with_corrupt, repo_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(_cli(clips_with_corrupt, out, "--workers", "2", "--quiet"), cwd=repo_dir,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "4 inputs: 3 ok, 1 failed" in proc.stderr and "corrupt.mp4" in proc.stderr
    entries = _manifest(out)
    assert len(entries) == 4
    bad = next(e for e in entries if e["input"].endswith("corrupt.mp4"))
    assert bad["status"] == "failed" and "corrupt" in bad["error"] and bad["outputs"] == []
    ok = next(e for e in entries if e["input"].endswith("talking2.mp4"))
    assert ok["outputs"] == ["talking2/transcoded.mp4"] and ok["seconds"] > 0 and ok["time"]
    # all good now (the corrupt one removed): resume runs nothing again and exits 0
    (clips_with_corrupt / "corrupt.mp4").unlink()
    again = subprocess.run(_cli(clips_with_corrupt, out, "--resume", "--quiet"), cwd=repo_dir,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "3 skipped" in again.stderr and len(_manifest(out)) == 4


def test_resume_after_a_killed_run_loses_and_duplicates_nothing(media_dir, reference, repo_dir, tmp_path):
    names = {f"{p}{i}": clip for p in "ab" for i, clip in enumerate(CLIPS, 1)}  # 6 inputs
    clips = _link_clips(media_dir, tmp_path / "clips", names)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(clips, out, "--workers", "2", "--quiet"), cwd=repo_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_first_output(out, proc)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)  # the driver dies: no clean-up code runs at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers outlived the killed driver"
    done_before = _assert_every_folder_complete(out)
    assert 1 <= len(done_before) < len(names)  # killed midway

    proc = subprocess.run(_cli(clips, out, "--resume", "--quiet"), cwd=repo_dir, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert _assert_every_folder_complete(out) == sorted(names)  # no clip-1 style duplicates
    for name, clip in names.items():
        assert (out / name / "transcoded.mp4").read_bytes() == reference[clip], name
    assert not (out / ".avflow-tmp").exists()
    entries = _manifest(out)
    ok_lines = [Path(e["input"]).stem for e in entries if e["status"] == "ok"]
    assert sorted(ok_lines) == sorted(names)  # each input completed exactly once


def test_ctrl_c_interrupts_the_running_inputs_cleanly(media_dir, repo_dir, tmp_path):
    names = {f"{p}{i}": clip for p in "ab" for i, clip in enumerate(CLIPS, 1)}
    clips = _link_clips(media_dir, tmp_path / "clips", names)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(clips, out, "--workers", "2", "--quiet"), cwd=repo_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_first_output(out, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if len(_manifest(out)) == len(names) and all(e["status"] == "ok" for e in _manifest(out)):
        pytest.skip("every input finished before Ctrl-C arrived")
    assert proc.returncode != 0, stderr
    assert "interrupted" in stderr
    statuses = [e["status"] for e in _manifest(out)]
    assert set(statuses) <= {"ok", "interrupted"} and "interrupted" in statuses
    done = _assert_every_folder_complete(out)
    assert len(done) == statuses.count("ok")
    assert not (out / ".avflow-tmp").exists()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_matches_sequential_and_isolates_a_corrupt_input(clips_with_corrupt, reference, repo_dir,
                                                                      tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        out = tmp_path / "out"
        result = run_many(repo_dir / "graphs" / "transcode.yaml", collect_inputs(clips_with_corrupt), params=SETS,
                          cli_strings=True, output_root=out, executor="ray", cpus_per_task=1)
    finally:
        ray.shutdown()
    assert result.executor == "ray" and result.workers == 2
    assert [(r.input.stem, r.status) for r in result.results] == [
        ("corrupt", "failed"), ("talking1", "ok"), ("talking2", "ok"), ("talking3", "ok")]
    assert "corrupt.mp4" in result.results[0].error
    for c in CLIPS:
        assert (out / c / "transcoded.mp4").read_bytes() == reference[c], c
    assert _assert_every_folder_complete(out) == list(CLIPS)
    assert len(_manifest(out)) == 4
