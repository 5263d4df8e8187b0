"""MediaPipe face detection + face mesh for one frame, and the per-video cache of their results.

The detector (bundled BlazeFace model) finds the largest face; the face mesh (bundled model)
runs on a square crop around it, so its landmarks belong to that face. Results are cached per
input video, keyed by content: the cache file's name comes from the first frame's hash and the
settings, and every entry stores its frame's hash, so a frame is only reused when its pixels are
identical. A second audio on the same avatar therefore skips detection entirely.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avflow import atomic_path
from avflow_faces.mesh import N_LANDMARKS, mesh_points

CACHE_VERSION = 1  # bump when detection results would change for the same frames
_MESH_INPUT_MAX = 384  # crops larger than this are scaled down for the mesh (it runs at 192 px)


@dataclass
class FaceResult:
    """What was found in one frame: the detector's box (x1, y1, x2, y2, score) and mesh points."""

    detection: np.ndarray | None  # (5,) float32
    mesh: np.ndarray | None  # (468, 2) float32 frame pixels


def frame_hash(image: np.ndarray) -> bytes:
    """16-byte BLAKE2b digest of the frame's pixels and shape."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.digest()


class FaceMesher:
    """Largest face of a frame: detection box and 468 mesh points (RGB uint8 input)."""

    def __init__(self, min_confidence: float = 0.5, full_range: bool = True):
        from avflow_faces.models import face_detection, face_mesh

        self._det = face_detection("full" if full_range else "short", min_confidence)
        self._mesh = face_mesh(static=True, max_faces=1, min_detection_confidence=0.3)

    def __call__(self, image: np.ndarray) -> FaceResult:
        h, w = image.shape[:2]
        found = self._det.process(np.ascontiguousarray(image))
        best = None
        for d in found.detections or ():
            bb = d.location_data.relative_bounding_box
            x1, y1 = max(0.0, bb.xmin * w), max(0.0, bb.ymin * h)
            x2, y2 = min(float(w), (bb.xmin + bb.width) * w), min(float(h), (bb.ymin + bb.height) * h)
            area = (x2 - x1) * (y2 - y1)
            if x2 > x1 and y2 > y1 and (best is None or area > best[0]):
                best = (area, np.array([x1, y1, x2, y2, d.score[0]], np.float32))
        if best is None:
            return FaceResult(None, None)
        det = best[1]
        return FaceResult(det, self._mesh_around(image, det))

    def _mesh_around(self, image: np.ndarray, det: np.ndarray) -> np.ndarray | None:
        import cv2

        h, w = image.shape[:2]
        cx, cy = (det[0] + det[2]) / 2, (det[1] + det[3]) / 2
        side = int(round(1.7 * max(det[2] - det[0], det[3] - det[1])))
        ox, oy = int(round(cx - side / 2)), int(round(cy - side / 2))
        # A square crop (the mesh model assumes square input), zero-padded past the frame edges.
        crop = np.zeros((side, side, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(ox, 0), max(oy, 0), min(ox + side, w), min(oy + side, h)
        crop[sy1 - oy:sy2 - oy, sx1 - ox:sx2 - ox] = image[sy1:sy2, sx1:sx2]
        scale = 1.0
        if side > _MESH_INPUT_MAX:
            scale = _MESH_INPUT_MAX / side
            crop = cv2.resize(crop, (_MESH_INPUT_MAX, _MESH_INPUT_MAX), interpolation=cv2.INTER_AREA)
        res = self._mesh.process(crop)
        if not res.multi_face_landmarks:
            return None
        n = crop.shape[0]
        pts = mesh_points(res.multi_face_landmarks[0], n, n)
        if pts is None:
            return None
        pts = pts[:, :2] / scale + (ox, oy)
        # The mesh must describe the detected face: its centre inside the detection box.
        mx, my = pts.mean(axis=0)
        if not (det[0] <= mx <= det[2] and det[1] <= my <= det[3]):
            return None
        return pts

    def close(self) -> None:
        self._det.close()
        self._mesh.close()


class FaceCache:
    """Detection results of one video, stored as ``.npz`` (no pickle) under the cache folder.

    ``get(i, digest)`` returns frame ``i``'s result if frame ``i`` had exactly that content;
    ``put`` records a new one; ``save`` writes the file atomically when something changed.
    """

    def __init__(self, folder: Path, first_frame: np.ndarray, settings: str):
        key = hashlib.blake2b(digest_size=16)
        key.update(f"v{CACHE_VERSION}|{settings}|".encode())
        key.update(frame_hash(first_frame))
        self.path = Path(folder) / f"{key.hexdigest()}.npz"
        self._hashes: list[bytes] = []
        self._results: list[FaceResult | None] = []
        self.dirty = False
        self.hits = 0
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                hashes, det, mesh = data["hashes"], data["detection"], data["mesh"]
        except (OSError, KeyError, ValueError):
            return  # unreadable or from another version: recompute and overwrite
        if hashes.ndim != 2 or len(det) != len(hashes) or len(mesh) != len(hashes):
            return
        self._hashes = [bytes(h) for h in hashes]
        self._results = [FaceResult(None if np.isnan(d[0]) else d, None if np.isnan(m[0, 0]) else m)
                         for d, m in zip(det, mesh)]

    def __len__(self) -> int:
        return len(self._hashes)

    def get(self, index: int, digest: bytes) -> FaceResult | None:
        if index < len(self._hashes) and self._hashes[index] == digest:
            self.hits += 1
            return self._results[index]
        return None

    def put(self, index: int, digest: bytes, result: FaceResult) -> None:
        while len(self._hashes) <= index:
            self._hashes.append(b"\0" * 16)
            self._results.append(None)
        self._hashes[index] = digest
        self._results[index] = result
        self.dirty = True

    def save(self) -> Path | None:
        if not self.dirty or not self._hashes:
            return None
        n = len(self._hashes)
        det = np.full((n, 5), np.nan, np.float32)
        mesh = np.full((n, N_LANDMARKS, 2), np.nan, np.float32)
        for i, r in enumerate(self._results):
            if r is not None and r.detection is not None:
                det[i] = r.detection
            if r is not None and r.mesh is not None:
                mesh[i] = r.mesh
        hashes = np.frombuffer(b"".join(self._hashes), np.uint8).reshape(n, 16)
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, hashes=hashes, detection=det, mesh=mesh)
        self.dirty = False
        return self.path
