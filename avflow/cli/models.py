"""``avflow models``: which model files each node can use, which are present; scaffolding."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import load_registry


@click.group(invoke_without_command=True)
@click.option("--check", "check_dir", type=click.Path(path_type=Path), default=None,
              help="a model folder: report which declared files are present in it")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def models(ctx: click.Context, check_dir: Path | None, as_json: bool) -> None:
    """List the model files each registered node declares it can load.

    With --check DIR, also say which are present under DIR (files are looked up relative to
    it); exit 2 if a required file of some node is missing.
    """
    if ctx.invoked_subcommand is not None:
        return
    if check_dir is not None and not check_dir.is_dir():
        click.echo(f"error: --check {check_dir}: no such folder; every required model file is missing", err=True)
        ctx.exit(2)
    registry = load_registry()
    rows = []
    for type_name, entry in registry:
        for m in entry.cls.models:
            files = list(m.files) or ["(the path given in param '%s')" % m.param]
            row = {"node": type_name, "plugin": entry.plugin, "model": m.name, "param": m.param,
                   "required": m.required, "doc": m.doc, "files": []}
            for f in files:
                status = None
                if check_dir is not None and m.files:
                    status = "present" if (check_dir / f).is_file() else "missing"
                row["files"].append({"path": f, "status": status})
            rows.append(row)
    scaffolds = _scaffolds()
    if as_json:
        click.echo(json.dumps({"models": rows, "scaffolds": sorted(scaffolds)}, indent=2))
    else:
        if not rows:
            click.echo("no registered node declares model files")
        for row in rows:
            req = "required" if row["required"] else "optional"
            click.secho(f"{row['node']}", bold=True, nl=False)
            click.echo(f"  {row['model']} ({req}, param '{row['param']}')  {row['doc']}")
            for f in row["files"]:
                mark = {"present": "[ok]     ", "missing": "[missing]", None: "         "}[f["status"]]
                click.echo(f"    {mark} {f['path']}")
        if scaffolds:
            click.echo("random-weight scaffolds: " + ", ".join(
                f"{n} ({s.doc})" for n, s in sorted(scaffolds.items())))
    if check_dir is not None:
        missing = [(r, f) for r in rows if r["required"] for f in r["files"] if f["status"] == "missing"]
        present = [(r, f) for r in rows for f in r["files"] if f["status"] == "present"]
        # A folder is checked against the model sets it holds at least part of (a MuseTalk
        # folder is not missing SyncNet's files); one that holds none of them lacks them all.
        touched = {r["model"] for r, _ in present}
        relevant = [(r, f) for r, f in missing if r["model"] in touched] if touched else missing
        if relevant:
            click.echo(f"{len(relevant)} required file(s) missing under {check_dir}", err=True)
            ctx.exit(2)


def _scaffolds() -> dict:
    from ..errors import PluginError
    from ..plugins import get_plugin_manager

    out = {}
    manager = get_plugin_manager()
    for items in manager.hook.avflow_register_model_scaffolds():
        for s in items or []:
            if s.name in out:
                raise PluginError(f"duplicate model scaffold '{s.name}'")
            out[s.name] = s
    return out


@models.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--random", "random_", is_flag=True, required=True,
              help="write random weights (the only mode: weights are never downloaded)")
@click.option("--tiny", is_flag=True, help="the smallest architecture that loads through the same code")
@click.option("--name", "names", multiple=True, help="which scaffold(s) (default: the default ones, "
              "e.g. musetalk; list them with `avflow models`)")
@click.option("--seed", type=int, default=0, show_default=True)
def scaffold(directory: Path, random_: bool, tiny: bool, names: tuple[str, ...], seed: int) -> None:
    """Write a model folder in the real layout and formats, with random weights."""
    scaffolds = _scaffolds()
    if not scaffolds:
        raise click.ClickException("no plugin provides a model scaffold")
    chosen = names or tuple(sorted(n for n, s in scaffolds.items() if s.default))
    unknown = [n for n in chosen if n not in scaffolds]
    if unknown:
        raise click.BadParameter(f"unknown scaffold(s) {', '.join(unknown)}; have: {', '.join(sorted(scaffolds))}",
                                 param_hint="--name")
    for n in chosen:
        written = scaffolds[n].write(directory, tiny, seed)
        click.echo(f"{n}: wrote {len(written)} files under {directory}")
        for p in written:
            click.echo(f"  {p}")
