"""The MediaPipe models of the face plugins: one factory for each object, so that every plugin
that needs a face detector or a face mesh (``faces.*``, ``musetalk.face_region``,
``datasets.face_coefs``) gets it configured the same way.

.. code-block:: python

    from avflow_faces.models import face_detection, face_mesh
    from avflow_faces.mesh import mesh_points

    with face_mesh(static=True) as mesh:
        result = mesh.process(rgb)                    # HxWx3 uint8 RGB
        points = mesh_points(result.multi_face_landmarks[0], w, h)

MediaPipe is imported on the first call, not with this module. The bundled models need no
download. Their C++ start-up log lines are dropped by ``avflow run`` unless ``--verbose``
(:mod:`avflow.runtime.native_logs`).
"""

from __future__ import annotations

from typing import Any

#: ``model_selection`` of MediaPipe's face detector: the short-range (within ~2 m) and the
#: full-range (small, far faces) BlazeFace model.
DETECTOR_MODELS = {"short": 0, "full": 1}


def face_detection(model: str = "full", min_confidence: float = 0.5) -> Any:
    """A ``mediapipe.solutions.face_detection.FaceDetection`` (close it, or use it as a context).

    :param model: ``"short"`` or ``"full"`` (see :data:`DETECTOR_MODELS`).
    :param min_confidence: least score of a detection.
    """
    import mediapipe as mp

    if model not in DETECTOR_MODELS:
        raise ValueError(f"unknown face detector model {model!r}; valid: {', '.join(DETECTOR_MODELS)}")
    return mp.solutions.face_detection.FaceDetection(model_selection=DETECTOR_MODELS[model],
                                                     min_detection_confidence=float(min_confidence))


def face_mesh(static: bool, max_faces: int = 1, min_detection_confidence: float = 0.5,
              min_tracking_confidence: float = 0.5) -> Any:
    """A ``mediapipe.solutions.face_mesh.FaceMesh`` with 468 landmarks (no iris refinement).

    :param static: every image on its own (runs the mesh's face detector each time); False:
        video mode, each image placed from the previous one's landmarks, the detector only when
        the face is lost.
    :param max_faces: most faces per image.
    :param min_detection_confidence: least score of the mesh's own face detection.
    :param min_tracking_confidence: video mode: below this the face counts as lost.
    """
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=bool(static), max_num_faces=int(max_faces), refine_landmarks=False,
        min_detection_confidence=float(min_detection_confidence),
        min_tracking_confidence=float(min_tracking_confidence))
