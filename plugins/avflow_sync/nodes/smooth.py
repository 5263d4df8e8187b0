"""``sync.smooth``: per-track smoothing of score sequences."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from avflow.node import Node, NodeContext, Port, param
from avflow.payloads import Score

from ..smoothing import TrackSmoother, window_bounds

#: How far (frames) scores of different tracks may arrive out of frame order.
REORDER_FRAMES = 8


@dataclass(frozen=True)
class SmoothConfig:
    window: int = param(5, "centred window in frames (odd: symmetric; 1: no smoothing)", min=1)
    method: Literal["mean", "median"] = param("mean", "moving mean or moving median", choices=("mean", "median"))


class ScoreSmoother(Node):
    """Smooth each track's scores over time with a centred moving mean or median.

    Every score becomes the mean (or median) of that track's scores within ``window`` frames
    centred on it.

    A score whose value is ``None`` (no face) stays ``None``, and frames without a value do not
    pull their neighbours down: only present values are averaged. Every input is emitted once,
    delayed by half a window (scores of one track must arrive by increasing frame; tracks may
    interleave). ``extra["raw"]`` keeps the unsmoothed value.

    Ports:
        scores (Score): per-track scores (e.g. ``sync.syncnet``'s).
    Outputs:
        scores (Score): the same items with smoothed values.
    Params:
        window: frames (5).
        method: mean | median.

    .. code-block:: yaml

        smooth:
          type: sync.smooth
          params: {window: 5}
          inputs: {scores: syncnet.scores}
    """

    type = "sync.smooth"
    Config = SmoothConfig
    inputs = {"scores": Port(Score, "per-track scores")}
    outputs = {"scores": Port(Score, "smoothed per-track scores")}

    def open(self, ctx: NodeContext) -> None:
        self._smoothers: dict[str, TrackSmoother] = {}
        self._items: dict[tuple[str, int], Score] = {}
        self._max_frame: int | None = None
        self._after = window_bounds(self.config.window)[1]

    def process(self, port: str, item: Score, ctx: NodeContext):
        sm = self._smoothers.get(item.track_id)
        if sm is None:
            sm = self._smoothers[item.track_id] = TrackSmoother(self.config.window, self.config.method)
        self._items[(item.track_id, item.frame_index)] = item
        self._max_frame = item.frame_index if self._max_frame is None else max(self._max_frame, item.frame_index)
        ready = [(item.track_id, f, v) for f, v in sm.push(item.frame_index, item.value)]
        # Tracks that stopped: nothing can arrive for them before max_frame - REORDER_FRAMES.
        horizon = self._max_frame - REORDER_FRAMES
        for tid, other in self._smoothers.items():
            if other.pending:
                ready.extend((tid, f, v) for f, v in other.release(horizon))
        return self._emit(ready)

    def finish(self, ctx: NodeContext):
        ready = [(tid, f, v) for tid, sm in self._smoothers.items() for f, v in sm.release(None)]
        return self._emit(ready)

    def _emit(self, ready):
        if not ready:
            return None
        ready.sort(key=lambda r: r[1])
        out = []
        for tid, f, v in ready:
            orig = self._items.pop((tid, f))
            out.append(replace(orig, value=v, extra={**orig.extra, "raw": orig.value}))
        return {"scores": out}
