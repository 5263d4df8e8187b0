"""Fixtures for the avflow_faces tests: a few real frames decoded with PyAV, small and cached."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from avflow import VideoFrame


def decode_frames(path, n: int, size: int | None = None) -> list[np.ndarray]:
    """The first ``n`` frames of a clip as RGB arrays (optionally resized to size x size)."""
    import cv2

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            if size is not None:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            out.append(img)
            if len(out) >= n:
                break
    return out


def as_frames(images, start: int = 0, time_base=Fraction(1, 25)) -> list[VideoFrame]:
    return [VideoFrame(pts=start + i, time_base=time_base, image=img, index=start + i)
            for i, img in enumerate(images)]


@pytest.fixture(scope="session")
def talking(media_dir):
    """Four frames of each talking clip at full size: {name: [HxWx3 uint8, ...]}."""
    return {name: decode_frames(media_dir / f"{name}.mp4", 4) for name in ("talking1", "talking2", "talking3")}


@pytest.fixture(scope="session")
def two_faces(talking):
    """talking1 and talking2 side by side, 350 px each: one 350x700 frame with two faces."""
    import cv2

    left = cv2.resize(talking["talking1"][0], (350, 350), interpolation=cv2.INTER_AREA)
    right = cv2.resize(talking["talking2"][0], (350, 350), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.concatenate([left, right], axis=1))


@pytest.fixture(scope="session")
def make_frames():
    """``make_frames(images, start=0)``: wrap RGB arrays into VideoFrames with index = pts."""
    return as_frames


@pytest.fixture(scope="session")
def decode():
    """``decode(path, n, size=None)``: the first frames of a clip (see :func:`decode_frames`)."""
    return decode_frames
