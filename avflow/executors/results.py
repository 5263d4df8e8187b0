"""What a many-input run reports: per input, progress snapshots, and the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["ok", "failed", "skipped", "interrupted"]


@dataclass
class InputResult:
    """One input's outcome.

    :param status: ``ok`` (outputs in place), ``failed`` (``error`` says why), ``skipped``
        (``--resume`` found its outputs complete) or ``interrupted`` (cancelled before it
        finished, or never started; nothing of it was written).
    :param output_dir: its folder in the output root (present only when ``ok`` or ``skipped``).
    :param outputs: every file in that folder.
    :param seconds: time spent running it (0 when skipped).
    """

    input: Path
    status: Status
    output_dir: Path
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")


@dataclass(frozen=True)
class ManyProgress:
    """A snapshot of a many-input run, given to the ``progress`` callback at every change."""

    total: int
    done: int
    failed: int
    skipped: int
    running: int
    elapsed_s: float
    last: InputResult | None = None

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed - self.skipped

    @property
    def rate(self) -> float | None:
        """Inputs finished (ok or failed) per second, None before the first one."""
        n = self.done + self.failed
        return n / self.elapsed_s if n and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return self.remaining / rate if rate else None


@dataclass
class ManyResult:
    """Every input's :class:`InputResult`, in input order, and the run's figures."""

    results: list[InputResult]
    output_root: Path
    manifest: Path
    executor: str
    workers: int
    wall_s: float = 0.0
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def all_ok(self) -> bool:
        """Every input has complete outputs (run now or skipped as already complete)."""
        return not self.interrupted and all(r.ok for r in self.results)

    def summary(self) -> str:
        """Counts, each failure with its error, wall time and where the manifest is."""
        n = len(self.results)
        parts = [f"{self.count('ok')} ok", f"{self.count('failed')} failed"]
        if self.count("skipped"):
            parts.append(f"{self.count('skipped')} skipped (already complete)")
        if self.count("interrupted"):
            parts.append(f"{self.count('interrupted')} interrupted")
        ran = self.count("ok") + self.count("failed")
        rate = f", {ran / self.wall_s:.2f} inputs/s" if ran and self.wall_s > 0 else ""
        lines = [f"{n} input{'s' if n != 1 else ''}: {', '.join(parts)} in {self.wall_s:.1f} s "
                 f"({self.executor}, {self.workers} worker{'s' if self.workers != 1 else ''}{rate})"]
        failed = self.failed
        if failed:
            lines.append("failed:")
            for r in failed:
                error = (r.error or "unknown error").strip().replace("\n", "\n    ")
                lines.append(f"  {r.input}: {error}")
        if self.interrupted or failed:
            lines.append("rerun with --resume to retry what did not finish")
        lines.append(f"outputs: {self.output_root}  manifest: {self.manifest}")
        return "\n".join(lines)
