"""``datasets.face_coefs``: per-frame coefficients from MediaPipe's face mesh."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from avflow import InputError, Node, Port, VideoFrame, param

from ..payloads import FaceCoefficients


@dataclass(frozen=True)
class FaceCoefsConfig:
    max_missing: float = param(0.2, "largest fraction of frames without a detected face; those frames are "
                                    "interpolated from their neighbours, more is an input error", min=0.0, max=1.0)
    min_detection_confidence: float = param(0.5, "MediaPipe face detection threshold", min=0.0, max=1.0)
    min_tracking_confidence: float = param(0.5, "MediaPipe landmark tracking threshold", min=0.0, max=1.0)


class FaceCoefs(Node):
    """Per-frame face coefficients from MediaPipe face mesh (built in, no downloads).

    ``shape`` (100: the subject's neutral geometry), ``exp`` (50: landmark displacements from it)
    and ``pose`` (6: head rotation axis-angle, jaw rotation axis-angle); the vectors are documented
    in :mod:`avflow_datasets.coefs`. The neutral geometry is a statistic of the whole video, so
    the coefficients are emitted when the frames end. Frames without a face are interpolated;
    a video with no face, or with more than ``max_missing`` of its frames without one, is an
    :class:`~avflow.InputError`.

    Ports:
      - in ``frames`` (VideoFrame): RGB frames at a constant rate (``media.decode`` with ``fps``).
      - out ``coefs`` (FaceCoefficients): one per frame, with the frame's pts.

    Example::

        coefs:
          type: datasets.face_coefs
          inputs: {frames: decode.video}
          params: {max_missing: 0.2}
    """

    type = "datasets.face_coefs"
    Config = FaceCoefsConfig
    inputs = {"frames": Port(VideoFrame, "RGB frames at the dataset's frame rate")}
    outputs = {"coefs": Port(FaceCoefficients, "per-frame shape/exp/pose")}

    def open(self, ctx) -> None:
        from avflow_faces.models import face_mesh

        self._mesh = face_mesh(static=False, max_faces=1,
                               min_detection_confidence=self.config.min_detection_confidence,
                               min_tracking_confidence=self.config.min_tracking_confidence)
        self._frames: list[tuple[int, Fraction, int]] = []
        self._geometry: list[Any] = []

    def process(self, port: str, item: VideoFrame, ctx) -> None:
        from avflow_faces.mesh import mesh_points

        from ..coefs import frame_geometry

        result = self._mesh.process(np.ascontiguousarray(item.image))
        points = None
        if result.multi_face_landmarks:
            points = mesh_points(result.multi_face_landmarks[0], item.width, item.height, dtype=np.float64)
        geometry = None if points is None else frame_geometry(points)
        self._frames.append((item.pts, item.time_base, item.index))
        self._geometry.append(geometry)
        ctx.progress.advance()

    def finish(self, ctx) -> dict[str, list[FaceCoefficients]]:
        from ..coefs import TRACKED, coefficients, fill_missing

        n = len(self._frames)
        if n == 0:
            raise InputError("no video frame reached datasets.face_coefs")
        found = np.array([g is not None for g in self._geometry])
        n_found = int(found.sum())
        if n_found == 0:
            raise InputError(f"no face found in any of the {n} frames")
        if (n - n_found) / n > self.config.max_missing:
            raise InputError(f"no face in {n - n_found} of {n} frames ({(n - n_found) / n:.0%}), more than "
                             f"max_missing={self.config.max_missing:g}")
        rot = np.zeros((n, 3))
        pts = np.zeros((n, len(TRACKED), 3))
        for i, g in enumerate(self._geometry):
            if g is not None:
                rot[i], pts[i] = g.rotation, g.points
        if n_found < n:
            ctx.logger.info("no face in %d of %d frames; interpolated", n - n_found, n)
            rot, pts = fill_missing(rot, found), fill_missing(pts, found)
        coefs = coefficients(rot, pts)
        out = [FaceCoefficients(pts=p, time_base=tb, frame_index=idx, shape=coefs["shape"][i],
                                exp=coefs["exp"][i], pose=coefs["pose"][i], face_found=bool(found[i]))
               for i, (p, tb, idx) in enumerate(self._frames)]
        return {"coefs": out}

    def close(self, ctx) -> None:
        mesh = getattr(self, "_mesh", None)
        if mesh is not None:
            mesh.close()
            self._mesh = None
