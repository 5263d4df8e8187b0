"""The output root of a many-input run: per-input folders, the manifest, the lock, temp space.

Layout::

    OUT/
      manifest.jsonl           one JSON line per finished input (latest line per input wins)
      .avflow.lock             held (flock) by the run using OUT; a second run is refused
                               (removed when the run ends)
      .avflow-tmp/             each input is written here first; emptied when a run starts,
                               removed when it ends empty
      <name>/                  one folder per input, renamed into place only when complete
        .avflow-complete.json  its input, graph, parameter fingerprint and every file's size

A folder under its final name is always complete: it is built in ``.avflow-tmp`` and renamed
in one step, with its marker written last. Resuming trusts a folder only if its marker lists
files that are all present with the recorded sizes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError

MANIFEST = "manifest.jsonl"
MARKER = ".avflow-complete.json"
TMP = ".avflow-tmp"
LOCK = ".avflow.lock"
SCHEMA = "avflow.many/1"

_log = logging.getLogger("avflow.executors")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened and synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Manifest:
    """``manifest.jsonl``: appended one whole line at a time, flushed and fsynced.

    Only the driving process writes it. A line torn by a crash is skipped when reading.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and _last_byte(self.path, size) != b"\n":
                line = b"\n" + line  # a torn last line from a crash stays on its own line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """Every readable line, in order."""
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "input" in entry:
                    out.append(entry)
        return out

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last entry of each input."""
        return {e["input"]: e for e in self.entries()}


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


class OutputRoot:
    """The output root of a many-input run (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(os.path.abspath(root))
        self.tmp = self.root / TMP
        self.manifest = Manifest(self.root / MANIFEST)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the root for this run; another run on the same root fails with InputError."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, the user keeps runs apart
            yield
            return
        lock_path = self.root / LOCK
        while True:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(f"output folder {self.root} is in use by another avflow run "
                                 "(wait for it, or choose another --output-dir)") from None
            # The run before ours removes the lock file as it ends: lock the file that is there.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            # Leave nothing but outputs: the temp space if empty, and the lock file (removed
            # while held, so that a run starting now creates and locks a new one).
            with contextlib.suppress(OSError):
                self.tmp.rmdir()
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
            os.close(fd)  # closing releases the lock

    def clean_tmp(self) -> None:
        """Remove what killed runs left in the temp space (only call while holding the lock)."""
        if self.tmp.is_dir():
            for entry in self.tmp.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        entry.unlink()
        self.tmp.mkdir(parents=True, exist_ok=True)

    def temp_dir(self, name: str) -> Path:
        return self.tmp / f"{name}.{uuid.uuid4().hex[:8]}"

    def entries(self) -> set[str]:
        """Names present in the root."""
        return {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()

    def markers(self) -> dict[str, dict[str, Any]]:
        """``input -> marker`` (with its folder ``name``) for every completed folder in the root."""
        found: dict[str, dict[str, Any]] = {}
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            marker = read_marker(folder)
            if marker is not None:
                found[marker["input"]] = {**marker, "name": folder.name}
        return found

    def complete(self, name: str, input_path: str) -> dict[str, Any] | None:
        """The marker of ``name`` if that folder holds ``input_path``'s complete outputs."""
        folder = self.root / name
        marker = read_marker(folder)
        if marker is None or marker.get("input") != input_path:
            return None
        for rel, size in marker.get("files", {}).items():
            f = folder / rel
            try:
                if f.stat().st_size != size:
                    return None
            except OSError:
                return None
        return marker


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("input"), str) \
            or not isinstance(data.get("files"), dict):
        return None
    return data


def list_files(folder: Path) -> dict[str, int]:
    """``relative posix path -> size`` of every file under ``folder`` except the marker."""
    files: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(folder):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(folder).as_posix()
            if rel != MARKER and not p.is_symlink():
                files[rel] = p.stat().st_size
    return dict(sorted(files.items()))


def publish(tmp: Path, final: Path, marker: dict[str, Any]) -> dict[str, int]:
    """Make ``tmp`` the complete folder ``final``: sync its files, write the marker, rename.

    A previous folder under ``final`` (a complete one from an earlier run) is replaced only
    now that the new one is complete. Returns the files written (relative path -> size).
    """
    files = list_files(tmp)
    for rel in files:
        with open(tmp / rel, "rb") as f:
            os.fsync(f.fileno())
    data = {"schema": SCHEMA, **marker, "files": files, "time": now_iso()}
    with open(tmp / MARKER, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    old = None
    if final.exists():
        old = tmp.parent / f"{tmp.name}.old"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return files
