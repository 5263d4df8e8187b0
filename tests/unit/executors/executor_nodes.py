"""A tiny node for executor tests: importable by spawned workers (this folder is on sys.path).

``xtest.echo`` reads a small text file and writes ``copy.txt`` (its text plus ``suffix``) and
``model.txt`` (which worker process loaded the "model", and how many loads that worker made).
The text steers it: ``fail`` raises an InputError, ``die`` kills the worker process,
``sleep N`` works for N seconds (stopping early when cancelled), ``half`` writes a file and
then fails.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from avflow import File, InputError, Node, Port, Registry, atomic_path, param


@dataclass(frozen=True)
class EchoConfig:
    path: Path = param(doc="input text file")
    suffix: str = param("", "appended to the copy")


class Echo(Node):
    """Source: copy a text file into the output directory. Ports: out ``file`` (File)."""

    type = "xtest.echo"
    Config = EchoConfig
    outputs = {"file": Port(File, "copy.txt")}

    def open(self, ctx):
        cache = ctx.options.get("resources")
        load = lambda: {"pid": os.getpid()}  # noqa: E731 - the "model"
        self.model = cache.get(("xtest.model",), load) if cache is not None else load()
        self.loads = cache.loads if cache is not None else 1

    def generate(self, ctx):
        text = Path(self.config.path).read_text(encoding="utf-8").strip()
        out = ctx.output_path("copy.txt")
        if text == "fail":
            raise InputError(f"{self.config.path}: this input is bad")
        if text == "die":
            os._exit(17)
        if text == "half":
            (ctx.output_dir / "partial.txt").write_text("half", encoding="utf-8")
            raise RuntimeError("failed after writing a file")
        if text.startswith("sleep"):
            end = time.monotonic() + float(text.split()[1])
            while time.monotonic() < end:
                if ctx.cancelled:
                    return
                time.sleep(0.02)
        with atomic_path(out) as tmp:
            tmp.write_text(text + self.config.suffix, encoding="utf-8")
        (ctx.output_dir / "model.txt").write_text(f"{self.model['pid']} {self.loads}", encoding="utf-8")
        yield {"file": File(pts=0, time_base=Fraction(1, 1), path=out, kind="text/plain")}


GRAPH = {
    "name": "echo",
    "params": {"src": {"type": "path", "required": True, "doc": "input text file"},
               "suffix": {"type": "str", "default": ""}},
    "nodes": {"echo": {"type": "xtest.echo", "params": {"path": "${src}", "suffix": "${suffix}"}}},
    "outputs": {"file": "echo.file"},
}


def registry() -> Registry:
    r = Registry()
    r.add(Echo, "xtest")
    return r


def make_inputs(folder: Path, texts: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths
