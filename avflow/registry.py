"""Node registry: every node type registered by the loaded plugins."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from .errors import PluginError
from .node import Node
from .plugins import PluginFailure, PluginManager, get_plugin_manager


@dataclass(frozen=True)
class NodeEntry:
    cls: type[Node]
    plugin: str


class Registry:
    """Maps node type names to classes, remembering which plugin gave each."""

    def __init__(self, entries: dict[str, NodeEntry] | None = None,
                 failures: list[PluginFailure] | None = None, graph_dirs: list[Path] | None = None):
        self._entries: dict[str, NodeEntry] = dict(entries or {})
        self.failures = list(failures or [])
        self.graph_dirs = list(graph_dirs or [])

    @classmethod
    def from_plugin_manager(cls, manager: PluginManager) -> "Registry":
        registry = cls(failures=manager.failures)
        pm = manager.pm
        for impl in pm.hook.avflow_register_nodes.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            classes = impl.function() or []
            for node_cls in classes:
                registry.add(node_cls, plugin_name)
        for dirs in pm.hook.avflow_register_graph_dirs():
            registry.graph_dirs.extend(Path(d) for d in dirs or [])
        return registry

    @classmethod
    def default(cls, **kwargs) -> "Registry":
        """Registry of every plugin found through entry points (see :func:`get_plugin_manager`)."""
        return cls.from_plugin_manager(get_plugin_manager(**kwargs))

    def add(self, node_cls: type[Node], plugin: str = "<local>") -> None:
        if not (isinstance(node_cls, type) and issubclass(node_cls, Node)):
            raise PluginError(f"plugin {plugin!r} registered {node_cls!r}, which is not an avflow.Node subclass")
        if not node_cls.type:
            raise PluginError(f"plugin {plugin!r}: node class {node_cls.__name__} has no 'type' name")
        existing = self._entries.get(node_cls.type)
        if existing is not None and existing.cls is not node_cls:
            raise PluginError(
                f"duplicate node type '{node_cls.type}': registered by plugin '{existing.plugin}' "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by plugin '{plugin}' "
                f"({node_cls.__module__}.{node_cls.__qualname__})"
            )
        self._entries[node_cls.type] = NodeEntry(node_cls, plugin)

    def get(self, type_name: str) -> type[Node] | None:
        entry = self._entries.get(type_name)
        return entry.cls if entry else None

    def plugin_of(self, type_name: str) -> str | None:
        entry = self._entries.get(type_name)
        return entry.plugin if entry else None

    def close_matches(self, type_name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(type_name, list(self._entries), n=n, cutoff=0.5)

    def types(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._entries

    def __iter__(self):
        return iter(sorted(self._entries.items()))

    def __len__(self) -> int:
        return len(self._entries)

    # -- graphs shipped by plugins ----------------------------------------------------------
    def graphs(self) -> dict[str, Path]:
        """Every graph the plugins ship (``avflow_register_graph_dirs``): name -> file. The
        first folder registered wins a name."""
        found: dict[str, Path] = {}
        for d in self.graph_dirs:
            for path in sorted(Path(d).glob("*.yaml")):
                found.setdefault(path.stem, path)
        return found

    def find_graph(self, name: str) -> Path | None:
        """The file of the shipped graph ``name`` (``"diarize"``), or None."""
        return self.graphs().get(name)
