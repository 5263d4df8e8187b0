"""Make a plugin discoverable through a real ``avflow.plugins`` entry point, without a build."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_plugin_distribution(folder: str | Path, name: str, module_source: str,
                              entry_point: str | None = None, version: str = "0.0.1") -> Path:
    """Write ``<module>.py`` and its ``.dist-info`` (with the entry point) into ``folder``.

    Put ``folder`` on ``sys.path`` (or ``PYTHONPATH``) and ``importlib.metadata`` finds the
    distribution, exactly as it finds an installed package. Returns ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    (folder / f"{module}.py").write_text(textwrap.dedent(module_source))
    dist = folder / f"{module}-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[avflow.plugins]\n{entry_point or module} = {module}\n")
    (dist / "RECORD").write_text("")
    return folder
