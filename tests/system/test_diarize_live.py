"""graphs/diarize_live.yaml on a live stream over loopback (issue 12).

A sender process (:mod:`avflow.testing.live`) streams a composed fixture with exact ground truth as
MPEG-TS over ``tcp://127.0.0.1:PORT?listen=1`` at real-time pace (and over UDP, RTMP, RTSP, and as
HLS served over HTTP); ``avflow run`` reads it live as a subprocess, and the test follows
``live.jsonl`` as it grows, timing each line by its own clock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from avflow.testing.compose import compose_speakers
from avflow.testing.live import HttpFolder, JsonlFollower, StreamSender, free_port

pytestmark = pytest.mark.slow

LATENCY = 2.0
#: how far below the offline graph's frame accuracy the live one may be on this fixture (the
#: issue's 3 points): measured 0.991 live against 0.991 offline in each of 3 runs in session 6
#: (x264's default GOP; bench/README.md), a fixture the live choices were made on
ACCURACY_GAP = 0.03
DURATION = 16.0
#: two talkers in 3-5 s turns beside a still portrait, 640x360 (a short, light fixture)
TURNS = [(0.0, 4.2, 0), (4.2, 7.6, 1), (7.6, 8.4, None), (8.4, 12.5, 0), (12.5, 16.0, 1)]


@pytest.fixture(scope="module")
def fixture(media_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("live")
    fx = compose_speakers([media_dir / "talking1.mp4", media_dir / "talking2.mp4", media_dir / "monalisa.png"],
                          TURNS, duration=DURATION, out=work / "two.mp4", size=(640, 360), fps=25.0, keyint=25)
    return work, fx


@pytest.fixture(scope="module")
def offline(fixture, repo_dir):
    import avflow

    work, fx = fixture
    result = avflow.run(repo_dir / "graphs" / "diarize.yaml", {"video": str(fx.path), "outputs": ["json", "rttm"]},
                        output_dir=work / "offline", device="cpu")
    return result.outputs["diarization"].data


class LiveRun:
    """``avflow run graphs/diarize_live.yaml`` as a subprocess, its live.jsonl followed line by line."""

    def __init__(self, repo: Path, out: Path, source: str, *sets: str):
        shutil.rmtree(out, ignore_errors=True)
        self.out = out
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        args = ["avflow", "run", str(repo / "graphs" / "diarize_live.yaml"), "--set", f"source={source}",
                "-o", str(out), "-q"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._follower = JsonlFollower(out / "live.jsonl", self.proc)
        self.lines = self._follower.lines  # (time.time() when the line was seen, the decision)

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        self._follower.join(5)
        return self.proc.returncode, err

    def files(self) -> tuple[dict, str]:
        return json.loads((self.out / "diarization.json").read_text()), (self.out / "diarization.rttm").read_text()


def _complete(doc: dict, rttm: str, lines: list[tuple[float, dict]]) -> None:
    """The JSON and the RTTM hold every decision of live.jsonl, and agree with each other."""
    assert doc["schema"] == "avflow.diarization/2"
    assert doc["n_frames"] == len(doc["active"]) == len(lines)
    assert [d["speaker"] for _, d in lines] == doc["active"]
    ts = [d["t"] for _, d in lines]
    assert ts == sorted(ts)
    turns = [s for s in doc["segments"] if s["end"] > s["start"] and (s["speaker"] or s["voice"])]
    assert len(rttm.splitlines()) == len(turns)
    assert all(line.startswith("SPEAKER ") and len(line.split()) == 10 for line in rttm.splitlines())


def test_live_stream_decides_every_moment_within_the_latency(fixture, offline, repo_dir):
    from avflow_sync.scoring import frame_accuracy

    work, fx = fixture
    port = free_port()
    with StreamSender(fx.path, f"tcp://127.0.0.1:{port}?listen=1") as sender:
        run = LiveRun(repo_dir, work / "live", f"tcp://127.0.0.1:{port}", f"latency={LATENCY}", "stall_timeout=3")
        started = sender.wait_started()
        rc, err = run.wait()
    assert rc == 0, err[-3000:]
    late = [(seen - (started + d["t"]), d["t"]) for seen, d in run.lines]
    worst = max(late)
    assert worst[0] <= LATENCY + 0.5, f"decision for t={worst[1]} came {worst[0]:.2f} s after it was sent"
    doc, rttm = run.files()
    _complete(doc, rttm, run.lines)
    assert doc["n_frames"] == len(fx.active)  # the whole stream, decided
    live_acc, offline_acc = frame_accuracy(fx, doc), frame_accuracy(fx, offline)
    assert live_acc >= offline_acc - ACCURACY_GAP, (live_acc, offline_acc, doc["voices"])


def test_ctrl_c_mid_stream_leaves_complete_files(fixture, repo_dir):
    work, fx = fixture
    port = free_port()
    with StreamSender(fx.path, f"tcp://127.0.0.1:{port}?listen=1") as sender:
        run = LiveRun(repo_dir, work / "sigint", f"tcp://127.0.0.1:{port}", "preview=true")
        started = sender.wait_started()
        while time.time() < started + 7.0:
            time.sleep(0.05)
        run.proc.send_signal(signal.SIGINT)
        rc, err = run.wait()
    assert rc == 0, err[-3000:]
    doc, rttm = run.files()
    _complete(doc, rttm, run.lines)
    assert 4.0 <= run.lines[-1][1]["t"] <= 8.0  # what was heard before Ctrl-C, all of it decided
    import av  # the fragmented preview plays, whatever was written of it

    with av.open(str(run.out / "preview.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 75


def test_a_sender_that_stops_sending_ends_the_run_cleanly(fixture, repo_dir):
    work, fx = fixture
    port = free_port()
    with StreamSender(fx.path, f"tcp://127.0.0.1:{port}?listen=1", stall_after=5.0, hold=30.0) as sender:
        run = LiveRun(repo_dir, work / "stall", f"tcp://127.0.0.1:{port}", "stall_timeout=2", "reconnect=1", "open_timeout=3",
                      "backoff=0.5")
        sender.wait_started()
        rc, err = run.wait()
    assert rc == 0, err[-3000:]
    assert "dropped" in err and "reconnecting" in err
    doc, rttm = run.files()
    _complete(doc, rttm, run.lines)
    assert 4.0 <= run.lines[-1][1]["t"] <= 5.2


def test_a_source_that_never_sends_a_frame_is_an_exit_2_error(tmp_path, repo_dir):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    t0 = time.time()
    run = LiveRun(repo_dir, tmp_path / "silent", f"tcp://127.0.0.1:{port}", "open_timeout=2")
    rc, err = run.wait()
    server.close()
    assert rc == 2, err
    assert "open_timeout" in err and f"tcp://127.0.0.1:{port}" in err and "live" in err
    assert time.time() - t0 < 60


@pytest.mark.parametrize("scheme", ["udp", "rtmp", "rtsp"])
def test_other_live_protocols_are_read_as_they_come(fixture, repo_dir, scheme):
    # UDP: the receiver binds the port and the sender sends datagrams (packets before the receiver
    # is up are lost, so it starts first); RTMP and RTSP: the receiver listens and the sender
    # publishes (FLV; RTSP's ANNOUNCE and RECORD, RTP over UDP)
    work, fx = fixture
    port = free_port()
    if scheme == "udp":
        source, target, fmt, sets = f"udp://127.0.0.1:{port}", f"udp://127.0.0.1:{port}?pkt_size=1316", "mpegts", []
    elif scheme == "rtmp":
        source = target = f"rtmp://127.0.0.1:{port}/live/test"
        fmt, sets = "flv", ["options={listen: 1}"]
    else:
        source = target = f"rtsp://127.0.0.1:{port}/live/test"
        fmt, sets = "rtsp", ["options={rtsp_flags: listen}"]
    run = LiveRun(repo_dir, work / scheme, source, "stall_timeout=2", "open_timeout=60", *sets)
    _wait_bound(port, "udp" if scheme == "udp" else "tcp", timeout=60)  # the receiver reads before anything is sent
    with StreamSender(fx.path, target, close_after=6.0, format=fmt) as sender:
        sender.wait_started()
        sender.wait(60)
        rc, err = run.wait()
    assert rc == 0, err[-3000:]
    _every_frame_sent_decided(run, 5.0)
    assert run.files()[1].split()[1] == ("test" if scheme != "udp" else f"127.0.0.1_{port}")


def test_an_hls_playlist_is_read_as_its_segments_come(fixture, repo_dir, tmp_path):
    # HLS as a CDN serves it: 1 s segments and a live playlist written as the sender goes, over
    # HTTP; the reader polls the playlist, from its first segment (live_start_index 0)
    work, fx = fixture
    folder = tmp_path / "hls"
    folder.mkdir()
    with HttpFolder(folder) as http, StreamSender(fx.path, str(folder / "live.m3u8"), close_after=6.0,
                                                  format="hls") as sender:
        sender.wait_started()
        deadline = time.time() + 30
        while not (folder / "live.m3u8").exists() and time.time() < deadline:  # its first segment is listed
            time.sleep(0.1)
        run = LiveRun(repo_dir, work / "hls", http.url("live.m3u8"), "stall_timeout=5", "open_timeout=30",
                      "options={live_start_index: 0}")
        sender.wait(60)
        rc, err = run.wait()
    assert rc == 0, err[-3000:]
    _every_frame_sent_decided(run, 4.5)  # the last segment is listed when the sender closes it
    assert run.files()[1].split()[1] == "live"


def _every_frame_sent_decided(run: LiveRun, until: float) -> None:
    doc, rttm = run.files()
    _complete(doc, rttm, run.lines)
    ts = [d["t"] for _, d in run.lines]
    # from the stream's start (RTP's timestamps may place the first frame a few frames after the
    # first audio), every frame sent decided
    assert ts[0] < 0.2 and ts[-1] >= until
    assert any(d["speaker"] for _, d in run.lines)


def _wait_bound(port: int, proto: str, timeout: float) -> None:
    """Wait until a local socket is bound to ``port`` (a UDP receiver, a listening TCP server), as
    /proc/net says (not by connecting, which a listener would take for its client)."""
    if not Path("/proc/net").is_dir():  # not Linux: give the receiver time to start instead
        time.sleep(10.0)
        return
    hexport = f":{port:04X}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        for name in (proto, proto + "6"):
            try:
                rows = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            # local address is the 2nd field; for TCP the state (4th) must be LISTEN (0A)
            if any(r.split()[1].endswith(hexport) and (proto == "udp" or r.split()[3] == "0A") for r in rows):
                time.sleep(0.5)  # bound; the reader is about to read
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing bound to {proto} port {port} within {timeout} s")
