"""avflow built-in plugin: media decoding, transforms and muxing with PyAV, all in-process.

Nodes (one module each in :mod:`.nodes`):

- ``media.decode``: video frames (optionally resampled to a constant fps by timestamp) and audio
  (optionally resampled) of one file, streamed.
- ``media.resize``: frames to a width and/or height.
- ``media.mux``: frames and audio into one file, written atomically.

Shared by them and by other plugins: :class:`avflow_media.writer.MediaWriter` (streaming PyAV
encoder behind ``media.mux``). Registered through the ``avflow.plugins`` entry point.
"""

from avflow import hookimpl

from .nodes.decode import Decode
from .nodes.mux import Mux
from .nodes.resize import Resize
from .writer import MediaWriter

__all__ = ["Decode", "MediaWriter", "Mux", "Resize"]


@hookimpl
def avflow_register_nodes():
    return [Decode, Resize, Mux]
