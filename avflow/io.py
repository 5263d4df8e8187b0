"""Atomic output files, for nodes and plugins (public as :func:`avflow.atomic_path` and
:func:`avflow.write_text_atomic`).

.. code-block:: python

    from avflow import atomic_path

    with atomic_path(ctx.output_path("scores.npz")) as tmp:
        np.savez(tmp, scores=scores)        # renamed to scores.npz only if this succeeds
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


def _create_beside(final: Path) -> Path:
    """Create an empty, new temporary file next to ``final`` and return its path.

    Opened with mode 0666 so that the kernel applies the process umask, as for any file the
    user's programs write. (``tempfile.mkstemp`` makes 0600 files; widening them afterwards
    needs the umask, and reading it with ``os.umask`` briefly sets it to 0 for every thread of
    the process: a file another node creates in that window would be world-writable.)
    """
    for _ in range(100):
        tmp = final.parent / f".{final.stem}.{secrets.token_hex(4)}.partial{final.suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {final}")


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    The temporary name keeps the suffix (PyAV and matplotlib pick the format from it) and starts
    with a dot. A failed or interrupted write removes the temporary file and leaves any previous
    ``final`` untouched. The file gets the usual mode under the process umask.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_beside(final)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(final: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``final`` through :func:`atomic_path`; returns ``final``."""
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(final)


def read_torch_checkpoint(path: str | Path, what: str, *, mmap: bool = False):
    """``torch.load(path, map_location="cpu", weights_only=True)``, errors as :class:`avflow.ModelError`.

    The safe loader is the only one: a file it refuses is reported as not being a weights
    checkpoint, and torch's advice to re-run with ``weights_only=False`` (which would let the
    file run code) is never passed on.

    :param what: what the file should be ("Wav2Lip lip-sync expert"), for the message.
    :param mmap: map the file instead of reading it (zip checkpoints only; others are read).
    """
    import pickle
    import struct
    import zipfile

    import torch

    from .errors import ModelError

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: not found; expected the {what}")

    def not_a_save(detail: str = "") -> ModelError:
        return ModelError(f"{p} is not a PyTorch weights checkpoint: its contents are not a torch save file "
                          f"(random or corrupt bytes, or another format{detail}); expected the {what}")

    try:
        try:
            return torch.load(str(p), map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "mmap" not in str(exc):
                raise
            return torch.load(str(p), map_location="cpu", weights_only=True)  # legacy format: no mmap
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            raise ModelError(f"{p} is not a PyTorch weights checkpoint: it holds Python objects besides tensors "
                             f"and plain containers, which are refused because loading them could run code; "
                             f"expected the {what}") from None
        raise not_a_save() from None
    except (EOFError, IndexError, KeyError, TypeError, ValueError, OverflowError, AttributeError, struct.error) as exc:
        # the unpickler read bytes that are no pickle at all: as many ways to fail as byte values
        raise not_a_save(f": {type(exc).__name__}") from None
    except (RuntimeError, OSError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{p} is not a readable PyTorch weights checkpoint ({type(exc).__name__}: {first}); "
                         f"expected the {what}") from None
