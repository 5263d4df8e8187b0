"""The layering rule: the framework never imports a plugin; plugins use only the public API."""

from __future__ import annotations

import ast
from pathlib import Path

import avflow

REPO = Path(__file__).resolve().parents[2]
PLUGINS = sorted(p.parent.name for p in (REPO / "plugins").glob("*/__init__.py"))
PENDING: set[str] = set()


def _imports(path: Path):
    """``(module, [names])`` of every import in a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(REPO)
    if rel.parts[0] == "plugins":
        rel = rel.relative_to("plugins")
    package = ".".join(rel.parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            yield module, [a.name for a in node.names]


def test_the_framework_imports_no_plugin():
    found = []
    for path in sorted((REPO / "avflow").rglob("*.py")):
        for module, _ in _imports(path):
            if module.split(".")[0] in PLUGINS:
                found.append(f"{path.relative_to(REPO)}: {module}")
    assert found == []


def test_plugins_import_only_the_public_api():
    public = set(avflow.__all__)
    found = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        if str(path.relative_to(REPO)) in PENDING:
            continue
        for module, names in _imports(path):
            if module == "avflow" or module.startswith("avflow."):
                private = [n for n in names if n not in public] or ([] if names else [module])
                if module == "avflow" and not names:
                    private = []
                found += [f"{path.relative_to(REPO)}: {module}.{n}" for n in private]
    assert found == []


def test_avflow_imports_with_the_datasets_plugin_blocked():
    import subprocess
    import sys

    code = ("import sys; sys.modules['avflow_datasets'] = None\n"
            "import avflow, avflow.datasets\n"
            "try:\n    avflow.datasets.AVClipDataset\nexcept ImportError as exc:\n    print('ImportError', exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ImportError" in proc.stdout


def test_avflow_datasets_is_an_alias_of_the_plugin():
    import warnings

    import avflow.datasets
    import avflow_datasets

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert avflow.datasets.AVClipDataset is avflow_datasets.AVClipDataset
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_mediapipe_face_models_are_made_in_one_place():
    """Every FaceMesh / FaceDetection comes from avflow_faces.models (one configuration)."""
    home = REPO / "plugins" / "avflow_faces" / "models.py"
    found = [str(p.relative_to(REPO)) for p in sorted((REPO / "plugins").rglob("*.py"))
             if p != home and str(p.relative_to(REPO)) not in PENDING
             and ("face_mesh.FaceMesh(" in p.read_text(encoding="utf-8")
                  or "face_detection.FaceDetection(" in p.read_text(encoding="utf-8"))]
    assert found == []


LAYOUT_PENDING: set[str] = set()


def test_one_layout_for_every_plugin():
    """Node classes live in <plugin>.nodes, and the plugin's docstring names every node it registers."""
    import importlib

    registry = avflow.Registry.default()
    problems = []
    for node_type, entry in registry:
        plugin = entry.plugin
        if plugin in LAYOUT_PENDING or entry.cls.__module__.split(".")[0] not in PLUGINS:
            continue
        package = entry.cls.__module__.split(".")[0]
        if not entry.cls.__module__.startswith(f"{package}.nodes."):
            problems.append(f"{node_type}: defined in {entry.cls.__module__}, not in {package}.nodes")
        if f"``{node_type}``" not in (importlib.import_module(package).__doc__ or ""):
            problems.append(f"{node_type}: not listed in the docstring of {package}")
    assert problems == []
