"""Helpers for testing nodes and graphs: run one node on its own, make small media."""

from .node_runner import NodeRunner
from .synth import synth_audio, synth_video, write_video

__all__ = ["NodeRunner", "synth_audio", "synth_video", "write_video"]
