"""A live stream for tests and benchmarks: a media file sent as MPEG-TS at its own pace (PyAV).

.. code-block:: python

    from avflow.testing.live import StreamSender, free_port

    port = free_port()
    sender = StreamSender(fixture.path, f"tcp://127.0.0.1:{port}?listen=1")
    sender.start()                       # waits for a client, then sends in real time
    ...                                  # avflow run graphs/diarize_live.yaml --set source=tcp://127.0.0.1:PORT
    sender.join()
    sender.started                       # wall clock (time.time()) of the first packet sent

The packets are remuxed, not re-encoded (H.264 and AAC fit MPEG-TS as they are), each sent when
the wall clock reaches its decoding time. ``stall_after`` stops sending after that many seconds of
media but keeps the connection open (a sender that hangs); ``close_after`` closes it (a dropped
stream).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamSender(threading.Thread):
    """Send ``path`` to ``url`` (``tcp://127.0.0.1:PORT?listen=1``: it waits for one client) as MPEG-TS.

    :param realtime: pace the packets by their timestamps (False: as fast as the reader takes them).
    :param stall_after: stop sending after this many seconds of media, keep the connection open
        for ``hold`` seconds, then close it.
    :param close_after: close the connection after this many seconds of media.
    :param accept_timeout: give up waiting for a client after this many seconds.
    """

    def __init__(self, path: str | Path, url: str, *, realtime: bool = True, stall_after: float | None = None,
                 close_after: float | None = None, hold: float = 30.0, accept_timeout: float = 60.0):
        super().__init__(name="avflow:test-sender", daemon=True)
        self.path, self.url = Path(path), url
        self.realtime = realtime
        self.stall_after, self.close_after, self.hold = stall_after, close_after, hold
        self.accept_timeout = accept_timeout
        self.started: float | None = None  # time.time() when the first packet went out
        self.sent_until = 0.0  # media seconds sent
        self.error: BaseException | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop sending and close the connection."""
        self._stop.set()

    def run(self) -> None:
        import av

        try:
            with av.open(str(self.path)) as src:
                streams = [s for s in (src.streams.video[:1] + src.streams.audio[:1])]
                with av.open(self.url, "w", format="mpegts", timeout=self.accept_timeout) as out:
                    mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                    t0 = None
                    for packet in src.demux(*streams):
                        if self._stop.is_set():
                            break
                        if packet.dts is None:  # the demuxer's flush packets
                            continue
                        t = float(packet.dts * packet.time_base)
                        t0 = t if t0 is None else t0
                        rel = t - t0
                        if self.close_after is not None and rel >= self.close_after:
                            break
                        if self.stall_after is not None and rel >= self.stall_after:
                            self._stop.wait(self.hold)
                            break
                        if self.started is None:
                            self.started = time.time()
                        if self.realtime:
                            wait = self.started + rel - time.time()
                            if wait > 0 and self._stop.wait(wait):
                                break
                        packet.stream = mapping[packet.stream.index]
                        out.mux(packet)
                        self.sent_until = max(self.sent_until, rel)
        except BaseException as exc:  # noqa: BLE001 - kept for the test to report
            self.error = exc
