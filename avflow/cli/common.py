"""Shared CLI pieces: error handling, --set parsing, graph lookup, logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Iterator

import click

from ..errors import AvflowError


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Print errors cleanly and exit with their status: an :class:`AvflowError`'s own (2 for
    usage, graph and input errors), 130 when interrupted, 1 for anything else (our bug)."""
    try:
        yield
    except AvflowError as exc:
        click.echo(f"error: {exc}", err=True)
        _debug_traceback()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - anything else is an internal failure: exit 1 with its message
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("(set AVFLOW_DEBUG=1 for the traceback)", err=True)
        _debug_traceback()
        sys.exit(1)


def _debug_traceback() -> None:
    if os.environ.get("AVFLOW_DEBUG"):
        traceback.print_exc()


def parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` pairs; values stay text and are parsed against the declared types."""
    out: dict[str, str] = {}
    for item in values:
        if "=" not in item:
            raise click.UsageError(f"--set {item!r}: expected KEY=VALUE (a graph param or NODE.PARAM)")
        key, value = item.split("=", 1)
        if not key:
            raise click.UsageError(f"--set {item!r}: the key is empty")
        out[key.strip()] = value
    return out


def find_graph(name: str, registry) -> Path:
    """A graph file path, or the name of a graph a plugin ships (``diarize``: from any folder)."""
    p = Path(name)
    if p.is_file() or p.suffix in (".yaml", ".yml"):
        return p  # load_graph reports a missing file
    found = registry.find_graph(name)
    if found is None:
        shipped = ", ".join(sorted(registry.graphs())) or "(none)"
        raise click.UsageError(f"no graph file or shipped graph named {name!r}; shipped graphs: {shipped}")
    return found


def setup_logging(quiet: bool, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger("avflow")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def load_registry():
    from ..registry import Registry

    registry = Registry.default()
    for failure in registry.failures:
        click.echo(f"warning: plugin '{failure.name}' ({failure.target}) failed to load: {failure.error}",
                   err=True)
    return registry
