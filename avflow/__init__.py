"""avflow: plugin-based audio-visual media processing graphs.

The public API, for embedding:

.. code-block:: python

    import avflow

    result = avflow.run("graphs/transcode.yaml", {"video": "talk.mp4"}, output_dir="out/")
    print(result.outputs["video"].path)

and for writing plugins: :class:`Node`, :class:`Port`, :func:`param`, :data:`hookimpl`, the
payload classes in :mod:`avflow.payloads`, :func:`atomic_path` / :func:`write_text_atomic` (outputs
written atomically), :func:`resolve_device` (``auto`` -> ``cuda`` or ``cpu``) and :func:`read_rttm`
(RTTM from any tool, as :mod:`avflow.evaluation` reads it).

Plugins import only the names in ``__all__`` (from ``avflow`` or the module that defines them);
everything else is internal and may change.
"""

from .executors import collect_inputs, run_many
from .evaluation import read_rttm
from .errors import (AvflowError, Cancelled, GraphValidationError, InputError, Issue, ModelError,
                     NodeError, PluginError)
from .graph.load import load_graph
from .graph.spec import GraphSpec
from .graph.validate import Plan, validate
from .hookspecs import hookimpl, hookspec
from .io import atomic_path, read_torch_checkpoint, write_text_atomic
from .node import (Batch, BatchSpec, ModelFile, ModelScaffold, Node, NodeContext, NoConfig, Port,
                   PreflightContext, param)
from .payloads import (AudioChunk, Box, FaceCrop, FaceDetections, FaceTrack, File, MediaInfo, Payload,
                       Record, Score, Tensor, TrackedFaces, VideoFrame)
from .plugins import get_plugin_manager
from .registry import Registry
from .runtime.batching import resolve_device
from .runtime.runner import ProgressEvent, RunResult, Runner, run

__version__ = "0.1.0"

__all__ = [
    "AudioChunk", "AvflowError", "Batch", "BatchSpec", "Box", "Cancelled", "FaceCrop", "FaceDetections",
    "FaceTrack", "File", "GraphSpec", "GraphValidationError", "InputError", "Issue", "MediaInfo",
    "ModelError", "ModelFile", "ModelScaffold", "Node", "NodeContext", "NodeError", "NoConfig", "Payload", "Plan",
    "PluginError", "Port", "PreflightContext", "ProgressEvent", "Record", "Registry", "RunResult", "Runner", "Score",
    "Tensor", "TrackedFaces", "VideoFrame", "atomic_path", "collect_inputs", "get_plugin_manager", "hookimpl",
    "hookspec", "load_graph", "param", "read_rttm", "read_torch_checkpoint", "resolve_device", "run", "run_many",
    "validate", "write_text_atomic",
]
