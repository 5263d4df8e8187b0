"""avflow built-in plugin: media decoding, transforms and muxing with PyAV, all in-process.

Nodes (one module each in :mod:`.nodes`):

- ``media.decode``: video frames (optionally resampled to a constant fps by timestamp) and audio
  (optionally resampled) of one file, streamed.
- ``media.resize``: frames to a width and/or height.
- ``media.live``: the same ports from a live source (a network stream, a device, or a file read at
  its own pace), with an open timeout and reconnection.
- ``media.mux``: frames and audio into one file, written atomically (or as fragmented mp4,
  playable while it is written).

Shared by them and by other plugins: :class:`avflow_media.writer.MediaWriter` (streaming PyAV
encoder behind ``media.mux``). Registered through the ``avflow.plugins`` entry point.
"""

from avflow import hookimpl

from .nodes.decode import Decode
from .nodes.live import LiveSource
from .nodes.mux import Mux
from .nodes.resize import Resize
from .writer import MediaWriter

__all__ = ["Decode", "LiveSource", "MediaWriter", "Mux", "Resize"]


@hookimpl
def avflow_register_nodes():
    return [Decode, LiveSource, Resize, Mux]
