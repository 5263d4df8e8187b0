"""Payloads of the datasets plugin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avflow import Payload


@dataclass
class FaceCoefficients(Payload):
    """One frame's face coefficients (DiffPoseTalk/FLAME-style ``shape``, ``exp``, ``pose`` vectors).

    ``face_found`` is False where no face was detected and the values were interpolated.
    """

    frame_index: int
    shape: np.ndarray
    exp: np.ndarray
    pose: np.ndarray
    face_found: bool = True
