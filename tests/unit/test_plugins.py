"""Plugins: entry-point discovery, the example package, broken and clashing plugins, hook docs."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys

import pytest

import avflow
from avflow import hookspecs
from avflow.errors import PluginError
from avflow.plugins import get_plugin_manager
from avflow.registry import Registry
from avflow.testing.plugins import write_plugin_distribution

BUILTINS = {"media", "faces", "sync", "musetalk", "datasets"}

BROKEN = """
raise ImportError("this plugin needs libfoo, which is not installed")
"""

EXTRA = """
import avflow
from avflow.testing.dummies import Count

class Again(Count):
    type = "{type}"

@avflow.hookimpl
def avflow_register_nodes():
    return [Again]
"""


@pytest.fixture()
def plugin_path(tmp_path, monkeypatch):
    """A folder on sys.path whose distributions importlib.metadata sees."""
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    importlib.invalidate_caches()


def test_builtins_are_discovered_through_entry_points():
    manager = get_plugin_manager()
    assert BUILTINS <= set(manager.plugin_names())
    registry = Registry.from_plugin_manager(manager)
    assert registry.plugin_of("media.decode") == "media"


def test_hook_avflow_register_nodes(plugin_path):
    write_plugin_distribution(plugin_path, "extra-nodes", EXTRA.format(type="extra.count"))
    registry = Registry.default()
    assert registry.plugin_of("extra.count") == "extra_nodes"
    assert registry.get("extra.count").__name__ == "Again"


def test_hook_avflow_register_graph_dirs(tmp_path):
    class Plugin:
        @avflow.hookimpl
        def avflow_register_graph_dirs(self):
            return [str(tmp_path)]

    manager = get_plugin_manager(plugins=[Plugin()])
    assert tmp_path in Registry.from_plugin_manager(manager).graph_dirs


def test_hook_avflow_register_model_scaffolds():
    names = [s.name for items in get_plugin_manager().hook.avflow_register_model_scaffolds() for s in items]
    assert len(names) == len(set(names))


def test_broken_plugin_is_reported_by_name_and_others_load(plugin_path):
    write_plugin_distribution(plugin_path, "broken-plugin", BROKEN, entry_point="broken")
    manager = get_plugin_manager()
    assert [(f.name, f.target) for f in manager.failures] == [("broken", "broken_plugin")]
    assert "libfoo" in manager.failures[0].error
    assert BUILTINS <= set(manager.plugin_names())


def test_duplicate_node_type_names_both_plugins(plugin_path):
    write_plugin_distribution(plugin_path, "clash", EXTRA.format(type="media.decode"))
    with pytest.raises(PluginError) as info:
        Registry.default()
    msg = str(info.value)
    assert "duplicate node type 'media.decode'" in msg and "'media'" in msg and "'clash'" in msg


def test_autoload_switch_and_blocking(plugin_path, monkeypatch):
    write_plugin_distribution(plugin_path, "extra-nodes", EXTRA.format(type="extra.count"))
    monkeypatch.setenv("AVFLOW_DISABLE_PLUGIN_AUTOLOAD", "1")
    names = set(get_plugin_manager().plugin_names())
    assert "extra_nodes" not in names and BUILTINS <= names  # built-ins are not third-party
    monkeypatch.delenv("AVFLOW_DISABLE_PLUGIN_AUTOLOAD")
    assert "extra_nodes" in get_plugin_manager().plugin_names()
    assert "extra_nodes" not in get_plugin_manager(blocked=["extra_nodes"]).plugin_names()


def test_every_hook_is_documented_and_tested():
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("avflow_")]
    assert specs
    tests = {name for name in globals() if name.startswith("test_hook_")}
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        # What it returns, how results of several plugins combine, and since when.
        assert all(k in doc for k in (":return:", "Results of all plugins", "versionadded")), name
        assert f"test_hook_{name}" in tests, f"hook {name} has no test_hook_{name}"


@pytest.mark.slow
def test_example_plugin_package_installs_and_runs(tmp_path, repo_dir, media_dir):
    """pip-install examples/plugin-hello (into a folder) and use its node from the CLI."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(repo_dir / "examples" / "plugin-hello")], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    avflow_cli = [sys.executable, "-m", "avflow"]
    out = subprocess.run(avflow_cli + ["nodes", "--json", "hello.caption"], env=env, capture_output=True,
                         text=True, check=True)
    node = json.loads(out.stdout)["nodes"][0]
    assert node["plugin"] == "hello" and node["params"]["text"]["default"] == "hello"
    res = subprocess.run(avflow_cli + ["run", str(repo_dir / "examples" / "plugin-hello" / "hello.yaml"),
                                       "--set", f"video={media_dir / 'talking3.mp4'}", "--set", "text=hi",
                                       "-o", str(tmp_path / "out"), "--quiet"],
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    import av

    with av.open(str(tmp_path / "out" / "hello.mp4")) as c:
        assert c.streams.video[0].frames == 125 and len(c.streams.audio) == 1
