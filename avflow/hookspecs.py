"""Hook specifications: the only way plugins extend avflow.

Built-in plugins (``plugins/avflow_*``) and third-party packages implement the same hooks and
are discovered the same way: a module named by an entry point in the group ``avflow.plugins``.
Implementations are marked with :data:`hookimpl`; they may accept a subset of a hook's
arguments, so hook signatures only ever grow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .node import ModelScaffold, Node

PROJECT = "avflow"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def avflow_register_nodes() -> "list[type[Node]]":
    """Return the node classes this plugin provides.

    :return: a list of :class:`avflow.Node` subclasses, each with a unique ``type``.

    Results of all plugins are concatenated. Two classes with the same ``type`` are an error
    (:class:`avflow.PluginError`) that names both plugins.

    .. versionadded:: 0.1
    """


@hookspec
def avflow_register_graph_dirs() -> "list[str]":
    """Return folders holding graph files this plugin ships.

    :return: a list of directory paths; ``avflow run NAME`` (from any folder) and
        :meth:`avflow.Registry.find_graph` find ``NAME.yaml`` in them when ``NAME`` is neither an
        existing file nor a ``.yaml`` path. The first folder registered wins a name.

    Results of all plugins are concatenated, in registration order.

    .. versionadded:: 0.1
    """


@hookspec
def avflow_register_model_scaffolds() -> "list[ModelScaffold]":
    """Return model-folder writers for ``avflow models scaffold``.

    :return: a list of :class:`avflow.ModelScaffold`; each writes a model folder in the real
        layout and file formats with random weights, so loading and inference can be exercised
        without downloads.

    Results of all plugins are concatenated; names must be unique.

    .. versionadded:: 0.1
    """
