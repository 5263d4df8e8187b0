"""The streaming scheduler: one thread per node, bounded inboxes between them.

Each node has one bounded inbox fed by all its upstream outputs; items arrive as
``(port, payload)`` in the order producers emit them, and a producer blocks while the inbox is
full, so memory is bounded by the queue sizes, not by the length of the input. Nodes consume
their inbox eagerly (any port), which keeps fan-in of streams running at different rates free
of deadlocks. Heavy work (decoding, numpy, torch, MediaPipe) releases the GIL, so threads give
real pipeline parallelism.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import Cancelled, NodeError
from ..graph.validate import Plan, PlannedNode
from ..node import Node, NodeContext, Progress
from ..payloads import Payload
from .batching import collate
from .libc import PR_SET_NAME, prctl
from .memory import HeapTrimmer, quiet_openmp

_POLL = 0.1  # seconds between cancellation checks while blocked on a queue
# Nodes with inputs start opening once every source has emitted on each of its streams (or after
# this long): a source's first items do not wait for the GIL behind every model's import.
_SOURCE_HEAD_S = 1.0


def _name_os_thread(name: str) -> None:
    """Name the calling thread in the OS (Linux; 15 bytes), so that ``top -H``, ``py-spy`` and
    ``/proc/*/task/*/comm`` show which node a thread works for. Threads that libraries start
    from it (torch's OpenMP pool, x264's, FFmpeg's) inherit the name unless they set their own.
    A name is a convenience: failing to set one is not an error."""
    prctl(PR_SET_NAME, name.encode("utf-8", "replace")[:15])


class _End:
    """End of stream on one input port."""

    __slots__ = ("port",)

    def __init__(self, port: str):
        self.port = port


class _Stop(Exception):
    """Internal: the run is being torn down (another node failed, or cancelled)."""


class _OpenGate:
    """Nodes open side by side, except one with ``open_alone``, which opens while no other does."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._alone = False

    @contextlib.contextmanager
    def __call__(self, alone: bool) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and (not alone or self._active == 0))
            self._active += 1
            self._alone = alone
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if alone:
                    self._alone = False
                self._cond.notify_all()


@dataclass
class NodeStats:
    """Per-node figures for ``--profile``."""

    node: str
    type: str
    items_in: int = 0
    items_out: int = 0
    calls: int = 0
    batches: int = 0
    busy_s: float = 0.0  # wall time inside the node's calls
    cpu_s: float = 0.0  # CPU time of the node's own thread in them (not of threads libraries start)
    open_s: float = 0.0
    max_queue: int = 0
    queue_capacity: int = 0
    first_out_s: float | None = None  # seconds from the run's start to the node's first item out
    first_out_by_port: dict[str, float] = field(default_factory=dict)  # the same, per output port

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        # Sources have no inputs: their throughput is what they emit.
        n = self.items_in or self.items_out
        d["items_per_s"] = round(n / self.busy_s, 2) if self.busy_s > 0 else None
        d["busy_s"] = round(self.busy_s, 4)
        d["cpu_s"] = round(self.cpu_s, 4)
        d["open_s"] = round(self.open_s, 4)
        d["first_out_s"] = None if self.first_out_s is None else round(self.first_out_s, 4)
        d["first_out_by_port"] = {k: round(v, 4) for k, v in self.first_out_by_port.items()}
        return d


@dataclass
class _Worker:
    planned: PlannedNode
    node: Node
    ctx: NodeContext
    inbox: "queue.Queue[tuple[str, Any]]"
    stats: NodeStats
    pending_ends: dict[str, int] = field(default_factory=dict)  # input port -> sources not yet ended
    current: Payload | None = None
    opened: bool = False


class Scheduler:
    """Runs a validated :class:`Plan` once. Not reusable."""

    def __init__(
        self,
        plan: Plan,
        *,
        device: str,
        output_dir: Path,
        cache_dir: Path,
        cancel_event: threading.Event,
        progress: Callable[[str, int, int | None, str], None] | None = None,
        logger: logging.Logger | None = None,
        options: Mapping[str, Any] | None = None,
        queue_size: int | None = None,
        stop_event: threading.Event | None = None,
    ):
        self.plan = plan
        self.cancel_event = cancel_event
        self.started_at: float | None = None  # time.time() when run() started the nodes
        self._t0 = time.perf_counter()
        # A graceful stop ends the live sources' streams; the rest of the graph drains and finishes.
        self.stop_event = stop_event or threading.Event()
        self._opened = 0
        self._opened_lock = threading.Lock()  # opens run side by side
        self._all_open = threading.Event()
        self._failed = threading.Event()
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self.outputs: dict[str, list[Payload]] = {name: [] for name in plan.outputs}
        # On CPU, batched (model) nodes take turns: each batch already uses every core through
        # torch's intra-op threads, and two at once only oversubscribe them (measured 2-3x slower).
        self._cpu_lock = threading.Lock() if device == "cpu" else None
        self._open_gate = _OpenGate()
        # a live source starts only once every node is open: the others must not wait for it
        self._sources_waiting = {nid for nid, pn in plan.nodes.items() if not pn.inputs and not pn.cls.live}
        self._sources_lock = threading.Lock()
        self._sources_started = threading.Event()
        if not self._sources_waiting:
            self._sources_started.set()
        self._output_ports: dict[tuple[str, str], list[str]] = {}
        for name, ref in plan.outputs.items():
            self._output_ports.setdefault((ref.node, ref.port), []).append(name)
        base_logger = logger or logging.getLogger("avflow")
        self.workers: dict[str, _Worker] = {}
        for node_id, pn in plan.nodes.items():
            node = pn.cls(pn.config)
            cap = queue_size or pn.cls.queue_size
            ctx = NodeContext(
                graph=plan.name, node_id=node_id, device=device, output_dir=output_dir,
                cache_dir=cache_dir, logger=base_logger.getChild(node_id),
                progress=Progress(node_id, progress),
                connected_outputs=frozenset(p for p in pn.cls.outputs
                                            if pn.consumers.get(p) or (node_id, p) in self._output_ports),
                connected_inputs=frozenset(pn.inputs), cancel_event=self._failed,
                options=dict(options or {}), stop_event=self.stop_event)
            self.workers[node_id] = _Worker(
                planned=pn, node=node, ctx=ctx, inbox=queue.Queue(maxsize=cap),
                stats=NodeStats(node_id, pn.cls.type, queue_capacity=cap),
                pending_ends={port: len(refs) for port, refs in pn.inputs.items()})

    # -- public ----------------------------------------------------------------------------
    def run(self) -> dict[str, list[Payload]]:
        quiet_openmp()  # before any node's open() imports torch
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        trimmer = HeapTrimmer()
        threads = [threading.Thread(target=self._run_worker, args=(w,), name=f"avflow:{nid}", daemon=True)
                   for nid, w in self.workers.items()]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                if self.cancel_event.is_set():
                    self._failed.set()
                trimmer.maybe_trim()
                for t in threads:
                    t.join(timeout=_POLL)
        except KeyboardInterrupt:
            self.cancel_event.set()
            self._failed.set()
            for t in threads:
                t.join()
            raise
        if self._error is not None:
            raise self._error
        if self.cancel_event.is_set():
            raise Cancelled(f"graph '{self.plan.name}' was cancelled; every node was closed")
        return self.outputs

    @property
    def stats(self) -> list[NodeStats]:
        return [w.stats for w in self.workers.values()]

    # -- worker ----------------------------------------------------------------------------
    def _run_worker(self, w: _Worker) -> None:
        _name_os_thread(f"avf:{w.stats.node}")
        stage = "open"
        try:
            if w.planned.inputs:
                self._sources_started.wait(_SOURCE_HEAD_S)
            # Opens run side by side (imports are thread-safe; a light node need not wait for
            # every model's import), except those of nodes marked open_alone.
            with self._open_gate(bool(w.planned.cls.open_alone)):
                if self._failed.is_set():
                    raise _Stop
                t0 = time.perf_counter()
                w.opened = True  # close() runs even if open() fails half way
                w.node.open(w.ctx)
                w.stats.open_s = time.perf_counter() - t0
                with self._opened_lock:
                    self._opened += 1
                    if self._opened == len(self.workers):
                        self._all_open.set()
            if not w.planned.inputs:
                stage = "generate"
                self._run_source(w)
            else:
                stage = "process"
                self._run_consumer(w)
                stage = "finish"
                self._timed(w, w.node.finish, w.ctx)
            self._end_outputs(w)
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._fail(w, exc, stage)
        finally:
            self._source_started(w)
            try:
                if w.opened:
                    w.node.close(w.ctx)
            except Exception as exc:  # noqa: BLE001 - keep the first error, report this one too
                if self._error is None:
                    self._fail(w, exc, "close")
                else:
                    w.ctx.logger.warning("close() failed after an earlier error: %s", exc)

    def _source_started(self, w: _Worker) -> None:
        """``w`` (a source) has emitted on every connected output, or ended: one fewer to wait for."""
        if w.planned.inputs or w.stats.node not in self._sources_waiting:
            return
        with self._sources_lock:
            self._sources_waiting.discard(w.stats.node)
            if not self._sources_waiting:
                self._sources_started.set()

    def _fail(self, w: _Worker, exc: BaseException, stage: str) -> None:
        with self._error_lock:
            if self._error is None:
                cur = w.current
                self._error = NodeError(
                    self.plan.name, w.planned.id, w.planned.cls.type, exc,
                    pts=cur.pts if cur is not None else None,
                    time_base=cur.time_base if cur is not None else None, stage=stage)
                self._error.__cause__ = exc
        self._failed.set()

    def _run_source(self, w: _Worker) -> None:
        live = w.planned.cls.live
        while live and not self._all_open.wait(_POLL):  # a live input is not read while models load
            if self._failed.is_set():
                raise _Stop
        gen = w.node.generate(w.ctx)
        try:
            while True:
                if self._failed.is_set():
                    raise _Stop
                if live and self.stop_event.is_set():
                    break  # a graceful stop: this stream ends here, the graph finishes
                try:
                    out = self._call(w, next, gen)
                except StopIteration:
                    break
                self._emit(w, out)
        finally:
            gen.close()

    def _run_consumer(self, w: _Worker) -> None:
        spec = w.planned.cls.batch
        batch_port = spec.port if spec else None
        batch_size = int(getattr(w.node.config, spec.size_param)) if spec else 0
        pending: list[Payload] = []

        def flush() -> None:
            if pending:
                items = list(pending)
                pending.clear()
                w.current = items[0]
                batch = collate(batch_port, items, w.ctx.device)
                w.stats.batches += 1
                if self._cpu_lock is None:
                    self._timed(w, w.node.process_batch, batch, w.ctx)
                else:
                    # Emit after letting go of the lock: emitting blocks while the consumer's
                    # inbox is full, and a batched consumer drains it only by taking the lock.
                    with self._cpu_lock:
                        out = self._call(w, w.node.process_batch, batch, w.ctx)
                    self._emit(w, out)

        while any(n > 0 for n in w.pending_ends.values()):
            port, item = self._get(w)
            if isinstance(item, _End):
                w.pending_ends[port] -= 1
                if w.pending_ends[port] == 0:
                    if port == batch_port:
                        flush()
                    self._timed(w, w.node.end, port, w.ctx)
                continue
            w.stats.items_in += 1
            if port == batch_port:
                pending.append(item)
                if len(pending) >= batch_size:
                    flush()
            else:
                w.current = item
                self._timed(w, w.node.process, port, item, w.ctx)
        w.current = None

    def _timed(self, w: _Worker, fn: Callable, *args: Any) -> None:
        out = self._call(w, fn, *args)
        if isinstance(out, Iterator):  # a generator (e.g. a finish that re-reads a file): emit as it goes
            while True:
                try:
                    step = self._call(w, next, out)
                except StopIteration:
                    return
                self._emit(w, step)
        self._emit(w, out)

    @staticmethod
    def _call(w: _Worker, fn: Callable, *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            out = fn(*args)
        finally:  # a source's last next() raises StopIteration: its time counts, not as a call
            w.stats.busy_s += time.perf_counter() - t0
            w.stats.cpu_s += time.thread_time() - c0
        w.stats.calls += 1
        return out

    def _get(self, w: _Worker) -> tuple[str, Any]:
        while True:
            if self._failed.is_set():
                raise _Stop
            try:
                return w.inbox.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _put(self, target: _Worker, entry: tuple[str, Any]) -> None:
        while True:
            if self._failed.is_set():
                raise _Stop
            try:
                target.inbox.put(entry, timeout=_POLL)
                size = target.inbox.qsize()
                if size > target.stats.max_queue:
                    target.stats.max_queue = size
                return
            except queue.Full:
                continue

    def _emit(self, w: _Worker, out: Mapping[str, Payload | Sequence[Payload]] | None) -> None:
        if not out:
            return
        outputs = w.planned.cls.outputs
        for port, value in out.items():
            if port not in outputs:
                raise ValueError(f"node emitted on unknown output port '{port}'; "
                                 f"declared: {', '.join(outputs) or '(none)'}")
            items = value if isinstance(value, (list, tuple)) else [value]
            kind = outputs[port].kind
            for item in items:
                if not isinstance(item, kind):
                    raise TypeError(f"output '{port}' declares {kind.__name__} but got {type(item).__name__}")
                if port not in w.stats.first_out_by_port:
                    at = time.perf_counter() - self._t0
                    w.stats.first_out_by_port[port] = at
                    if w.stats.first_out_s is None:
                        w.stats.first_out_s = at
                    if not w.planned.inputs and set(w.stats.first_out_by_port) >= set(w.ctx.connected_outputs):
                        self._source_started(w)
                w.stats.items_out += 1
                for name in self._output_ports.get((w.planned.id, port), ()):
                    self.outputs[name].append(item)
                for node_id, in_port in w.planned.consumers.get(port, ()):
                    if kind is Payload:
                        want = self.workers[node_id].planned.cls.inputs[in_port].kind
                        if not isinstance(item, want):
                            raise TypeError(f"output '{port}' sent {type(item).__name__} to "
                                            f"{node_id}.{in_port}, which takes {want.__name__}")
                    self._put(self.workers[node_id], (in_port, item))

    def _end_outputs(self, w: _Worker) -> None:
        for port, consumers in w.planned.consumers.items():
            for node_id, in_port in consumers:
                self._put(self.workers[node_id], (in_port, _End(in_port)))

