"""Shared fixtures: the real test media folder, the GPU marker."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEDIA = (REPO / ".." / "shared" / "media").resolve()


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """../shared/media beside the checkout (real clips; see its README)."""
    if not MEDIA.is_dir():
        pytest.skip(f"test media folder {MEDIA} is absent")
    return MEDIA


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
