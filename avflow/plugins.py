"""Plugin discovery: a factory for plugin managers (none is built at import time)."""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Iterable

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "avflow.plugins"
DISABLE_AUTOLOAD_ENV = "AVFLOW_DISABLE_PLUGIN_AUTOLOAD"
#: The distribution whose entry points are avflow's own built-in plugins.
BUILTIN_DISTRIBUTION = "avflow"

log = logging.getLogger("avflow.plugins")


@dataclass
class PluginFailure:
    """A plugin that could not be loaded; the others still are."""

    name: str
    target: str
    error: str


@dataclass
class PluginManager:
    """pluggy's manager plus what avflow needs to report about loading."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure] = field(default_factory=list)

    @property
    def hook(self):
        return self.pm.hook

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object or module by hand (embedding apps, tests)."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name or plugin!r} is invalid: {exc}") from exc

    def plugin_names(self) -> list[str]:
        # pluggy lists blocked names with a None plugin.
        return [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]


def get_plugin_manager(
    autoload: bool = True,
    blocked: Iterable[str] = (),
    plugins: Iterable[ModuleType | object | str] = (),
) -> PluginManager:
    """Build a plugin manager with every plugin from the ``avflow.plugins`` entry points.

    :param autoload: load third-party entry points; also switched off by setting the
        environment variable ``AVFLOW_DISABLE_PLUGIN_AUTOLOAD``. avflow's own built-in plugins
        are always loaded (like pytest's default plugins).
    :param blocked: entry point names not to load.
    :param plugins: extra plugin objects or importable module names to register.

    A plugin that fails to import or to validate is recorded in ``failures`` (and logged) and
    the others still load.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm)
    blocked = set(blocked)
    for name in blocked:
        pm.set_blocked(name)
    if os.environ.get(DISABLE_AUTOLOAD_ENV):
        autoload = False

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        builtin = dist is not None and dist.name == BUILTIN_DISTRIBUTION
        if ep.name in blocked or (not autoload and not builtin) or pm.has_plugin(ep.name):
            continue
        _register_guarded(manager, ep.name, ep.value, ep.load)

    for plugin in plugins:
        if isinstance(plugin, str):
            _register_guarded(manager, plugin, plugin, lambda p=plugin: importlib.import_module(p))
        else:
            manager.register(plugin)
    return manager


def _register_guarded(manager: PluginManager, name: str, target: str, load) -> None:
    try:
        module = load()
        manager.pm.register(module, name=name)
        manager.pm.check_pending()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
        if manager.pm.has_plugin(name):
            manager.pm.unregister(name=name)
        failure = PluginFailure(name, target, f"{type(exc).__name__}: {exc}")
        manager.failures.append(failure)
        log.warning("plugin %r (%s) failed to load: %s", name, target, failure.error)
