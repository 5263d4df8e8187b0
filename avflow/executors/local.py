"""The local executor: a pool of worker processes on this machine.

Workers are started with the ``spawn`` method (never ``fork``: the driver has threads), each
builds its registry once and runs one input at a time, talking to the driver over its own pipe.
A worker that dies (killed, out of memory, a crash in native code) fails only the input it was
running and is replaced. Workers ignore Ctrl-C: the driver cancels them through a shared event
so their nodes close cleanly, and on Linux they are killed if the driver itself dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AvflowError, InputError
from ..runtime.libc import PR_SET_PDEATHSIG, prctl
from .pool import drain
from .results import InputResult
from .worker import InputTask, Worker, WorkerSetup, configure_worker_logging, limit_threads

_log = logging.getLogger("avflow.executors")


@dataclass
class _Slot:
    wid: int
    proc: Any  # multiprocessing.Process
    conn: Any  # multiprocessing.connection.Connection
    label: str | None = None
    task: InputTask | None = None
    ready: bool = False


class LocalPool:
    """``workers`` processes, each running :class:`Worker` (see the module docstring)."""

    kind = "local"

    def __init__(self, setup: WorkerSetup, workers: int, threads_per_worker: int = 1):
        self.setup = setup
        self.workers = workers
        self.threads = max(1, threads_per_worker)
        self._mp = multiprocessing.get_context("spawn")
        self._cancel = self._mp.Event()
        self._slots: list[_Slot] = []
        self._next_id = 0
        self._deaths_in_a_row = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        for _ in range(self.workers):
            self._slots.append(self._spawn())

    def _spawn(self) -> _Slot:
        wid = self._next_id
        self._next_id += 1
        parent, child = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(target=_worker_main, name=f"avflow-worker-{wid}",
                                args=(self.setup, wid, child, self._cancel, self.threads, os.getpid()))
        proc.start()
        child.close()
        return _Slot(wid, proc, parent)

    def close(self) -> None:
        """Stop every worker (after its current input, which :meth:`cancel` interrupts)."""
        for s in self._slots:
            try:
                s.conn.send(None)
            except (OSError, ValueError):
                pass
        for s in self._slots:
            # Idle workers only hold loaded models: give them a moment to close, then stop them.
            s.proc.join(timeout=2)
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join(timeout=5)
            s.conn.close()
        self._slots.clear()

    # -- work --------------------------------------------------------------------------------
    @property
    def idle(self) -> int:
        return sum(1 for s in self._slots if s.ready and s.task is None)

    @property
    def busy(self) -> int:
        return sum(1 for s in self._slots if s.task is not None)

    def submit(self, task: InputTask) -> None:
        slot = next(s for s in self._slots if s.ready and s.task is None)
        slot.task = task
        slot.conn.send(task)

    def poll(self, timeout: float) -> list[InputResult]:
        """Wait up to ``timeout`` s; return the inputs that finished (or whose worker died)."""
        waitables = [s.conn for s in self._slots] + [s.proc.sentinel for s in self._slots]
        multiprocessing.connection.wait(waitables, timeout)
        out: list[InputResult] = []
        for s in list(self._slots):
            dead = False
            try:
                while s.conn.poll():
                    msg = s.conn.recv()
                    r = self._handle(s, msg)
                    if r is not None:
                        out.append(r)
            except (EOFError, OSError):
                dead = True
            if dead or not s.proc.is_alive():
                out.extend(self._replace(s))
        return out

    def _handle(self, s: _Slot, msg: tuple) -> InputResult | None:
        kind = msg[0]
        if kind == "ready":
            s.ready, s.label = True, msg[1]
            return None
        if kind == "failed":
            error = InputError if msg[1] == "InputError" else AvflowError
            raise error(f"a local worker could not start: {msg[2]}")
        if kind == "done":
            s.task = None
            self._deaths_in_a_row = 0
            return msg[1]
        raise AvflowError(f"unexpected message from worker {s.wid}: {kind!r}")

    def _replace(self, s: _Slot) -> list[InputResult]:
        s.proc.join(timeout=5)
        code = s.proc.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit status {code}")
        self._slots.remove(s)
        s.conn.close()
        if not s.ready:
            raise AvflowError(
                f"a local worker process exited while starting ({how}); its error is printed above. With "
                "the spawn start method the main script is imported again in each worker: guard it with "
                "`if __name__ == '__main__':` (and do not run it from stdin)")
        out = []
        if s.task is not None:
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            out.append(InputResult(input=Path(s.task.input), status="failed", output_dir=Path(s.task.final_dir),
                                   error=f"worker process died while running this input: {how}{hint}",
                                   worker=s.label))
            _log.warning("worker %s died (%s) while running %s; starting another", s.wid, how, s.task.input)
        else:
            _log.warning("worker %s died (%s); starting another", s.wid, how)
        self._deaths_in_a_row += 1
        if self._deaths_in_a_row > 3 * self.workers:
            raise AvflowError(f"local workers keep dying ({how}); giving up")
        if not self._cancel.is_set():
            self._slots.append(self._spawn())
        return out

    def cancel(self, grace_s: float) -> list[InputResult]:
        """Interrupt the running inputs: wait up to ``grace_s`` for their nodes to close, then kill."""
        self._cancel.set()
        out = drain(self, grace_s)
        for s in list(self._slots):
            if s.task is not None:
                s.proc.kill()
                s.proc.join(timeout=5)
                out.append(InputResult(input=Path(s.task.input), status="interrupted",
                                       output_dir=Path(s.task.final_dir), error="cancelled; worker stopped",
                                       worker=s.label))
                s.task = None
        return out


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel kill this worker when the driver dies (no orphan writes on)."""
    if not prctl(PR_SET_PDEATHSIG, signal.SIGKILL):
        return
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _worker_main(setup: WorkerSetup, wid: int, conn, cancel_event, threads: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which cancels us
    _die_with_parent(parent_pid)
    label = f"{socket.gethostname()}:{os.getpid()}"
    configure_worker_logging(setup.log_level, f"worker {wid}")
    limit_threads(threads)
    try:
        worker = Worker(setup, label)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the run
        conn.send(("failed", type(exc).__name__, str(exc) if isinstance(exc, InputError)
                   else f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", label))
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                break
            if task is None:
                break
            conn.send(("done", worker.run(task, cancel_event)))
    finally:
        worker.close()
        conn.close()
