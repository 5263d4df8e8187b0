"""``avflow run``: run a graph once, or once per input with --inputs."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

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
        result = runner.run()  # errors reach cli.main's handle_errors: exit 2, 1 or 130
    finally:
        display.close()
    if profile:
        click.echo(format_profile(result), err=True)
        path = write_profile(result, result.output_dir / "profile.json")
        click.echo(f"profile written to {path}", err=True)
    if not quiet:
        for name, value in result.outputs.items():
            items = value if isinstance(value, list) else [value]
            shown = [_describe(v) for v in items if v is not None]
            if len(shown) > 5:
                shown = shown[:5] + [f"... ({len(items)} items)"]
            click.echo(f"{name}: {', '.join(shown) if shown else '(nothing)'}", err=True)
    click.echo(json.dumps({"output_dir": str(result.output_dir),
                           "outputs": {k: _jsonable(v) for k, v in result.outputs.items()}}))


def _describe(value) -> str:
    path = getattr(value, "path", None)
    return str(path) if path is not None else f"<{type(value).__name__}>"


def _jsonable(value):
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) > 100:
            return f"{len(value)} items"
        return [_jsonable(v) for v in value]
    path = getattr(value, "path", None)
    return str(path) if path is not None else type(value).__name__
