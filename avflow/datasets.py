"""Deprecated alias of the ``avflow_datasets`` plugin's API, kept for the code that imports
``avflow.datasets.AVClipDataset`` (the name the project documented first). New code imports the
plugin:

.. code-block:: python

    from avflow_datasets import AVClipDataset

The framework does not depend on the plugin: importing this module imports nothing; the first
use of a name imports ``avflow_datasets`` (a :class:`DeprecationWarning`, and an ImportError
naming the plugin when it is not installed).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["AVClipDataset", "BuildReport", "UnsafePickleError", "build_dataset", "safe_loads"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'avflow.datasets' has no attribute {name!r}")
    warnings.warn(f"avflow.datasets.{name} is deprecated; use avflow_datasets.{name}", DeprecationWarning,
                  stacklevel=2)
    # Looked up by name at run time: a plugin is never a dependency of the framework.
    return getattr(importlib.import_module("avflow_datasets"), name)
