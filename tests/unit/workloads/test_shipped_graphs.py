"""Every graph the plugins ship validates against the registered nodes, and is found by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

import avflow

REGISTRY = avflow.Registry.default()
SHIPPED = REGISTRY.graphs()


def test_the_documented_graphs_are_shipped():
    assert {"diarize", "diarize_live", "lipsync", "dataset", "dataset_video", "dataset_video_npz",
            "transcode"} <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_graph_validates(name):
    spec = avflow.load_graph(SHIPPED[name])
    assert spec.name == name
    plan = avflow.validate(spec, REGISTRY, require_all=False)
    assert plan.order


def test_graphs_are_found_by_name_from_any_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "avflow", "validate", "diarize"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "diarize.yaml: ok" in proc.stdout + proc.stderr


def test_the_checkout_path_form_still_works(repo_dir):
    assert avflow.load_graph(repo_dir / "graphs" / "diarize.yaml").name == "diarize"


def test_the_embedding_api_finds_a_shipped_graph_by_name():
    import avflow

    assert avflow.Runner("diarize").spec.name == "diarize"
