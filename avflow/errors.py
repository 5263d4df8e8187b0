"""Exceptions raised by avflow.

Every error also inherits the builtin that fits it (as PyAV does), so callers may catch
``ValueError`` for bad input without importing avflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


class AvflowError(Exception):
    """Base of every error avflow raises on purpose."""

    #: Process exit status the CLI uses for this error (2: the user's input was wrong).
    exit_code = 1


@dataclass(frozen=True)
class Issue:
    """One problem found in a graph: where it is and what would be valid."""

    message: str
    file: str | None = None
    line: int | None = None
    node: str | None = None
    node_type: str | None = None
    field: str | None = None  # port or param name
    graph_param: str | None = None  # the graph parameter that set ``field`` (``${graph_param}``)

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
        subject = ""
        if self.graph_param:
            # The user set the graph parameter, not the node's: name it, and where it goes.
            subject = f"{self.graph_param} (sets {self.node}.{self.field})" if self.node else self.graph_param
        elif self.node:
            subject = self.node if not self.node_type else f"{self.node}({self.node_type})"
            if self.field:
                subject += f".{self.field}"
        elif self.field:
            subject = self.field
        head = " ".join(part for part in (where, subject) if part)
        return f"{head}: {self.message}" if head else self.message


class GraphValidationError(AvflowError, ValueError):
    """A graph file, its parameters or its wiring is wrong. Carries every problem found."""

    exit_code = 2

    def __init__(self, issues: list[Issue] | Issue | str, graph: str | None = None):
        if isinstance(issues, (Issue, str)):
            issues = [issues if isinstance(issues, Issue) else Issue(issues)]
        self.issues: list[Issue] = list(issues)
        self.graph = graph
        n = len(self.issues)
        head = f"{n} error{'s' if n != 1 else ''} in graph" + (f" '{graph}'" if graph else "")
        super().__init__(head + ":\n" + "\n".join(f"  - {i}" for i in self.issues))


class InputError(AvflowError, ValueError):
    """The data a graph was given is unusable (missing file, no audio stream, corrupt video...)."""

    exit_code = 2


class ModelError(InputError):
    """Model files are missing or do not match the architecture (wrong keys or shapes)."""


class PluginError(AvflowError, RuntimeError):
    """A plugin could not be loaded or registers something invalid (e.g. a duplicate node type)."""

    exit_code = 2


class Cancelled(AvflowError):
    """The run was cancelled; every node has been closed."""

    exit_code = 130


class NodeError(AvflowError, RuntimeError):
    """A node failed while running. ``__cause__`` is the original exception."""

    def __init__(
        self,
        graph: str,
        node: str,
        node_type: str,
        cause: BaseException,
        pts: int | None = None,
        time_base: Fraction | None = None,
        stage: str = "process",
    ):
        self.graph = graph
        self.node = node
        self.node_type = node_type
        self.pts = pts
        self.time_base = time_base
        self.stage = stage
        self.cause = cause
        when = ""
        if pts is not None and time_base is not None:
            when = f" at t={float(pts * time_base):.3f}s (pts {pts})"
        super().__init__(
            f"graph '{graph}': node '{node}' ({node_type}) failed in {stage}{when}: "
            f"{type(cause).__name__}: {cause}"
        )

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        # Bad input found while running is still the user's error, not ours.
        return getattr(self.cause, "exit_code", 1) if isinstance(self.cause, AvflowError) else 1
