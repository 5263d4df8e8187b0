"""avflow built-in plugin: face nodes (registered through the avflow.plugins entry point).

Nodes (one module each in :mod:`.nodes`):

- ``faces.detect``: MediaPipe face detection (short- or full-range model).
- ``faces.track``: IoU tracker (one-to-one matching, gap interpolation, short-track removal,
  scene cuts); the tracking core is :class:`avflow_faces.tracker.IoUTracker`.
- ``faces.landmarks``: MediaPipe Face Mesh per tracked face.
- ``faces.crop``: square face crops resized for a scorer (96x96, lower half for SyncNet).

Shared by them and by the other plugins: :mod:`avflow_faces.mesh` (the face-mesh vocabulary:
landmark indices, distances, MediaPipe results as pixel arrays), :mod:`avflow_faces.models` (the
one factory of MediaPipe FaceDetection and FaceMesh objects), :mod:`avflow_faces.geometry` (box
geometry), :class:`avflow_faces.FrameJoin` (frames meet their tracks) and
:class:`avflow_faces.SpeechSpans` (where speech is, for nodes that skip work far from it). MediaPipe,
OpenCV and SciPy are imported only when a node opens or runs, so listing or validating graphs
stays fast.
"""

from avflow import hookimpl

from ._common import FrameJoin, SpeechSpans
from .nodes.crop import FaceCropper
from .nodes.detect import FaceDetect
from .nodes.landmarks import FaceLandmarks
from .nodes.track import FaceTracker

__all__ = ["FaceCropper", "FaceDetect", "FaceLandmarks", "FaceTracker", "FrameJoin", "SpeechSpans"]


@hookimpl
def avflow_register_nodes():
    return [FaceDetect, FaceTracker, FaceLandmarks, FaceCropper]
