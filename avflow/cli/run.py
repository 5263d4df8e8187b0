"""``avflow run``: run a graph once, or once per input with --inputs."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from ..payloads import Record
from .common import find_graph, load_registry, parse_sets, setup_logging


@click.command()
@click.argument("graph")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="graph param (video=...) or node param (NODE.PARAM=...) override")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where outputs go (default: out/<graph name>)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="no progress bars or info logs")
@click.option("--verbose", "-v", is_flag=True, help="debug logs, and the native libraries' own log lines "
              "(MediaPipe, TensorFlow Lite, absl), which are dropped by default")
@click.option("--profile", is_flag=True, help="print per-node timings and write profile.json")
@click.option("--inputs", "inputs", default=None, metavar="GLOB|DIR|LIST",
              help="run once per input: a glob, a folder, or a text file with one path per line")
@click.option("--input-param", default=None, help="graph param each input is bound to (default: the graph's "
              "first required path param)")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="local executor: worker processes")
@click.option("--resume", is_flag=True, help="skip inputs whose outputs are complete; retry failed ones")
@click.option("--ray-address", default=None, help="existing Ray cluster (e.g. ray://host:10001 or auto)")
@click.option("--cpus-per-task", type=float, default=1.0, show_default=True)
@click.option("--gpus-per-task", type=float, default=0.0, show_default=True)
def run(graph, sets, output_dir, device, quiet, verbose, profile, inputs, input_param, executor, workers, resume,
        ray_address, cpus_per_task, gpus_per_task) -> None:
    """Run GRAPH (a file, or the name of a shipped graph such as 'diarize')."""
    from ..runtime.native_logs import filter_native_logs

    with contextlib.nullcontext() if verbose else filter_native_logs():
        _run(graph, sets, output_dir, device, quiet, verbose, profile, inputs, input_param, executor, workers,
             resume, ray_address, cpus_per_task, gpus_per_task)


def _run(graph, sets, output_dir, device, quiet, verbose, profile, inputs, input_param, executor, workers,
         resume, ray_address, cpus_per_task, gpus_per_task) -> None:
    from ..graph.load import load_graph
    from ..runtime.runner import Runner, format_profile, write_profile
    from .progress import ProgressDisplay

    setup_logging(quiet, verbose)
    registry = load_registry()
    spec = load_graph(find_graph(graph, registry))
    overrides = parse_sets(sets)

    if inputs is not None:
        from ..executors import collect_inputs, run_many

        out_root = output_dir or Path("out") / spec.name
        result = run_many(
            spec, collect_inputs(inputs), input_param=input_param, params=overrides, cli_strings=True,
            output_root=out_root, executor=executor, workers=workers, resume=resume, device=device,
            ray_address=ray_address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task,
            progress=None if quiet else "bar")
        click.echo(result.summary(), err=True)
        sys.exit(0 if result.all_ok else 3)

    display = ProgressDisplay(enabled=not quiet)
    runner = Runner(spec, overrides, registry=registry, output_dir=output_dir, device=device,
                    progress=display, cli_strings=True)
    try:
        with _graceful_interrupt(runner):
            result = runner.run()  # errors reach cli.main's handle_errors: exit 2, 1 or 130
    finally:
        display.close()
    if profile:
        click.echo(format_profile(result), err=True)
        path = write_profile(result, result.output_dir / "profile.json")
        click.echo(f"profile written to {path}", err=True)
    files = [f for value in result.outputs.values() for f in _files(value)]
    records = {name: _numbers(v.data) for name, v in result.outputs.items() if isinstance(v, Record)}
    if not quiet:
        where = result.output_dir
        click.echo(f"wrote {len(files)} file(s) into {where}/: "
                   + ", ".join(_relative(f, where) for f in files[:8]) + (", ..." if len(files) > 8 else ""),
                   err=True)
        for name, numbers in records.items():
            if numbers:
                click.echo(f"{name}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in numbers.items()),
                           err=True)
        click.echo(f"done in {result.wall_s:.1f} s", err=True)
    click.echo(json.dumps({"output_dir": str(result.output_dir), "wall_s": round(result.wall_s, 3),
                           "outputs": {k: _jsonable(v) for k, v in result.outputs.items()}}))


@contextlib.contextmanager
def _graceful_interrupt(runner):
    """Ctrl-C (SIGINT) on a live graph ends its input: the graph finishes and writes its outputs
    (exit 0). A second Ctrl-C, or the first on a graph without a live source, interrupts (130)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        if runner.stop_event.is_set() or not runner.stop():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        click.echo("stopping: finishing with the input read so far (Ctrl-C again to abort)", err=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _files(value) -> list[Path]:
    items = value if isinstance(value, list) else [value]
    return [Path(v.path) for v in items if getattr(v, "path", None) is not None]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _numbers(data: dict) -> dict[str, float | int]:
    """A record's result in a few numbers: for a diarization, its turns, speakers and speech time;
    otherwise its top-level numbers and list lengths."""
    segments = data.get("segments")
    if isinstance(segments, list):
        speakers = {s.get("speaker") or s.get("voice") for s in segments if isinstance(s, dict)} - {None}
        speech = sum(float(s.get("end", 0)) - float(s.get("start", 0)) for s in segments if isinstance(s, dict))
        out = {"turns": len(segments), "speakers": len(speakers), "s_of_speech": round(speech, 2)}
        if isinstance(data.get("voices"), list):
            out["voices"] = len(data["voices"])
        return out
    out = {}
    for k, v in data.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[k] = v
        elif isinstance(v, (list, dict)):
            out[k] = len(v)
    return dict(list(out.items())[:6])


def _jsonable(value):
    """Paths and numbers only: a file is its path, a record its numbers, anything else its count."""
    if value is None:
        return None
    if isinstance(value, list):
        if all(getattr(v, "path", None) is not None for v in value):
            return [str(v.path) for v in value]
        return len(value)
    path = getattr(value, "path", None)
    if path is not None:
        return str(path)
    if isinstance(value, Record):
        return _numbers(value.data)
    return 1
