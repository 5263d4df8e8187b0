"""The worker side of a many-input run: run the graph on one input, atomically.

Every executor (in-process, process pool, Ray actors) makes one :class:`Worker` per worker
process and calls :meth:`Worker.run` for each input it is given. The worker builds its node
registry once and keeps one :class:`ResourceCache` for all its runs, so nodes that opt in load
their models once per worker, not once per input.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import AvflowError, Cancelled, InputError
from ..graph.spec import GraphSpec
from ..graph.validate import validate
from ..registry import Registry
from ..runtime.batching import resolve_device
from ..runtime.runner import default_cache_dir
from ..runtime.scheduler import Scheduler
from .resources import ResourceCache
from .results import InputResult
from .store import publish

#: Key under which nodes find the worker's :class:`ResourceCache` in ``ctx.options``.
RESOURCES_OPTION = "resources"


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, sent once when it starts (picklable).

    :param nodes: ``(node class, plugin name)`` pairs to register; None: the worker loads
        every plugin found through entry points, as :meth:`Registry.default` does.
    """

    spec: GraphSpec
    params: dict[str, Any]
    input_param: str
    cli_strings: bool = False
    device: str = "auto"
    fingerprint: str = ""
    nodes: tuple[tuple[type, str], ...] | None = None
    cache_dir: str | None = None
    log_level: int = logging.WARNING

    def registry(self) -> Registry:
        if self.nodes is None:
            return Registry.default()
        registry = Registry()
        for cls, plugin in self.nodes:
            registry.add(cls, plugin)
        return registry


@dataclass(frozen=True)
class InputTask:
    """One input to run: write into ``tmp_dir``, then rename it to ``final_dir``."""

    index: int
    input: str
    name: str
    tmp_dir: str
    final_dir: str


class Worker:
    """Runs the graph on one input at a time (see the module docstring)."""

    def __init__(self, setup: WorkerSetup, label: str | None = None, registry: Registry | None = None):
        self.setup = setup
        self.registry = registry if registry is not None else setup.registry()
        self.resources = ResourceCache()
        self.label = label or f"{socket.gethostname()}:{os.getpid()}"
        self.logger = logging.getLogger("avflow")
        self.cache_dir = Path(setup.cache_dir) if setup.cache_dir else default_cache_dir()
        try:  # once per worker: the device (and torch's import) is the same for all its inputs
            self.device = resolve_device(setup.device)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def run(self, task: InputTask, cancel_event: CancelFlag) -> InputResult:
        """Run the graph on ``task.input``; never raises for a failure of that input.

        The outputs appear under ``task.final_dir`` only when the run succeeded; a failed or
        cancelled run leaves nothing (``KeyboardInterrupt`` is re-raised after cleaning up).
        """
        s = self.setup
        tmp, final = Path(task.tmp_dir), Path(task.final_dir)
        t0 = time.perf_counter()
        result = InputResult(input=Path(task.input), status="failed", output_dir=final, worker=self.label)
        try:
            plan = validate(s.spec, self.registry, {**s.params, s.input_param: task.input},
                            cli_strings=s.cli_strings)
            tmp.mkdir(parents=True, exist_ok=False)
            scheduler = Scheduler(
                plan, device=self.device, output_dir=tmp, cache_dir=self.cache_dir, cancel_event=cancel_event,
                logger=self.logger,
                options={"graph_params": dict(plan.params), RESOURCES_OPTION: self.resources})
            scheduler.run()
            files = publish(tmp, final, {"input": task.input, "graph": s.spec.name, "fingerprint": s.fingerprint})
            result.outputs = [final / rel for rel in files]
            result.status = "ok"
        except Cancelled:
            result.status, result.error = "interrupted", "cancelled before it finished"
        except AvflowError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the others
            self.logger.debug("input %s failed", task.input, exc_info=True)
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            if result.status == "failed" and cancel_event.is_set():
                # A node that stopped on cancellation by raising is still a cancellation.
                result.status, result.error = "interrupted", "cancelled before it finished"
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            result.seconds = time.perf_counter() - t0
        return result

    def close(self) -> None:
        self.resources.clear()


def configure_worker_logging(level: int, label: str) -> None:
    """Warnings of a worker process go to its stderr, prefixed with the worker's label."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"avflow[{label}] %(name)s: %(message)s"))
    root = logging.getLogger("avflow")
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
    root.propagate = False


def limit_threads(threads: int) -> None:
    """Keep a worker's math libraries to ``threads`` threads (several workers share the cores)."""
    import sys

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
