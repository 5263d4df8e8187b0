"""A live stream for tests and benchmarks: a media file sent at its own pace (PyAV), as MPEG-TS,
FLV (RTMP), RTSP or an HLS playlist.

.. code-block:: python

    from avflow.testing.live import StreamSender, free_port

    port = free_port()
    with StreamSender(fixture.path, f"tcp://127.0.0.1:{port}?listen=1") as sender:
        ...   # avflow run graphs/diarize_live.yaml --set source=tcp://127.0.0.1:PORT
        sender.wait_started()     # wall clock (time.time()) of the first packet sent
        sender.wait()

The sender runs in its own process (``python -m avflow.testing.live``): PyAV holds the GIL while
it waits for a client and while a socket write blocks, which would freeze a test's own clock.
Packets are remuxed, not re-encoded (H.264 and AAC fit MPEG-TS as they are), each sent when the
wall clock reaches its decoding time. ``stall_after`` stops sending after that many seconds of
media but keeps the connection open for ``hold`` seconds (a sender that hangs); ``close_after``
closes it (a dropped stream). :class:`JsonlFollower` reads the graph's ``live.jsonl`` as it grows,
timing each line by the reader's own clock.

HLS is not sent to a peer but written: ``format="hls"`` with ``url`` a playlist path writes
segments of about ``segment`` seconds (one per key frame: send a file with short GOPs) and a live
playlist that grows as they are written; :class:`HttpFolder` serves that folder over HTTP on
127.0.0.1, where FFmpeg's HLS reader polls it as it would a CDN.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(path: str | Path, url: str, *, realtime: bool = True, stall_after: float | None = None,
          close_after: float | None = None, hold: float = 30.0, timeout: float = 60.0, loops: int = 1,
          on_start=None, format: str = "mpegts", segment: float = 1.0) -> float:
    """Send ``path`` to ``url`` as ``format`` (MPEG-TS; ``flv`` for ``rtmp://``, ``rtsp`` for
    ``rtsp://``; ``hls``: ``url`` is a playlist path, segments of ``segment`` s), ``loops`` times
    in a row (one continuous stream); returns the media seconds sent. ``on_start(wall)`` is called
    when the first packet goes out."""
    import av

    options = {}
    if format == "hls":  # a live playlist: every segment listed, the end marked when the file ends
        options = {"hls_time": str(segment), "hls_list_size": "0", "hls_segment_type": "mpegts"}

    sent = 0.0
    with av.open(str(path)) as src:
        length = float(src.duration) / 1_000_000 if src.duration else 0.0
    last_dts: dict[int, int] = {}
    with av.open(url, "w", format=format, options=options, timeout=timeout) as out:
        mapping: dict = {}
        t0 = started = None
        for loop in range(loops):
            with av.open(str(path)) as src:
                streams = list(src.streams.video[:1]) + list(src.streams.audio[:1])
                for s in streams:
                    if s.index not in mapping:
                        mapping[s.index] = out.add_stream_from_template(s)
                for packet in src.demux(*streams):
                    if packet.dts is None:  # the demuxer's flush packets
                        continue
                    if loop:  # the next round goes on where the last one ended
                        shift = int(round(loop * length / packet.time_base))
                        packet.dts += shift
                        if packet.pts is not None:
                            packet.pts += shift
                        if packet.dts <= last_dts.get(packet.stream.index, -(1 << 62)):
                            continue  # an encoder's priming packet overlapping the previous round
                    last_dts[packet.stream.index] = packet.dts
                    t = float(packet.dts * packet.time_base)
                    t0 = t if t0 is None else t0
                    rel = t - t0
                    if (close_after is not None and rel >= close_after) or (
                            stall_after is not None and rel >= stall_after):
                        if close_after is None:
                            time.sleep(hold)  # a sender that hangs: connected, silent
                        return sent
                    if realtime and started is not None:
                        wait = started + rel - time.time()
                        if wait > 0:
                            time.sleep(wait)
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)  # the first one waits for the client: PyAV opens the output then
                    if started is None:
                        started = time.time() - rel
                        if on_start is not None:
                            on_start(started)
                    sent = max(sent, rel)
    return sent


class JsonlFollower:
    """Follow a JSON-lines file while another process writes it (``live.jsonl``): every complete
    line, with the wall clock (``time.time()``) when it was first seen, in ``lines``; a thread
    polls the file until ``proc`` has exited and the file is read to its end."""

    def __init__(self, path: str | Path, proc: subprocess.Popen, poll: float = 0.02):
        self.path, self.proc, self.poll = Path(path), proc, poll
        self.lines: list[tuple[float, dict]] = []
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        pos, buf = 0, ""
        while True:
            done = self.proc.poll() is not None
            if self.path.exists():
                with open(self.path, encoding="utf-8") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
                now = time.time()
                *complete, buf = (buf + chunk).split("\n")
                self.lines.extend((now, json.loads(line)) for line in complete if line)
            if done:  # read once more after the exit: the last lines are in
                return
            time.sleep(self.poll)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class HttpFolder:
    """Serve a folder over HTTP on 127.0.0.1 (a thread of this process) while in a ``with``
    block: ``url(name)`` is a file's address. For HLS written by :func:`serve`."""

    def __init__(self, folder: str | Path):
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:  # no line per request on stderr
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> "HttpFolder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class StreamSender:
    """:func:`serve` in a child process; ``started`` is the wall clock of its first packet."""

    def __init__(self, path: str | Path, url: str, *, realtime: bool = True, stall_after: float | None = None,
                 close_after: float | None = None, hold: float = 30.0, loops: int = 1, format: str = "mpegts"):
        cmd = [sys.executable, "-m", "avflow.testing.live", str(path), url, "--hold", str(hold),
               "--loops", str(loops), "--format", format]
        if not realtime:
            cmd.append("--fast")
        if stall_after is not None:
            cmd += ["--stall-after", str(stall_after)]
        if close_after is not None:
            cmd += ["--close-after", str(close_after)]
        self.started: float | None = None
        self.sent: float | None = None
        self._started = threading.Event()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            msg = json.loads(line)
            if "started" in msg:
                self.started = float(msg["started"])
                self._started.set()
            if "sent" in msg:
                self.sent = float(msg["sent"])

    def wait_started(self, timeout: float = 60.0) -> float:
        if not self._started.wait(timeout):
            raise TimeoutError(f"the sender sent nothing within {timeout} s: {self.stderr()}")
        return self.started

    def wait(self, timeout: float | None = None) -> int:
        rc = self._proc.wait(timeout)
        self._reader.join(5)
        return rc

    def stderr(self) -> str:
        return self._proc.stderr.read() if self._proc.poll() is not None else ""

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)

    def __enter__(self) -> "StreamSender":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m avflow.testing.live", description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("url")
    ap.add_argument("--fast", action="store_true", help="do not pace the packets")
    ap.add_argument("--stall-after", type=float, default=None)
    ap.add_argument("--close-after", type=float, default=None)
    ap.add_argument("--hold", type=float, default=30.0)
    ap.add_argument("--loops", type=int, default=1)
    ap.add_argument("--format", default="mpegts", help="container sent (flv for rtmp://, rtsp, hls)")
    a = ap.parse_args(argv)

    def on_start(wall: float) -> None:
        print(json.dumps({"started": wall}), flush=True)

    sent = serve(a.path, a.url, realtime=not a.fast, stall_after=a.stall_after, close_after=a.close_after,
                 hold=a.hold, loops=a.loops, on_start=on_start, format=a.format)
    print(json.dumps({"sent": sent}), flush=True)


if __name__ == "__main__":
    main()
