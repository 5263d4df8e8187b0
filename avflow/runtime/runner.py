"""The embeddable graph runner.

.. code-block:: python

    import avflow

    runner = avflow.Runner("graphs/transcode.yaml", params={"video": "in.mp4"},
                           output_dir="out/", progress=lambda ev: print(ev))
    result = runner.run()               # validates first; raises GraphValidationError, NodeError
    print(result.outputs["video"].path)

A runner owns everything it uses (its registry, its threads, its cancellation event): there is
no global state, so several runners may work in one process at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import GraphValidationError, Issue
from ..graph.load import load_graph
from ..graph.spec import GraphSpec
from ..graph.validate import Plan, validate
from ..io import write_text_atomic
from ..payloads import Payload
from ..registry import Registry
from .batching import resolve_device
from .scheduler import NodeStats, Scheduler


@dataclass(frozen=True)
class ProgressEvent:
    """A node reported progress: ``done`` of ``total`` (None if unknown) ``unit``."""

    node: str
    done: int
    total: int | None
    unit: str


@dataclass
class RunResult:
    """What a run produced.

    ``outputs`` maps each graph output name to its payload (or a list when the port emitted
    several, None when it emitted nothing).
    """

    outputs: dict[str, Any]
    output_dir: Path
    stats: list[NodeStats] = field(default_factory=list)
    wall_s: float = 0.0
    plan: Plan | None = None
    started_at: float | None = None  # wall clock (``time.time()``) when the nodes started

    def profile(self) -> dict[str, Any]:
        return {"graph": self.plan.name if self.plan else None, "wall_s": round(self.wall_s, 4),
                "started_at": self.started_at, "nodes": [s.as_dict() for s in self.stats]}


def default_cache_dir() -> Path:
    env = os.environ.get("AVFLOW_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "avflow"


class Runner:
    """Load, validate and run one graph.

    :param graph: a :class:`GraphSpec`, a path to a YAML file, the name of a shipped graph
        (``"diarize"``: ``Registry.find_graph``), a YAML string or a dict.
    :param params: overrides, ``{"video": ..., "node_id.param": ...}``.
    :param registry: node types to use (default: every plugin found via entry points).
    :param output_dir: where nodes write files (default ``out/<graph name>``).
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    :param progress: called with a :class:`ProgressEvent` whenever a node reports progress.
    :param cancel_event: set it (or call :meth:`cancel`) to stop the run; nodes are closed.
    :param cli_strings: ``params`` values are raw ``--set`` text, parsed against declared types.
    """

    def __init__(
        self,
        graph: GraphSpec | str | Path | Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        registry: Registry | None = None,
        output_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        device: str = "auto",
        progress: Callable[[ProgressEvent], None] | None = None,
        cancel_event: threading.Event | None = None,
        logger: logging.Logger | None = None,
        queue_size: int | None = None,
        cli_strings: bool = False,
    ):
        self.registry = registry if registry is not None else Registry.default()
        if isinstance(graph, str) and "\n" not in graph and not Path(graph).exists():
            graph = self.registry.find_graph(graph) or graph  # a shipped graph's name
        self.spec = graph if isinstance(graph, GraphSpec) else load_graph(
            dict(graph) if isinstance(graph, Mapping) else graph)
        self.params = dict(params or {})
        self.output_dir = Path(output_dir) if output_dir is not None else Path("out") / self.spec.name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.device = device
        self._progress = progress
        self.cancel_event = cancel_event or threading.Event()
        self.logger = logger or logging.getLogger("avflow")
        self.queue_size = queue_size
        self.cli_strings = cli_strings
        self._lock = threading.Lock()
        self.stop_event = threading.Event()
        self._plan: Plan | None = None

    def validate(self, *, require_all: bool = True) -> Plan:
        """Check the graph and the parameters; nothing is opened."""
        return validate(self.spec, self.registry, self.params, require_all=require_all,
                        cli_strings=self.cli_strings)

    def cancel(self) -> None:
        """Ask the run to stop; :meth:`run` then raises :class:`avflow.Cancelled`."""
        self.cancel_event.set()

    @property
    def is_live(self) -> bool:
        """Whether the graph being run reads a live source (:attr:`avflow.Node.live`)."""
        plan = self._plan
        return plan is not None and any(pn.cls.live for pn in plan.nodes.values())

    def stop(self) -> bool:
        """End the run gracefully: live sources end their streams, every node finishes and
        :meth:`run` returns what was made of the input read so far. Returns False, and does
        nothing, when the graph has no live source (stop it with :meth:`cancel` then)."""
        if not self.is_live:
            return False
        self.stop_event.set()
        return True

    def run(self) -> RunResult:
        """Validate, then run the graph to the end in this process."""
        plan = self._plan = self.validate()
        try:
            device = resolve_device(self.device)
        except ValueError as exc:
            raise GraphValidationError([Issue(str(exc), field="device")], graph=plan.name) from None
        created = _missing_dirs(self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._run(plan, device)
        except BaseException:
            # A failed run leaves no empty output folder behind (the folders it created).
            for d in created:
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if empty: outputs already written stay
            raise

    def _run(self, plan: Plan, device: str) -> RunResult:
        sink = None
        if self._progress is not None:
            lock, cb = self._lock, self._progress

            def sink(node: str, done: int, total: int | None, unit: str) -> None:
                with lock:
                    cb(ProgressEvent(node, done, total, unit))

        scheduler = Scheduler(plan, device=device, output_dir=self.output_dir, cache_dir=self.cache_dir,
                              cancel_event=self.cancel_event, progress=sink, logger=self.logger,
                              queue_size=self.queue_size, stop_event=self.stop_event,
                              options={"graph_params": dict(plan.params)})
        t0 = time.perf_counter()
        collected = scheduler.run()
        outputs = {name: _unwrap(items) for name, items in collected.items()}
        return RunResult(outputs=outputs, output_dir=self.output_dir, stats=scheduler.stats,
                         wall_s=time.perf_counter() - t0, plan=plan, started_at=scheduler.started_at)


def _missing_dirs(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    out = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def _unwrap(items: list[Payload]) -> Any:
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def run(graph: GraphSpec | str | Path | Mapping[str, Any], params: Mapping[str, Any] | None = None,
        **kwargs: Any) -> RunResult:
    """Run a graph in-process and return its outputs (see :class:`Runner` for the options)."""
    return Runner(graph, params, **kwargs).run()


def write_profile(result: RunResult, path: Path) -> Path:
    return write_text_atomic(path, json.dumps(result.profile(), indent=2))


def format_profile(result: RunResult) -> str:
    """A table of per-node timings and throughput."""
    rows = [("node", "type", "in", "out", "batches", "busy s", "cpu s", "open s", "first out s", "items/s",
             "max queue")]
    for s in result.stats:
        d = s.as_dict()
        rows.append((s.node, s.type, str(s.items_in), str(s.items_out), str(s.batches),
                     f"{s.busy_s:.3f}", f"{s.cpu_s:.3f}", f"{s.open_s:.3f}",
                     "-" if s.first_out_s is None else f"{s.first_out_s:.3f}",
                     "-" if d["items_per_s"] is None else f"{d['items_per_s']:.1f}",
                     f"{s.max_queue}/{s.queue_capacity}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"wall time: {result.wall_s:.3f} s")
    return "\n".join(lines)
