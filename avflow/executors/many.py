"""``run_many``: one run of a graph per input, in parallel, resumable, never half-written."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, Union

from ..errors import AvflowError, GraphValidationError, InputError, Issue
from ..graph.load import load_graph
from ..graph.spec import GraphSpec
from ..graph.validate import validate
from ..registry import Registry
from ..runtime.batching import resolve_device
from .inputs import assign_names
from .results import InputResult, ManyProgress, ManyResult
from .store import OutputRoot, now_iso
from .worker import InputTask, WorkerSetup

_log = logging.getLogger("avflow.executors")

Executor = Literal["sequential", "local", "ray"]
ProgressArg = Union[None, Literal["bar"], Callable[[ManyProgress], None]]

#: Seconds the running inputs get to close their nodes after a cancellation before being killed.
CANCEL_GRACE_S = 10.0
_POLL_S = 0.2


def run_many(
    graph: GraphSpec | str | Path | Mapping[str, Any],
    inputs: Sequence[str | Path],
    *,
    input_param: str | None = None,
    params: Mapping[str, Any] | None = None,
    cli_strings: bool = False,
    output_root: str | Path,
    executor: Executor = "local",
    workers: int | None = None,
    resume: bool = False,
    device: str = "auto",
    ray_address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    progress: ProgressArg = None,
    cancel_event: threading.Event | None = None,
    registry: Registry | None = None,
) -> ManyResult:
    """Run ``graph`` once per input, each into its own folder of ``output_root``.

    The graph and the shared ``params`` are validated once, before any input runs
    (:class:`~avflow.GraphValidationError`). Input ``x/clip.mp4`` is bound to ``input_param``
    and writes into ``output_root/clip`` (``clip-1``, ``clip-2``... when stems collide, in
    sorted input order); the folder appears only when its run succeeded. Each finished input
    is appended to ``output_root/manifest.jsonl``. A failing input does not stop the others.

    :param graph: a :class:`GraphSpec`, a YAML path, a YAML string or a dict.
    :param inputs: input paths (see :func:`collect_inputs`).
    :param input_param: the graph parameter each input is bound to (default: the graph's first
        required parameter of type ``path``).
    :param params: overrides shared by every input, as for :class:`avflow.Runner`.
    :param cli_strings: ``params`` values are raw ``--set`` text.
    :param executor: ``local`` (worker processes), ``ray`` (Ray actors) or ``sequential``
        (this process, one input after the other).
    :param workers: worker processes or actors (default: one per ``cpus_per_task`` CPUs).
    :param resume: skip inputs whose folder is complete; run the others (failed, interrupted,
        new) again.
    :param ray_address: an existing Ray cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``);
        None starts a local one unless Ray is already initialised in this process.
    :param cpus_per_task: CPUs reserved per worker (Ray); sizes the default pool (local).
    :param gpus_per_task: GPUs reserved per Ray actor, so GPU graphs go to GPU nodes.
    :param progress: ``"bar"`` (tqdm on stderr), a callable receiving :class:`ManyProgress`,
        or None.
    :param cancel_event: set it to stop: running inputs are interrupted (nodes closed, nothing
        written), the others are not started, and the result has ``interrupted=True``.
    :param registry: node types (default: every plugin found via entry points). Local and Ray
        workers register the same classes, which must be importable there.
    :raises GraphValidationError: the graph or the shared parameters are wrong.
    :raises InputError: the output root is used by another run, or the executor is unknown.
    :raises KeyboardInterrupt: after Ctrl-C, once the running inputs are interrupted and recorded.
    """
    t0 = time.perf_counter()
    spec = graph if isinstance(graph, GraphSpec) else load_graph(dict(graph) if isinstance(graph, Mapping) else graph)
    if executor not in ("sequential", "local", "ray"):
        raise InputError(f"unknown executor {executor!r}; valid: sequential, local, ray")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if cpus_per_task < 0 or gpus_per_task < 0:
        raise InputError("cpus_per_task and gpus_per_task must not be negative")
    if progress not in (None, "bar") and not callable(progress):
        raise InputError(f"progress must be None, 'bar' or a callable, got {progress!r}")
    shared = dict(params or {})
    # Workers rebuild a default registry from entry points; a caller's registry is shipped as classes.
    ship_nodes = registry is not None
    registry = registry if registry is not None else Registry.default()
    input_param = _input_param(spec, input_param, shared)
    paths = _unique_inputs(inputs)
    # Validate once, with a stand-in input: nothing runs if the graph or the shared params are wrong.
    validate(spec, registry, {**shared, input_param: paths[0] if paths else "input"},
             require_all=bool(paths), cli_strings=cli_strings)

    if executor != "ray":
        # Resolved here once: local workers then import torch only if their nodes need it.
        # Ray actors resolve it themselves, on the node (and GPU) Ray gives them.
        try:
            device = resolve_device(device)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    fingerprint = _fingerprint(spec, shared)
    setup = WorkerSetup(
        spec=spec, params=shared, input_param=input_param, cli_strings=cli_strings, device=device,
        fingerprint=fingerprint, log_level=logging.getLogger("avflow").getEffectiveLevel(),
        nodes=tuple((e.cls, e.plugin) for _, e in registry) if ship_nodes else None)
    root = OutputRoot(output_root)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"

    with root.lock():
        root.clean_tmp()
        results: dict[str, InputResult] = {}
        todo = _plan(root, paths, spec, resume, fingerprint, run_id, results)
        n_workers = _n_workers(executor, workers, cpus_per_task, len(todo))
        reporter = _Reporter(progress, total=len(paths), skipped=len(results), to_run=len(todo), t0=t0)
        interrupted: bool | str = False
        try:
            if todo:
                pool = _make_pool(executor, setup, registry, workers, n_workers, len(todo), ray_address,
                                  cpus_per_task, gpus_per_task, cancel_event)
                interrupted = _drive(pool, todo, results, root, spec, fingerprint, run_id, reporter, cancel_event)
                n_workers = pool.workers
        finally:
            reporter.close()
        for task in todo:
            if task.input not in results:  # never started before the run stopped
                results[task.input] = InputResult(input=Path(task.input), status="interrupted",
                                                  output_dir=Path(task.final_dir), error="not started")
    result = ManyResult(results=[results[p] for p in paths], output_root=root.root, manifest=root.manifest.path,
                        executor=executor, workers=n_workers if todo else 0, wall_s=time.perf_counter() - t0,
                        interrupted=interrupted is not False)
    if interrupted == "keyboard":
        _log.warning("%s", result.summary())
        raise KeyboardInterrupt
    return result


# -- set-up --------------------------------------------------------------------------------
def _input_param(spec: GraphSpec, name: str | None, shared: Mapping[str, Any]) -> str:
    if name is None:
        name = next((p.name for p in spec.params.values() if p.required and p.type == "path"), None)
        if name is None:
            paths = [p.name for p in spec.params.values() if p.type == "path"]
            raise GraphValidationError([Issue(
                "graph has no required parameter of type path to bind each input to; pass --input-param "
                f"NAME (path parameters: {', '.join(paths) or 'none'})", spec.file, field="--input-param")],
                graph=spec.name)
    elif name not in spec.params:
        raise GraphValidationError([Issue(
            f"--input-param {name}: no graph parameter '{name}'; parameters: {', '.join(spec.params) or '(none)'}",
            spec.file, field="--input-param")], graph=spec.name)
    if name in shared:
        raise GraphValidationError([Issue(
            f"--set {name}=... conflicts with --inputs: each input is bound to '{name}'", spec.file,
            field=name)], graph=spec.name)
    return name


def _unique_inputs(inputs: Sequence[str | Path]) -> list[str]:
    seen: dict[str, None] = {}
    for p in inputs:
        a = os.path.abspath(os.path.expanduser(str(p)))
        if a in seen:
            _log.warning("input %s is listed twice; it runs once", a)
        seen[a] = None
    return list(seen)


def _fingerprint(spec: GraphSpec, shared: Mapping[str, Any]) -> str:
    blob = json.dumps({"graph": spec.to_dict(), "params": {k: str(v) for k, v in shared.items()}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _n_workers(executor: str, workers: int | None, cpus_per_task: float, n_todo: int) -> int:
    """Workers to start (for Ray, the pool sizes itself from the cluster when ``workers`` is None)."""
    if executor == "sequential" or n_todo == 0:
        return 1
    if workers is not None:
        return max(1, min(workers, n_todo))
    cores = _cores()
    return max(1, min(int(cores / cpus_per_task) if cpus_per_task > 0 else cores, n_todo))


def _make_pool(executor, setup, registry, workers, n_workers, n_todo, ray_address, cpus, gpus, cancel_event):
    if executor == "sequential":
        from .sequential import SequentialPool

        return SequentialPool(setup, registry, cancel_event if cancel_event is not None else threading.Event())
    if executor == "local":
        from .local import LocalPool

        return LocalPool(setup, n_workers, threads_per_worker=max(1, _cores() // n_workers))
    from .ray import RayPool

    return RayPool(setup, workers, n_todo, address=ray_address, cpus_per_task=cpus, gpus_per_task=gpus)


def _plan(root: OutputRoot, paths: list[str], spec: GraphSpec, resume: bool, fingerprint: str, run_id: str,
          results: dict[str, InputResult]) -> list[InputTask]:
    """Name each input's folder; with ``resume``, record complete ones as skipped. Returns the rest."""
    latest = root.manifest.latest()
    markers = root.markers()
    present = root.entries()
    known = {inp: m["name"] for inp, m in markers.items()}
    for inp, entry in latest.items():
        name = entry.get("output_dir")
        if inp not in known and isinstance(name, str) and name and name not in present:
            known[inp] = name  # a failed input keeps its name across runs
    if len(set(known.values())) != len(known):
        known = {inp: m["name"] for inp, m in markers.items()}
    names = assign_names(paths, known, taken=present)
    todo: list[InputTask] = []
    stale = 0
    for index, inp in enumerate(paths):
        name = names[inp]
        final = root.root / name
        marker = root.complete(name, inp) if resume else None
        if marker is not None:
            results[inp] = InputResult(input=Path(inp), status="skipped", output_dir=final,
                                       outputs=[final / rel for rel in marker["files"]])
            stale += marker.get("fingerprint") != fingerprint
            if latest.get(inp, {}).get("status") != "ok":
                # Killed between the rename and its manifest line: the folder is complete, say so.
                root.manifest.append(_entry(results[inp], root, spec, fingerprint, run_id, status="ok",
                                            note="recovered: folder complete, manifest line was missing"))
            continue
        todo.append(InputTask(index, inp, name, str(root.temp_dir(name)), str(final)))
    if stale:
        _log.warning("%d complete output folder(s) in %s were made with other graph parameters; kept as they "
                     "are (run without --resume to rebuild them)", stale, root.root)
    return todo


def _entry(r: InputResult, root: OutputRoot, spec: GraphSpec, fingerprint: str, run_id: str,
           status: str | None = None, note: str | None = None) -> dict[str, Any]:
    def rel(p: Path) -> str:
        try:
            return p.relative_to(root.root).as_posix()
        except ValueError:
            return str(p)

    entry = {"input": str(r.input), "status": status or r.status, "output_dir": rel(r.output_dir),
             "outputs": [rel(p) for p in r.outputs], "error": r.error, "seconds": round(r.seconds, 3),
             "time": now_iso(), "worker": r.worker, "graph": spec.name, "fingerprint": fingerprint, "run": run_id}
    if note:
        entry["note"] = note
    return entry


# -- the driving loop ----------------------------------------------------------------------
def _drive(pool, todo: list[InputTask], results: dict[str, InputResult], root: OutputRoot, spec: GraphSpec,
           fingerprint: str, run_id: str, reporter: "_Reporter", cancel_event) -> bool | str:
    """Feed the pool until every task is done; returns False, True (cancelled) or "keyboard"."""
    pending = deque(todo)
    running: dict[str, InputTask] = {}
    interrupted: bool | str = False

    def finish(r: InputResult) -> None:
        key = str(r.input)
        task = running.pop(key, None)
        if task is not None:
            shutil.rmtree(task.tmp_dir, ignore_errors=True)  # what a killed worker left
        results[key] = r
        root.manifest.append(_entry(r, root, spec, fingerprint, run_id))
        reporter.finished(r, len(running))

    try:
        try:
            pool.start()
            while pending or running:
                if cancel_event is not None and cancel_event.is_set():
                    interrupted = True
                    break
                while pending and pool.idle:
                    task = pending.popleft()
                    pool.submit(task)
                    running[task.input] = task
                    reporter.started(len(running))
                for r in pool.poll(_POLL_S):
                    finish(r)
        except KeyboardInterrupt:
            interrupted = "keyboard"
        if running:
            _log.warning("stopping: interrupting %d running input(s)", len(running))
            for r in pool.cancel(CANCEL_GRACE_S):
                finish(r)
    except BaseException:
        if running:  # an internal error: stop the workers, record what they were doing
            for r in _safe_cancel(pool):
                finish(r)
        raise
    finally:
        pool.close()
    return interrupted


def _safe_cancel(pool) -> list[InputResult]:
    try:
        return pool.cancel(CANCEL_GRACE_S)
    except (AvflowError, OSError, EOFError, KeyboardInterrupt) as exc:
        _log.warning("could not stop the workers cleanly: %s", exc)
        return []


# -- progress ------------------------------------------------------------------------------
class _Reporter:
    """Feeds the tqdm bar or the caller's callback with :class:`ManyProgress` snapshots."""

    def __init__(self, progress: ProgressArg, *, total: int, skipped: int, to_run: int, t0: float):
        self.total, self.skipped, self.t0 = total, skipped, t0
        self.done = self.failed = self.running = 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress == "bar" and to_run:
            from tqdm import tqdm

            self.bar = tqdm(total=to_run, desc="inputs", unit="input", file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.5, smoothing=0.1)
            self._postfix()

    def _snapshot(self, last: InputResult | None) -> ManyProgress:
        return ManyProgress(total=self.total, done=self.done, failed=self.failed, skipped=self.skipped,
                            running=self.running, elapsed_s=time.perf_counter() - self.t0, last=last)

    def _postfix(self) -> None:
        parts = {"ok": self.done, "failed": self.failed, "running": self.running}
        if self.skipped:
            parts["skipped"] = self.skipped
        self.bar.set_postfix(parts, refresh=False)

    def started(self, running: int) -> None:
        self.running = running
        if self.bar is not None:
            self._postfix()
            self.bar.refresh()
        if self.callback is not None:
            self.callback(self._snapshot(None))

    def finished(self, r: InputResult, running: int) -> None:
        self.running = running
        if r.status == "ok":
            self.done += 1
        elif r.status == "failed":
            self.failed += 1
        if self.bar is not None:
            if r.status == "failed":
                self.bar.write(f"failed: {r.input}: {(r.error or '').splitlines()[0] if r.error else ''}",
                               file=sys.stderr)
            self._postfix()
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self._snapshot(r))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
