"""avflow built-in plugin: face nodes (registered through the avflow.plugins entry point).

- ``faces.detect``: MediaPipe face detection (short- or full-range model).
- ``faces.track``: IoU tracker (one-to-one matching, gap interpolation, short-track removal,
  scene cuts); the tracking core is :class:`avflow_faces.tracker.IoUTracker`.
- ``faces.landmarks``: MediaPipe Face Mesh per tracked face; lip indices in :mod:`avflow_faces.mesh`.
- ``faces.crop``: square face crops resized for a scorer (96x96, lower half for SyncNet).

Box geometry shared by them is in :mod:`avflow_faces.geometry`. MediaPipe, OpenCV and SciPy are
imported only when a node opens or runs, so listing or validating graphs stays fast.
"""

from avflow import hookimpl

from .crop import FaceCropper
from .detect import FaceDetect
from .landmarks import FaceLandmarks
from .track import FaceTracker

__all__ = ["FaceCropper", "FaceDetect", "FaceLandmarks", "FaceTracker"]


@hookimpl
def avflow_register_nodes():
    return [FaceDetect, FaceTracker, FaceLandmarks, FaceCropper]
