"""avflow built-in plugin: MuseTalk-style lip-sync generation (v1 and v1.5), as graph nodes.

The shipped graph ``lipsync`` wires them::

    media.decode (video) -> musetalk.face_region -> musetalk.crop -> musetalk.vae_encode ─┐
    media.decode (audio) -> musetalk.whisper_features ───────────> musetalk.audio_prompts ┘
        -> musetalk.unet -> musetalk.vae_decode -> musetalk.blend -> media.mux (+ audio)

Node classes are in :mod:`.nodes` (``face``: ``musetalk.face_region`` and ``musetalk.crop``;
``vae``: ``musetalk.vae_encode`` and ``musetalk.vae_decode``; ``whisper``:
``musetalk.whisper_features``; ``prompts``: ``musetalk.audio_prompts``; ``unet``:
``musetalk.unet``; ``blend``: ``musetalk.blend``).

Pure modules (no node code, heavy imports inside functions): :mod:`.layout` (model folder),
:mod:`.loading` (checked weight loading), :mod:`.scaffold` (random-weight folders),
:mod:`.slicer` (Whisper slicer), :mod:`.positional`, :mod:`.geometry` (boxes, crop, landmark
mask, paste), :mod:`.bisenet` (the face-parsing network), :mod:`.parsing` (MuseTalk's
face-parsing blend mask), :mod:`.facemesh` (MediaPipe + cache), :mod:`.store` (frames on disk).
"""

from avflow import ModelScaffold, hookimpl

from .nodes.blend import Blend
from .nodes.face import Crop, FaceRegion
from .nodes.prompts import AudioPrompts
from .nodes.unet import UNetGenerator
from .nodes.vae import VaeDecode, VaeEncode
from .nodes.whisper import WhisperFeatures

NODES = [FaceRegion, Crop, VaeEncode, WhisperFeatures, AudioPrompts, UNetGenerator, VaeDecode, Blend]

__all__ = ["AudioPrompts", "Blend", "Crop", "FaceRegion", "NODES", "UNetGenerator", "VaeDecode", "VaeEncode",
           "WhisperFeatures"]


def _write_scaffold(directory, tiny, seed):
    from .scaffold import write_scaffold

    return write_scaffold(directory, tiny, seed)


@hookimpl
def avflow_register_nodes():
    return list(NODES)


@hookimpl
def avflow_register_model_scaffolds():
    return [ModelScaffold(
        name="musetalk",
        doc="MuseTalk v1.5 + v1 UNet, sd-vae-ft-mse, whisper-tiny in MuseTalk's models/ layout",
        write=_write_scaffold)]
