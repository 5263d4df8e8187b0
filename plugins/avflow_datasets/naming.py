"""Finding the videos of a dataset and naming their subjects ``<person>/<NNN>``.

The rule (DiffPoseTalk keys subjects ``<person>/<video number>``, from files laid out as
``<person>/<number>.npz``):

- **person**: the name of the folder that holds the video, when the video sits in a sub-folder
  of the ``videos`` root (``HDTF/obama/3.mp4`` -> ``obama``); for a video directly in the root,
  its file name up to the last ``_`` when what follows is a number (``obama_3.mp4`` -> ``obama``),
  otherwise the whole file name without extension (``talking1.mp4`` -> ``talking1``).
  Whitespace and ``/`` in a person name become ``_`` (keys are whole lines of split files).
- **NNN**: the video's number within its person, 3 digits (more when it exceeds 999). It is the
  number the file name carries (``3.mp4``, ``obama_3.mp4`` -> ``003``) when every video of that
  person carries a distinct one; otherwise the person's videos are numbered 0, 1, 2, ... in
  order of their relative paths.

Two videos that end up with the same key are an error naming both.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from avflow import InputError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".ts")
_NUMBERED = re.compile(r"^(?P<person>.+)_(?P<num>\d+)$")
_UNSAFE = re.compile(r"[\s/\\]+")


@dataclass(frozen=True)
class VideoEntry:
    """One input video and its subject key."""

    path: Path  # absolute
    rel: str  # relative to the videos root, POSIX separators
    person: str
    number: int

    @property
    def key(self) -> str:
        return f"{self.person}/{self.number:03d}"


def _abs(p: str | Path) -> Path:
    """Absolute, without following symbolic links (a folder of links to videos is a valid layout)."""
    return Path(os.path.abspath(p))


def find_videos(videos: str | Path) -> tuple[Path, list[Path]]:
    """The root and the sorted video files of ``videos`` (a folder, searched recursively, or a glob).

    :raises InputError: nothing matches.
    """
    text = str(videos)
    if glob.has_magic(text):
        matches = sorted(_abs(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        prefix = text[: min(text.index(c) for c in "*?[" if c in text)]
        root = _abs(prefix if prefix.endswith(os.sep) else os.path.dirname(prefix) or ".")
        if not matches:
            raise InputError(f"videos: no file matches the pattern {text!r}")
        return root, matches
    path = Path(text)
    if path.is_file():
        return _abs(path).parent, [_abs(path)]
    if not path.is_dir():
        raise InputError(f"videos: {text!r} is neither a folder, a file nor a glob pattern that matches files")
    found = sorted(_abs(p) for p in path.rglob("*")
                   if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))
    if not found:
        raise InputError(f"videos: no video file ({', '.join(VIDEO_EXTENSIONS)}) under {text!r}")
    return _abs(path), found


def _person_and_number(rel: Path) -> tuple[str, int | None]:
    stem = rel.stem
    if len(rel.parts) > 1:
        return _UNSAFE.sub("_", rel.parent.name), int(stem) if stem.isdigit() else None
    m = _NUMBERED.match(stem)
    if m:
        return _UNSAFE.sub("_", m.group("person")), int(m.group("num"))
    return _UNSAFE.sub("_", stem), None


def assign_keys(root: Path, paths: list[Path]) -> list[VideoEntry]:
    """Name each video ``<person>/<NNN>`` by the rule in this module's docstring, sorted by key.

    :raises InputError: two videos get the same key.
    """
    by_person: dict[str, list[tuple[Path, str, int | None]]] = {}
    for p in paths:
        try:
            rel = p.relative_to(root)
        except ValueError:
            rel = Path(p.name)
        person, number = _person_and_number(rel)
        by_person.setdefault(person, []).append((p, rel.as_posix(), number))
    entries: list[VideoEntry] = []
    for person, videos in by_person.items():
        videos.sort(key=lambda v: v[1])
        numbers = [n for _, _, n in videos]
        use_own = all(n is not None for n in numbers) and len(set(numbers)) == len(numbers)
        for i, (p, rel, n) in enumerate(videos):
            entries.append(VideoEntry(p, rel, person, n if use_own and n is not None else i))
    entries.sort(key=lambda e: (e.person, e.number))
    seen: dict[str, VideoEntry] = {}
    clashes = []
    for e in entries:
        if e.key in seen:
            clashes.append(f"{seen[e.key].rel} and {e.rel} are both '{e.key}'")
        seen[e.key] = e
    if clashes:
        raise InputError("videos: two videos map to the same subject key (person = parent folder or the "
                         "name before '_<number>'): " + "; ".join(clashes)
                         + "; rename one or put them in different person folders")
    return entries
