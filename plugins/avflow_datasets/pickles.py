"""Loading pickled LMDB values without running code.

DiffPoseTalk's layout stores every value as a pickle, and ``pickle.loads`` on bytes someone
else wrote can run any callable the pickle names (``__reduce__`` returning a shell-command function, say).
:func:`safe_loads` uses an unpickler whose ``find_class`` admits only what plain data needs:
containers, numbers, strings, bytes and numpy arrays (and numpy scalars/dtypes, which arrays
are made of). Everything else is refused with :class:`UnsafePickleError` before it is called.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from typing import Any

from avflow import InputError

#: (module, name) globals a data pickle may reference. Both numpy 1.x (``numpy.core``) and
#: numpy 2.x (``numpy._core``) spellings, since the LMDB may come from either.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol 2 spells bytes as _codecs.encode(str, "latin1")
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})


class UnsafePickleError(InputError, pickle.UnpicklingError):
    """A pickled value names a callable that plain data does not need; it was not loaded."""


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, what: str):
        super().__init__(file)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 may carry Python 2 names (__builtin__.set); check the names they map to.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {self._what}: the pickle references {module}.{name}, which is not plain "
            "data; only dicts, lists, tuples, sets, numbers, strings, bytes and numpy arrays are loaded "
            "(a pickle that names other callables can run code when it is loaded)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._what}: the pickle uses persistent ids ({pid!r}); "
                                "only self-contained plain data is loaded")


def safe_loads(data: bytes | bytearray | memoryview, what: str = "pickled value") -> Any:
    """Unpickle ``data``, admitting only plain data (see :data:`ALLOWED_GLOBALS`).

    :param what: names the value in error messages (``"LMDB key 'obama/000/001'"``).
    :raises UnsafePickleError: the pickle names anything else (nothing was called).
    :raises InputError: the bytes are not a valid pickle.
    """
    try:
        return _DataUnpickler(io.BytesIO(bytes(data)), what).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError) as exc:
        raise InputError(f"{what} is not a valid pickle ({type(exc).__name__}: {exc})") from None


def dumps(value: Any) -> bytes:
    """Pickle a value the way DiffPoseTalk's preprocessing does (highest protocol)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
