"""avflow built-in plugin: media decoding, transforms and muxing with PyAV, all in-process."""

from avflow import hookimpl

from .decode import Decode
from .mux import Mux
from .transform import Resize
from .writer import MediaWriter

__all__ = ["Decode", "MediaWriter", "Mux", "Resize"]


@hookimpl
def avflow_register_nodes():
    return [Decode, Resize, Mux]
