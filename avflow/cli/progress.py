"""Progress bars on stderr: one per node that reports progress (frames done / total, rate, ETA)."""

from __future__ import annotations

import threading


class ProgressDisplay:
    """Receives :class:`avflow.ProgressEvent` s and draws tqdm bars; thread-safe."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bars: dict[str, object] = {}
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        with self._lock:
            bar = self._bars.get(event.node)
            if bar is None:
                bar = tqdm(total=event.total, desc=event.node, unit=event.unit.rstrip("s") or "it",
                           position=len(self._bars), leave=True, dynamic_ncols=True, mininterval=0.5)
                self._bars[event.node] = bar
            if event.total is not None and bar.total != event.total:
                bar.total = event.total
                bar.refresh()
            delta = event.done - bar.n
            if delta > 0:
                bar.update(delta)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
