"""``avflow nodes``: every registered node type with its ports and params."""

from __future__ import annotations

import json

import click

from .common import load_registry


@click.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.argument("types", nargs=-1)
def nodes(as_json: bool, types: tuple[str, ...]) -> None:
    """List registered node types (or only TYPES): plugin, ports, params and docs."""
    registry = load_registry()
    entries = []
    for name, entry in registry:
        if types and name not in types:
            continue
        d = entry.cls.describe()
        d["plugin"] = entry.plugin
        entries.append(d)
    unknown = [t for t in types if t not in registry]
    if unknown:
        raise click.BadParameter(f"unknown node type(s): {', '.join(unknown)}", param_hint="TYPES")
    if as_json:
        click.echo(json.dumps({"nodes": entries,
                               "failed_plugins": [f.__dict__ for f in registry.failures]}, indent=2))
        return
    for d in entries:
        doc = d["doc"].splitlines()[0] if d["doc"] else ""
        click.secho(f"{d['type']}", bold=True, nl=False)
        click.echo(f"  [{d['plugin']}]  {doc}")
        for direction in ("inputs", "outputs"):
            for pname, p in d[direction].items():
                opt = " (optional)" if p.get("optional") else ""
                click.echo(f"    {'in ' if direction == 'inputs' else 'out'} {pname}: {p['kind']}{opt}  {p['doc']}")
        for pname, p in d["params"].items():
            default = "required" if p["required"] else f"default {p['default']!r}"
            click.echo(f"    param {pname}: {p['type']}, {default}  {p['doc']}")
        if d["batch"]:
            click.echo(f"    batched on '{d['batch']['port']}' (size: {d['batch']['size_param']})")
