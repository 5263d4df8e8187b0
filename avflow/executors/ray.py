"""The Ray executor: a pool of Ray actors, each a :class:`~avflow.executors.worker.Worker`.

Actors keep their registry and their :class:`ResourceCache` (loaded models) for all the inputs
they run. Each actor reserves ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs, so with GPUs
requested Ray places actors only on GPU nodes and sets ``CUDA_VISIBLE_DEVICES`` for them
(``device="auto"`` then picks the GPU).

On a cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others, then ``avflow run ... --executor ray --ray-address auto`` on the head), avflow and its
plugins must be installed on every node, and the inputs and the output root must be on a
filesystem every node sees under the same path.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AvflowError, InputError
from .pool import drain
from .results import InputResult
from .worker import InputTask, Worker, WorkerSetup, configure_worker_logging

_log = logging.getLogger("avflow.executors")


class _RayWorker:
    """Actor body (made remote at run time, so importing avflow does not import Ray)."""

    def __init__(self, setup: WorkerSetup, cwd: str):
        if os.path.isdir(cwd):
            os.chdir(cwd)  # relative paths in graph params mean what they mean to the driver
        self.label = f"{socket.gethostname()}:{os.getpid()}"
        configure_worker_logging(setup.log_level, f"ray {self.label}")
        self._worker = Worker(setup, self.label)
        self._cancel = threading.Event()

    def ready(self) -> str:
        return self.label

    def run(self, task: InputTask) -> InputResult:
        self._cancel.clear()
        return self._worker.run(task, self._cancel)

    def cancel(self) -> None:
        self._cancel.set()


@dataclass
class _Actor:
    handle: Any
    ready_ref: Any
    label: str | None = None
    task: InputTask | None = None
    ref: Any = None


class RayPool:
    """``workers`` Ray actors (default: as many as the cluster's resources hold)."""

    kind = "ray"

    def __init__(self, setup: WorkerSetup, workers: int | None, n_tasks: int, *, address: str | None = None,
                 cpus_per_task: float = 1.0, gpus_per_task: float = 0.0):
        self.setup = setup
        self.requested = workers
        self.n_tasks = n_tasks
        self.address = address
        self.cpus = cpus_per_task
        self.gpus = gpus_per_task
        self.workers = 0
        self._actors: list[_Actor] = []
        self._owns_ray = False
        self._cancelling = False
        self._deaths_in_a_row = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            if self.address:
                try:
                    ray.init(address=self.address, logging_level=logging.WARNING)
                except (ConnectionError, RuntimeError) as exc:
                    raise InputError(f"--ray-address {self.address}: cannot connect to the Ray cluster "
                                     f"({str(exc).strip().splitlines()[0]}); use the address `ray start --head` "
                                     "printed, or 'auto' on the head node") from None
            else:
                ray.init(include_dashboard=False, logging_level=logging.WARNING)
            self._owns_ray = True
        elif self.address:
            _log.info("Ray is already initialised in this process; --ray-address %s is not used", self.address)
        self.workers = self._count(ray.cluster_resources())
        self._cls = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_concurrency=2,
                               max_restarts=0)(_RayWorker)
        self._setup_ref = ray.put(self.setup)
        for _ in range(self.workers):
            self._actors.append(self._spawn())

    def _count(self, resources: dict[str, float]) -> int:
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        if self.gpus > 0 and gpus < self.gpus:
            raise InputError(f"--gpus-per-task {self.gpus:g}: the Ray cluster has {gpus:g} GPU(s); "
                             "start GPU nodes or run with --gpus-per-task 0")
        if self.cpus > cpus:
            raise InputError(f"--cpus-per-task {self.cpus:g}: the Ray cluster has only {cpus:g} CPU(s)")
        if self.requested is not None:
            return max(1, min(self.requested, self.n_tasks))
        fit = math.floor(cpus / self.cpus) if self.cpus > 0 else self.n_tasks
        if self.gpus > 0:
            fit = min(fit, math.floor(gpus / self.gpus))
        return max(1, min(fit, self.n_tasks))

    def _spawn(self) -> _Actor:
        handle = self._cls.remote(self._setup_ref, os.getcwd())
        return _Actor(handle, handle.ready.remote())

    def close(self) -> None:
        import ray

        for a in self._actors:
            ray.kill(a.handle, no_restart=True)
        self._actors.clear()
        if self._owns_ray:
            ray.shutdown()

    # -- work --------------------------------------------------------------------------------
    @property
    def idle(self) -> int:
        return sum(1 for a in self._actors if a.label is not None and a.task is None)

    @property
    def busy(self) -> int:
        return sum(1 for a in self._actors if a.task is not None)

    def submit(self, task: InputTask) -> None:
        actor = next(a for a in self._actors if a.label is not None and a.task is None)
        actor.task = task
        actor.ref = actor.handle.run.remote(task)

    def poll(self, timeout: float) -> list[InputResult]:
        import ray

        by_ref = {}
        for a in self._actors:
            if a.label is None:
                by_ref[a.ready_ref] = a
            elif a.ref is not None:
                by_ref[a.ref] = a
        if not by_ref:
            time.sleep(timeout)
            return []
        refs = list(by_ref)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[InputResult] = []
        for ref in ready:
            a = by_ref[ref]
            try:
                value = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                if a.label is None:
                    raise AvflowError(f"a Ray worker could not start: {exc}") from None
                out.extend(self._replace(a, exc))
                continue
            except ray.exceptions.RayError as exc:
                if a.label is None:
                    raise AvflowError(f"a Ray worker could not start: {exc}") from None
                out.append(self._failed(a, f"Ray task failed: {exc}"))
                continue
            if a.label is None:
                a.label = value
            else:
                a.task, a.ref = None, None
                self._deaths_in_a_row = 0
                out.append(value)
        return out

    def _failed(self, a: _Actor, error: str, status: str = "failed") -> InputResult:
        task = a.task
        a.task, a.ref = None, None
        return InputResult(input=Path(task.input), status=status, output_dir=Path(task.final_dir),
                           error=error, worker=a.label)

    def _replace(self, a: _Actor, exc: BaseException) -> list[InputResult]:
        self._actors.remove(a)
        out = []
        if a.task is not None:
            _log.warning("Ray worker %s died while running %s; starting another", a.label, a.task.input)
            out.append(self._failed(a, f"Ray worker died while running this input: {type(exc).__name__}"))
        self._deaths_in_a_row += 1
        if self._deaths_in_a_row > 3 * max(1, self.workers):
            raise AvflowError(f"Ray workers keep dying ({exc}); giving up")
        if not self._cancelling:
            self._actors.append(self._spawn())
        return out

    def cancel(self, grace_s: float) -> list[InputResult]:
        """Interrupt the running inputs: ask the actors to stop, then kill those that do not."""
        import ray

        self._cancelling = True
        for a in self._actors:
            if a.task is not None:
                a.handle.cancel.remote()
        out = drain(self, grace_s)
        for a in list(self._actors):
            if a.task is not None:
                ray.kill(a.handle, no_restart=True)
                out.append(self._failed(a, "cancelled; worker stopped", status="interrupted"))
        return out
