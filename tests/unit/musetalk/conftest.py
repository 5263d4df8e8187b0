"""Fixtures for the avflow_musetalk tests: a tiny random-weight model folder, small media."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow_musetalk.payloads import EncodedFrame


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A MuseTalk model folder written by the scaffold with ``tiny=True`` (read-only for tests)."""
    from avflow_musetalk.scaffold import write_scaffold

    root = tmp_path_factory.mktemp("musetalk-tiny")
    write_scaffold(root, tiny=True, seed=0)
    return root


def _encoded_frames(n: int, fps: int = 25, size: tuple[int, int] = (24, 32), face: bool = True,
                   start_pts: int = 0) -> list[EncodedFrame]:
    """``n`` small frames whose pixels and latents encode their index (to follow them through)."""
    out = []
    for i in range(n):
        img = np.full((*size, 3), i % 256, np.uint8)
        out.append(EncodedFrame(pts=start_pts + i, time_base=Fraction(1, fps), image=img, index=i,
                                box=(2, 2, 18, 14) if face else None,
                                latents=np.full((8, 4, 4), float(i), np.float32)))
    return out


@pytest.fixture
def encoded_frames():
    """``encoded_frames(n, fps=25, size=(24, 32), face=True, start_pts=0)``: small EncodedFrames
    whose pixels and latents hold their index."""
    return _encoded_frames
