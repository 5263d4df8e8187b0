"""Small nodes for testing graphs and the scheduler (register them with ``Registry.add``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..node import BatchSpec, Node, Port, param
from ..payloads import Payload, Record, Tensor
from ..registry import Registry


@dataclass(frozen=True)
class CountConfig:
    n: int = param(10, "how many items", min=0)
    size: int = param(1, "elements in each item's array", min=1)
    fail_at: int | None = param(None, "raise at this item")
    interval: float = param(0.0, "seconds between items")


class Count(Node):
    """Source: items 0..n-1 as Tensor payloads (pts = i, time base 1/25)."""

    type = "test.count"
    Config = CountConfig
    outputs = {"items": Port(Tensor, "counted items"), "odd": Port(Tensor, "odd items only")}

    def generate(self, ctx):
        ctx.progress.set_total(self.config.n, "items")
        for i in range(self.config.n):
            if ctx.cancelled:
                return
            if self.config.fail_at is not None and i == self.config.fail_at:
                raise RuntimeError(f"count failed at {i}")
            if self.config.interval:
                time.sleep(self.config.interval)
            item = Tensor(pts=i, time_base=Fraction(1, 25), name="count",
                          data=np.full(self.config.size, i, np.float32))
            out = {"items": item}
            if i % 2:
                out["odd"] = item
            yield out
            ctx.progress.advance()


@dataclass(frozen=True)
class SlowConfig:
    delay: float = param(0.0, "seconds of work per item", min=0.0)
    fail_at: int | None = param(None, "raise when this pts arrives")


class Slow(Node):
    """Pass items through after ``delay`` seconds; records open/close on the instance."""

    type = "test.slow"
    Config = SlowConfig
    inputs = {"items": Port(Payload, "anything")}
    outputs = {"items": Port(Payload, "the same items")}
    queue_size = 4

    def open(self, ctx):
        self.closed = threading.Event()

    def process(self, port, item, ctx):
        if self.config.fail_at is not None and item.pts == self.config.fail_at:
            raise ValueError(f"bad item {item.pts}")
        if self.config.delay:
            time.sleep(self.config.delay)
        return {"items": item}

    def close(self, ctx):
        self.closed.set()
        ctx.options.setdefault("closed", []).append(ctx.node_id)


class Merge(Node):
    """Fan-in: records (port, pts) of every item from ``a`` and ``b`` (and ``many``)."""

    type = "test.merge"
    inputs = {"a": Port(Tensor, "first stream"), "b": Port(Tensor, "second stream", optional=True),
              "many": Port(Tensor, "several sources", optional=True, many=True)}
    outputs = {"log": Port(Record, "one record at the end: every (port, pts) seen, and port ends")}

    def open(self, ctx):
        self.seen: list[tuple[str, int]] = []
        self.ended: list[str] = []

    def process(self, port, item, ctx):
        self.seen.append((port, item.pts))

    def end(self, port, ctx):
        self.ended.append(port)

    def finish(self, ctx):
        return {"log": Record(pts=0, time_base=Fraction(1), data={"seen": self.seen, "ended": self.ended})}


@dataclass(frozen=True)
class BatchSumConfig:
    batch_size: int = param(4, "items per batch", min=1)


class BatchSum(Node):
    """Batched: sums each item's array; records batch sizes and the tensor device."""

    type = "test.batch_sum"
    Config = BatchSumConfig
    inputs = {"items": Port(Tensor, "items to batch")}
    outputs = {"sums": Port(Record, "one record per batch: sizes, device, sums")}
    batch = BatchSpec(port="items")

    def process_batch(self, batch, ctx):
        data = batch.tensors["data"]
        return {"sums": Record(pts=batch.items[0].pts, time_base=batch.items[0].time_base,
                               data={"size": len(batch), "device": str(data.device),
                                     "shape": tuple(data.shape), "sums": data.sum(dim=1).tolist()})}


def registry_with_dummies(base: Registry | None = None) -> Registry:
    """A registry holding the dummy nodes (plus ``base``'s)."""
    registry = Registry() if base is None else base
    for cls in (Count, Slow, Merge, BatchSum):
        registry.add(cls, "avflow.testing")
    return registry
