"""``avflow validate``: check a graph without running anything."""

from __future__ import annotations

import click

from .common import find_graph, load_registry, parse_sets


@click.command()
@click.argument("graph")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="graph param or NODE.PARAM override")
def validate(graph: str, sets: tuple[str, ...]) -> None:
    """Check GRAPH: node types, params, wiring, port types, cycles, and that the input files
    and required model files given exist. Exit 2 on any problem.

    Required graph params without a value are listed, not reported as errors: they are given
    at run time (as are paths left at their graph default).
    """
    from ..graph.load import load_graph
    from ..graph.validate import validate as do_validate

    registry = load_registry()
    spec = load_graph(find_graph(graph, registry))
    plan = do_validate(spec, registry, parse_sets(sets), require_all=False, cli_strings=True)
    click.echo(f"{spec.file or spec.name}: ok ({len(plan.nodes)} nodes: {' -> '.join(plan.order)})")
    if plan.unbound:
        click.echo("required at run time: " + ", ".join(f"--set {p}=..." for p in plan.unbound))
