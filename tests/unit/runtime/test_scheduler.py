"""Scheduler: order, fan-in, bounded memory, batching, errors, cleanup, cancellation."""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

import avflow
from avflow import BatchSpec, Cancelled, Node, NodeError, Port, Tensor, param
from avflow.testing.dummies import Count, Slow, registry_with_dummies

EVENTS: list[tuple[str, str]] = []


class Recorder(Slow):
    """Slow, recording its lifecycle in EVENTS (test-local state)."""

    type = "test.recorder"

    def open(self, ctx):
        super().open(ctx)
        EVENTS.append(("open", ctx.node_id))

    def close(self, ctx):
        EVENTS.append(("close", ctx.node_id))


@dataclass(frozen=True)
class FanOutConfig:
    batch_size: int = param(8, "items per batch", min=1)
    copies: int = param(1, "items emitted per item taken", min=1)


class FanOutBatch(Node):
    """Batched; emits ``copies`` items per input item, all from one process_batch call."""

    type = "test.fan_out_batch"
    Config = FanOutConfig
    inputs = {"items": Port(Tensor, "items")}
    outputs = {"items": Port(Tensor, "the items, each ``copies`` times")}
    batch = BatchSpec(port="items")
    queue_size = 4

    def process_batch(self, batch, ctx):
        return {"items": [i for i in batch.items for _ in range(self.config.copies)]}


def _os_thread_name() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


class OsThreadNames(Slow):
    """Records the OS name of its thread, and of a thread it starts (as libraries do), in EVENTS."""

    type = "test.os_thread_names"

    def open(self, ctx):
        super().open(ctx)
        EVENTS.append(("own", _os_thread_name()))
        helper = threading.Thread(target=lambda: EVENTS.append(("started", _os_thread_name())))
        helper.start()
        helper.join()


@pytest.fixture()
def registry():
    r = registry_with_dummies()
    r.add(Recorder, "tests")
    r.add(OsThreadNames, "tests")
    r.add(FanOutBatch, "tests")
    EVENTS.clear()
    return r


def graph(nodes: dict, outputs: dict | None = None, name: str = "g") -> dict:
    return {"name": name, "nodes": nodes, "outputs": outputs or {}}


def run(g, registry, **kw):
    return avflow.run(g, registry=registry, device="cpu", output_dir=kw.pop("output_dir", None) or "out/test",
                      **kw)


def test_fan_out_and_fan_in_deliver_every_item_in_order_per_port(registry, tmp_path):
    g = graph({
        "src": {"type": "test.count", "params": {"n": 20}},
        "s1": {"type": "test.slow", "inputs": {"items": "src.items"}},
        "m": {"type": "test.merge", "inputs": {"a": "s1.items", "b": "src.odd",
                                               "many": ["src.items", "s1.items"]}},
    }, {"log": "m.log", "s1": "s1.items"})
    res = run(g, registry, output_dir=tmp_path)
    seen = res.outputs["log"].data["seen"]
    assert [p for port, p in seen if port == "a"] == list(range(20))
    assert [p for port, p in seen if port == "b"] == list(range(1, 20, 2))
    assert sorted(p for port, p in seen if port == "many") == sorted(list(range(20)) * 2)
    assert sorted(res.outputs["log"].data["ended"]) == ["a", "b", "many"]
    assert [i.pts for i in res.outputs["s1"]] == list(range(20))
    assert res.plan.order == ["src", "s1", "m"]


def test_memory_is_bounded_by_queues_not_stream_length(registry, tmp_path):
    # 1500 items of 200 kB = 300 MB if the source ran ahead; bounded queues keep it to a few MB.
    g = graph({
        "src": {"type": "test.count", "params": {"n": 1500, "size": 50_000}},
        "slow": {"type": "test.slow", "inputs": {"items": "src.items"}, "params": {"delay": 0.0005}},
        "m": {"type": "test.merge", "inputs": {"a": "slow.items"}},
    })
    tracemalloc.start()
    try:
        res = run(g, registry, output_dir=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = {s.node: s for s in res.stats}
    assert stats["slow"].max_queue <= stats["slow"].queue_capacity == Slow.queue_size
    assert stats["m"].items_in == 1500
    assert peak < 30e6, f"peak traced memory {peak / 1e6:.1f} MB grows with the stream"


def test_batching_sizes_partial_flush_and_device(registry, tmp_path):
    g = graph({
        "src": {"type": "test.count", "params": {"n": 10, "size": 3}},
        "b": {"type": "test.batch_sum", "inputs": {"items": "src.items"}, "params": {"batch_size": 4}},
    }, {"sums": "b.sums"})
    res = run(g, registry, output_dir=tmp_path)
    batches = [r.data for r in res.outputs["sums"]]
    assert [b["size"] for b in batches] == [4, 4, 2]
    assert all(b["device"] == "cpu" for b in batches)
    assert batches[0]["shape"] == (4, 3)
    assert [s for b in batches for s in b["sums"]] == [3.0 * i for i in range(10)]


def test_batched_node_feeding_a_batched_node_faster_than_it_drains_does_not_deadlock(registry, tmp_path):
    # On CPU, batches take turns under one lock. "a" emits 24 items per batch into b's inbox of 4,
    # and "b" drains its inbox only by running a batch: emitting while holding the lock hung here.
    g = graph({
        "src": {"type": "test.count", "params": {"n": 64}},
        "a": {"type": "test.fan_out_batch", "inputs": {"items": "src.items"}, "params": {"copies": 3}},
        "b": {"type": "test.fan_out_batch", "inputs": {"items": "a.items"}},
    }, {"items": "b.items"})
    runner = avflow.Runner(g, registry=registry, device="cpu", output_dir=tmp_path)
    watchdog = threading.Timer(60, runner.cancel)
    watchdog.start()
    try:
        res = runner.run()
    finally:
        watchdog.cancel()
    assert [i.pts for i in res.outputs["items"]] == [p for p in range(64) for _ in range(3)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names are read from /proc")
def test_node_threads_carry_the_node_id_in_the_os_and_pass_it_to_threads_they_start(registry, tmp_path):
    g = graph({"src": {"type": "test.count", "params": {"n": 3}},
               "lips_and_audio_scorer": {"type": "test.os_thread_names", "inputs": {"items": "src.items"}}})
    run(g, registry, output_dir=tmp_path)
    assert EVENTS == [("own", "avf:lips_and_au"), ("started", "avf:lips_and_au")]  # 15 bytes, the OS limit


def test_node_error_names_graph_node_and_time_and_closes_every_node(registry, tmp_path):
    g = graph({
        "src": {"type": "test.count", "params": {"n": 500}},
        "a": {"type": "test.recorder", "inputs": {"items": "src.items"}, "params": {"fail_at": 7}},
        "b": {"type": "test.recorder", "inputs": {"items": "a.items"}},
    }, name="broken")
    with pytest.raises(NodeError) as info:
        run(g, registry, output_dir=tmp_path)
    err = info.value
    assert (err.graph, err.node, err.pts) == ("broken", "a", 7)
    assert str(err) == ("graph 'broken': node 'a' (test.recorder) failed in process at t=0.280s (pts 7): "
                        "ValueError: bad item 7")
    assert isinstance(err.__cause__, ValueError) and err.exit_code == 1
    assert sorted(n for e, n in EVENTS if e == "close") == ["a", "b"]


def test_source_error_is_reported(registry, tmp_path):
    g = graph({"src": {"type": "test.count", "params": {"n": 50, "fail_at": 3}},
               "m": {"type": "test.merge", "inputs": {"a": "src.items"}}})
    with pytest.raises(NodeError, match="node 'src' .* failed in generate: RuntimeError: count failed at 3"):
        run(g, registry, output_dir=tmp_path)


def test_cancellation_stops_the_run_and_closes_nodes(registry, tmp_path):
    g = graph({
        "src": {"type": "test.count", "params": {"n": 100_000, "interval": 0.0005}},
        "a": {"type": "test.recorder", "inputs": {"items": "src.items"}},
    })
    runner = avflow.Runner(g, registry=registry, device="cpu", output_dir=tmp_path)
    threading.Timer(0.3, runner.cancel).start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        runner.run()
    assert time.perf_counter() - t0 < 5
    assert ("close", "a") in EVENTS


def test_two_runners_in_one_process_and_progress(registry, tmp_path):
    events = []
    results = {}

    def work(n):
        g = graph({"src": {"type": "test.count", "params": {"n": n}},
                   "b": {"type": "test.batch_sum", "inputs": {"items": "src.items"}}}, {"sums": "b.sums"})
        results[n] = avflow.Runner(g, registry=registry, device="cpu", output_dir=tmp_path / str(n),
                                   progress=events.append).run()

    threads = [threading.Thread(target=work, args=(n,)) for n in (30, 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.data["size"] for r in results[30].outputs["sums"]) == 30
    assert sum(r.data["size"] for r in results[50].outputs["sums"]) == 50
    finals = {(e.node, e.total) for e in events if e.done == e.total}
    assert finals == {("src", 30), ("src", 50)}


def test_graph_params_flow_into_node_configs(registry, tmp_path):
    g = {"params": {"n": {"type": "int", "default": 4}},
         "nodes": {"src": {"type": "test.count", "params": {"n": "${n}"}},
                   "b": {"type": "test.batch_sum", "inputs": {"items": "src.items"}}},
         "outputs": {"sums": "b.sums"}}
    res = avflow.run(g, {"n": 6, "b.batch_size": 6}, registry=registry, device="cpu", output_dir=tmp_path)
    assert res.outputs["sums"].data["size"] == 6


def test_profile_reports_every_node(registry, tmp_path):
    from avflow.runtime.runner import format_profile

    g = graph({"src": {"type": "test.count", "params": {"n": 8}},
               "b": {"type": "test.batch_sum", "inputs": {"items": "src.items"}}})
    res = run(g, registry, output_dir=tmp_path)
    prof = res.profile()
    assert [n["node"] for n in prof["nodes"]] == ["src", "b"]
    assert prof["nodes"][1]["items_in"] == 8 and prof["nodes"][1]["batches"] == 2
    table = format_profile(res)
    assert "test.batch_sum" in table and "wall time" in table


def test_count_dummy_is_a_source():
    assert Count.inputs == {} and "items" in Count.outputs


class SlowOpen(Slow):
    """Opens in 0.3 s, recording when its open started and ended in EVENTS."""

    type = "test.slow_open"

    def open(self, ctx):
        super().open(ctx)
        t0 = time.perf_counter()
        time.sleep(0.3)
        EVENTS.append((ctx.node_id, (t0, time.perf_counter())))


class SlowOpenAlone(SlowOpen):
    type = "test.slow_open_alone"
    open_alone = True


def test_nodes_open_side_by_side_except_those_that_open_alone(registry, tmp_path):
    registry.add(SlowOpen, "tests")
    registry.add(SlowOpenAlone, "tests")
    g = graph({"src": {"type": "test.count", "params": {"n": 3}},
               "a": {"type": "test.slow_open", "inputs": {"items": "src.items"}},
               "b": {"type": "test.slow_open", "inputs": {"items": "a.items"}},
               "c": {"type": "test.slow_open_alone", "inputs": {"items": "b.items"}}}, {"out": "c.items"})
    res = run(g, registry, output_dir=tmp_path)
    assert len(res.outputs["out"]) == 3
    spans = dict(e for e in EVENTS if e[0] in "abc")
    (a0, a1), (b0, b1), (c0, c1) = spans["a"], spans["b"], spans["c"]
    assert max(a0, b0) < min(a1, b1)  # a and b opened at the same time
    assert c0 >= max(a1, b1) or c1 <= min(a0, b0)  # c alone
