"""Run one node on its own, without a graph (like MediaPipe's CalculatorRunner)."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..params import coerce, config_fields
from ..node import Node, NodeContext, Progress
from ..payloads import Payload
from ..runtime.batching import collate


class NodeRunner:
    """Drive a node through its lifecycle and collect what it emits.

    .. code-block:: python

        runner = NodeRunner(Resize, width=128)
        out = runner.run({"frames": frames})        # {"frames": [VideoFrame, ...]}

    Params are checked and converted like graph params. Items of different ports are fed in
    the order given by ``feed`` (``run`` feeds port after port). ``connected_outputs`` and
    ``connected_inputs`` say which ports the node sees as wired (default: all of them).
    """

    def __init__(self, node_cls: type[Node], *, output_dir: str | Path | None = None,
                 device: str = "cpu", connected_outputs: Iterable[str] | None = None,
                 connected_inputs: Iterable[str] | None = None, **params: Any):
        fields = config_fields(node_cls.Config)
        kwargs = {}
        for name, value in params.items():
            if name not in fields:
                raise TypeError(f"{node_cls.type} has no parameter '{name}'; valid: {', '.join(fields)}")
            kwargs[name] = coerce(value, fields[name][1]) if value is not None else None
        self.node = node_cls(node_cls.Config(**kwargs))
        self._tmp = None
        if output_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="avflow-noderunner-")
            output_dir = self._tmp.name
        self.progress_events: list[tuple[int, int | None]] = []
        self.ctx = NodeContext(
            graph="<test>", node_id=node_cls.type, device=device, output_dir=Path(output_dir),
            cache_dir=Path(output_dir) / ".cache", logger=logging.getLogger(f"avflow.test.{node_cls.type}"),
            progress=Progress(node_cls.type, lambda _n, d, t, _u: self.progress_events.append((d, t))),
            connected_outputs=frozenset(connected_outputs if connected_outputs is not None else node_cls.outputs),
            connected_inputs=frozenset(connected_inputs if connected_inputs is not None else node_cls.inputs),
            cancel_event=threading.Event())
        self.outputs: dict[str, list[Payload]] = {p: [] for p in node_cls.outputs}
        self._opened = False
        self._pending: list[Payload] = []
        self._ended: set[str] = set()
        self.batch_sizes: list[int] = []

    def _collect(self, out) -> None:
        for port, value in (out or {}).items():
            if port not in self.outputs:
                raise ValueError(f"{self.node.type} emitted on undeclared port '{port}'")
            self.outputs[port].extend(value if isinstance(value, (list, tuple)) else [value])

    def open(self) -> None:
        if not self._opened:
            self.node.open(self.ctx)
            self._opened = True

    def feed(self, port: str, item: Payload) -> None:
        self.open()
        spec = type(self.node).batch
        if spec is not None and port == spec.port:
            self._pending.append(item)
            if len(self._pending) >= int(getattr(self.node.config, spec.size_param)):
                self._flush(port)
        else:
            self._collect(self.node.process(port, item, self.ctx))

    def _flush(self, port: str) -> None:
        if self._pending:
            batch = collate(port, self._pending, self.ctx.device)
            self.batch_sizes.append(len(batch))
            self._pending = []
            self._collect(self.node.process_batch(batch, self.ctx))

    def end(self, port: str) -> None:
        """Signal that ``port`` has ended (flushes a partial batch on the batched port)."""
        self.open()
        spec = type(self.node).batch
        if spec is not None and port == spec.port:
            self._flush(port)
        self._collect(self.node.end(port, self.ctx))

    def finish(self) -> dict[str, list[Payload]]:
        """End every input port not ended yet, then call ``finish``."""
        self.open()
        for port in type(self.node).inputs:
            if port not in self._ended:
                self._ended.add(port)
                self.end(port)
        out = self.node.finish(self.ctx)
        for step in (out if isinstance(out, Iterator) else [out]):
            self._collect(step)
        return self.outputs

    def close(self) -> None:
        if self._opened:
            self.node.close(self.ctx)
            self._opened = False

    def generate(self) -> dict[str, list[Payload]]:
        """Run a source node to the end."""
        self.open()
        try:
            for out in self.node.generate(self.ctx):
                self._collect(out)
        finally:
            self.close()
        return self.outputs

    def run(self, inputs: dict[str, Iterable[Payload]] | None = None) -> dict[str, list[Payload]]:
        """Open, feed every input (port by port), finish and close; return the outputs."""
        if not type(self.node).inputs:
            return self.generate()
        try:
            for port, items in (inputs or {}).items():
                for item in items:
                    self.feed(port, item)
                self._ended.add(port)
                self.end(port)
            return self.finish()
        finally:
            self.close()

    def __del__(self):
        if getattr(self, "_tmp", None) is not None:  # __init__ may have failed before setting it
            self._tmp.cleanup()
