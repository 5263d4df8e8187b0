"""Which inputs a many-input run has, and the output folder each one gets."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: Files a folder given to ``--inputs`` contributes (other files in it are ignored).
MEDIA_SUFFIXES = VIDEO_SUFFIXES + AUDIO_SUFFIXES + IMAGE_SUFFIXES

#: Names in the output root that belong to the run itself, never to an input.
RESERVED_NAMES = frozenset({"manifest.jsonl", ".avflow-tmp", ".avflow.lock"})

_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^\w.\-+=@,]+")


def _absolute(p: str | Path) -> Path:
    # abspath, not resolve(): a symlinked input keeps its own name (and output folder name).
    return Path(os.path.abspath(os.path.expanduser(str(p))))


def collect_inputs(spec: str | Path) -> list[Path]:
    """The inputs named by ``spec``, as absolute paths.

    ``spec`` is a folder (its media files, sorted by name, not recursive), a glob (matching
    files and folders, sorted; ``**`` recurses), a single media file, or a text file listing
    one path per line (blank lines and ``#`` comments skipped; relative paths are relative to
    the list file's folder).

    :raises InputError: nothing matches, or a listed file does not exist.
    """
    text = str(spec)
    if not text.strip():
        raise InputError("--inputs is empty: give a glob such as 'videos/*.mp4', a folder, or a list file")
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        found = sorted((p for p in path.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in MEDIA_SUFFIXES),
                       key=lambda p: p.name)
        if not found:
            raise InputError(f"--inputs {text}: the folder holds no media files "
                             f"(looked for {', '.join(MEDIA_SUFFIXES)})")
        return [_absolute(p) for p in found]
    if path.is_file():
        if path.suffix.lower() in MEDIA_SUFFIXES:
            return [_absolute(path)]
        return _read_list(path)
    if _GLOB_CHARS.search(text):
        matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        found = [_absolute(m) for m in matches if not Path(m).name.startswith(".")]
        if found:
            return found
    raise InputError(f"--inputs {text}: no inputs match (expected a glob such as 'videos/*.mp4', a folder "
                     "of media files, or a text file listing one path per line)")


def _read_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"--inputs {path}: not a media file (suffix {path.suffix or 'none'}) and not a "
                         "UTF-8 text file listing one path per line") from None
    found: list[Path] = []
    missing: list[str] = []
    for number, line in enumerate(lines, 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(os.path.expanduser(entry))
        if not p.is_absolute():
            p = path.parent / p
        if not p.exists():
            missing.append(f"{path}:{number}: {entry}")
        found.append(_absolute(p))
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"--inputs {path}: {len(missing)} listed input(s) do not exist:\n  {shown}")
    if not found:
        raise InputError(f"--inputs {path}: the list names no inputs (one path per line; # starts a comment)")
    return found


def output_name(input_path: str | Path) -> str:
    """The output folder name an input asks for: its file stem, made safe for a folder name."""
    p = Path(str(input_path).rstrip("/\\"))
    stem = p.stem if p.suffix else p.name
    name = _UNSAFE.sub("_", stem).strip("._") or "input"
    return name if name not in RESERVED_NAMES else f"{name}_"


def assign_names(inputs: Iterable[str], known: Mapping[str, str], taken: Iterable[str]) -> dict[str, str]:
    """An output folder name for each input (absolute path strings).

    Inputs in ``known`` keep the name an earlier run gave them; the others, in sorted order,
    get their stem, or ``<stem>-<n>`` with the smallest ``n`` not taken by another input or by
    an existing entry of the output root (``taken``). The same inputs in the same output root
    always get the same names.
    """
    todo = sorted(set(inputs))
    names: dict[str, str] = {}
    used = set(taken) | set(RESERVED_NAMES)
    for inp in todo:
        if inp in known:
            names[inp] = known[inp]
            used.add(known[inp])
    for inp in todo:
        if inp in names:
            continue
        base = output_name(inp)
        name, n = base, 0
        while name in used:
            n += 1
            name = f"{base}-{n}"
        names[inp] = name
        used.add(name)
    return names
