"""The ``avflow`` command line (click). One module per command; heavy imports inside commands."""

from __future__ import annotations

import sys

import click

from .common import handle_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="avflow")
def cli() -> None:
    """avflow: run audio-visual processing graphs built from plugin nodes."""


def _register() -> None:
    from .eval import eval_
    from .models import models
    from .nodes import nodes
    from .run import run
    from .show import show
    from .validate import validate

    for command in (run, validate, nodes, show, models, eval_):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: exit 0 ok, 2 usage/graph/input error, 1 internal, 130 interrupted."""
    with handle_errors():
        try:
            # Not standalone: click would turn Ctrl-C into "Aborted!" with status 1.
            rv = cli.main(args=argv, prog_name="avflow", standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        code = rv if isinstance(rv, int) else 0
        if argv is None and code == 0:
            _exit_now(code)
        sys.exit(code)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown: every output is written and closed
    by now, and tearing down torch, MediaPipe and their thread pools costs 1-2 s, a fifth of a
    10-second clip's run. Only from the console entry point (``argv`` None), never in-process."""
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
