"""``avflow show``: draw a graph as Mermaid or Graphviz dot."""

from __future__ import annotations

import click

from .common import find_graph, load_registry


@click.command()
@click.argument("graph")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
def show(graph: str, fmt: str) -> None:
    """Print GRAPH's nodes and port connections as a diagram."""
    from ..graph.load import load_graph
    from ..graph.validate import validate as do_validate

    registry = load_registry()
    spec = load_graph(find_graph(graph, registry))
    plan = do_validate(spec, registry, require_all=False)
    edges = [(ref.node, ref.port, nid, port) for nid, pn in plan.nodes.items()
             for port, refs in pn.inputs.items() for ref in refs]
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        for nid, pn in plan.nodes.items():
            lines.append(f'  {nid}["{nid}<br/><small>{pn.cls.type}</small>"]')
        for src, sport, dst, dport in edges:
            label = sport if sport == dport else f"{sport} → {dport}"
            lines.append(f"  {src} -- {label} --> {dst}")
        for name, ref in plan.outputs.items():
            lines.append(f'  {ref.node} -. {ref.port} .-> out_{name}(["{name}"])')
    else:
        lines = [f'digraph "{spec.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
        for nid, pn in plan.nodes.items():
            lines.append(f'  "{nid}" [label="{nid}\\n{pn.cls.type}"];')
        for src, sport, dst, dport in edges:
            lines.append(f'  "{src}" -> "{dst}" [label="{sport}→{dport}"];')
        for name, ref in plan.outputs.items():
            lines.append(f'  "out_{name}" [shape=ellipse, label="{name}"];')
            lines.append(f'  "{ref.node}" -> "out_{name}" [style=dashed, label="{ref.port}"];')
        lines.append("}")
    click.echo("\n".join(lines))
