"""The sequential executor: every input in this process, one after the other (the baseline)."""

from __future__ import annotations

from pathlib import Path

from ..registry import Registry
from .results import InputResult
from .worker import CancelFlag, InputTask, Worker, WorkerSetup


class SequentialPool:
    """One in-process :class:`Worker`; :meth:`poll` runs the submitted input to its end."""

    kind = "sequential"

    def __init__(self, setup: WorkerSetup, registry: Registry, cancel_event: CancelFlag):
        self.setup = setup
        self.registry = registry
        self.cancel_event = cancel_event
        self.workers = 1
        self._worker: Worker | None = None
        self._task: InputTask | None = None

    def start(self) -> None:
        self._worker = Worker(self.setup, registry=self.registry)

    @property
    def idle(self) -> int:
        return int(self._task is None)

    @property
    def busy(self) -> int:
        return int(self._task is not None)

    def submit(self, task: InputTask) -> None:
        self._task = task

    def poll(self, timeout: float) -> list[InputResult]:
        if self._task is None or self._worker is None:
            return []
        result = self._worker.run(self._task, self.cancel_event)
        self._task = None
        return [result]

    def cancel(self, grace_s: float) -> list[InputResult]:
        # Only reached when Ctrl-C interrupted poll(): the worker already removed its temp folder.
        task, self._task = self._task, None
        if task is None:
            return []
        return [InputResult(input=Path(task.input), status="interrupted", output_dir=Path(task.final_dir),
                            error="interrupted (Ctrl-C)")]

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
