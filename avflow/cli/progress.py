"""Progress on stderr: one bar per run (frames of the input, rate, ETA) and a stage line.

Nodes report their own progress (:class:`avflow.ProgressEvent`): the decoder of the input counts
its frames, later nodes may count theirs (lip-sync's prompts). The run's bar shows frames of
the input: its position is that of the node furthest behind among those that announced a frame count
(by fraction of their count), so a node that runs ahead into a queue (or
one that has nothing to count, as an audio-only decoder) does not make the bar lie. The stage
line names the node the bar waits on.

On a terminal the bar is redrawn in place and log lines are printed above it; when stderr is
not a terminal (a log file, CI) plain lines are written instead, at most every ``interval``
seconds and at the end, with no cursor codes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import IO


class ProgressDisplay:
    """Receives :class:`avflow.ProgressEvent` s and shows one progress bar; thread-safe.

    :param enabled: False draws nothing.
    :param stream: where to write (default ``sys.stderr``).
    :param tty: draw a bar in place (default: whether ``stream`` is a terminal); else plain lines.
    :param interval: seconds between plain lines.
    """

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None, tty: bool | None = None,
                 interval: float = 5.0):
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int | None]] = {}  # node -> (done, total)
        self._total: int | None = None
        self._bar = None
        self._t0 = time.monotonic()
        self._last_line = 0.0
        self._last_done = -1
        self._handler: logging.Handler | None = None
        self._saved: list[logging.Handler] = []

    # -- events ------------------------------------------------------------------------------
    def __call__(self, event) -> None:
        if not self.enabled:
            return
        with self._lock:
            total = event.total if event.unit == "frames" else None
            if total is None and event.node not in self._counts:
                return  # nothing to count against (an audio-only decoder): not a stage of the bar
            if total is not None and self._total is None:
                self._total = total
            self._counts[event.node] = (event.done, total if total is not None else self._counts[event.node][1])
            self._show(final=False)

    def position(self) -> tuple[int, int | None, str | None]:
        """``(done, total, stage)``: the counting node furthest behind, by fraction of its total
        (a node's total may differ from the input's: lip-sync counts the audio's frames)."""
        counted = [(done / total, done, total, node) for node, (done, total) in self._counts.items() if total]
        if not counted:
            return 0, self._total, None
        _, done, total, node = min(counted)
        if done >= total:
            return total, total, "finishing"
        return done, total, node

    def _show(self, final: bool) -> None:
        done, total, node = self.position()
        if total is None:
            return
        if self.tty:
            self._draw_bar(done, total, node)
            return
        now = time.monotonic()
        if final or (done != self._last_done and now - self._last_line >= self.interval):
            self._last_line, self._last_done = now, done
            self.stream.write(self.line(done, total, node, now - self._t0) + "\n")
            self.stream.flush()

    def line(self, done: int, total: int, node: str | None, elapsed: float) -> str:
        """One plain progress line: frames, percentage, rate, ETA and stage."""
        rate = done / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        eta = f", ETA {_duration((total - done) / rate)}" if rate > 0 and total and done < total else ""
        stage = f" [stage: {node}]" if node else ""
        return f"progress: {done}/{total} frames{pct}, {rate:.1f} frames/s, {_duration(elapsed)} elapsed{eta}{stage}"

    def _draw_bar(self, done: int, total: int, node: str | None) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, desc="frames", unit="frame", file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0.5)
            self._redirect_logs()
        if self._bar.total != total:
            self._bar.total = total
        self._bar.set_postfix_str(f"stage: {node}" if node else "", refresh=False)
        if done != self._bar.n:
            self._bar.n = done
            self._bar.update(0)  # redrawn at most every mininterval

    def _redirect_logs(self) -> None:
        """Log lines go above the bar (``tqdm.write``), not through it."""
        logger = logging.getLogger("avflow")
        self._saved = list(logger.handlers)
        if not self._saved:
            return
        display = self

        class _AboveBar(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                from tqdm import tqdm

                tqdm.write(self.format(record), file=display.stream)

        self._handler = _AboveBar(level=self._saved[0].level)
        self._handler.setFormatter(self._saved[0].formatter)
        logger.handlers[:] = [self._handler]

    def close(self) -> None:
        with self._lock:
            if self.enabled and not self.tty and self._total is not None:
                self._show(final=True)
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self._handler is not None:
                logging.getLogger("avflow").handlers[:] = self._saved
                self._handler = None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    m, s = divmod(seconds, 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"
