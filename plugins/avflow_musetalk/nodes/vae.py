"""``musetalk.vae_encode`` and ``musetalk.vae_decode``: the Stable Diffusion VAE around the UNet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from avflow import BatchSpec, Node, Port, param

from ..layout import VAE_MODELS, preflight_model_dir
from ..payloads import CropFrame, EncodedFrame, GeneratedFrame, PredFrame, advance


@dataclass(frozen=True)
class VaeConfig:
    models: Path = param(doc="MuseTalk model folder (uses sd-vae/)")
    version: Literal["v15", "v1"] = param("v15", "MuseTalk version (which files the folder must hold)")
    batch_size: int = param(8, "frames per VAE call", min=1)
    dtype: Literal["auto", "float16", "float32"] = param("auto", "auto: float16 on CUDA, float32 on CPU")


class _Vae(Node):
    Config = VaeConfig
    models = VAE_MODELS
    open_alone = True  # loading imports diffusers, whose lazy imports are not thread-safe

    @classmethod
    def preflight(cls, config, check):
        """The whole model folder, checked as when the node opens (one list of missing files)."""
        return preflight_model_dir(config)
    batch = BatchSpec(port="frames")
    queue_size = 8

    def open(self, ctx) -> None:
        from ..loading import load_vae, resolve_dtype

        self._dtype = resolve_dtype(self.config.dtype, ctx.device)
        c = self.config
        # Encoder and decoder nodes share one VAE; a worker of run_many keeps it for all inputs.
        self._vae = ctx.resource(("musetalk.vae", str(c.models), c.version, ctx.device, str(self._dtype)),
                                 lambda: load_vae(c.models, ctx.device, self._dtype, c.version))
        self._scale = float(self._vae.config.scaling_factor)
        self._channels = int(self._vae.config.latent_channels)

    def close(self, ctx) -> None:
        self._vae = None


class VaeEncode(_Vae):
    """Encode face crops into the UNet's input: masked-half latents + reference latents.

    Each 256x256 crop is encoded twice in one batch: with its lower half blanked (black, i.e.
    -1 after normalisation, as MuseTalk masks it) and whole, as the reference. The latents
    (distribution mean, times the config's ``scaling_factor``, 0.18215 for sd-vae-ft-mse) are
    concatenated on channels: ``(8, 32, 32)``. MuseTalk samples the latent distribution
    (``latent_dist.sample()``); the mean (``mode()``) is used here, a choice: the same
    input gives the same output (a sample adds the posterior's noise, ``exp(logvar / 2)`` times a
    standard normal, to every latent, differently on every run).

    Ports:
      - in ``frames`` (CropFrame): frames with their face crop (batched).
      - out ``frames`` (EncodedFrame): the same frames with ``latents``.

    Example::

        encode:
          type: musetalk.vae_encode
          inputs: {frames: crop.frames}
          params: {models: "${models}", batch_size: 8}
    """

    type = "musetalk.vae_encode"
    inputs = {"frames": Port(CropFrame, "frames with a face crop")}
    outputs = {"frames": Port(EncodedFrame, "frames with UNet input latents")}

    def process_batch(self, batch, ctx):
        import numpy as np
        import torch

        crops = batch.tensors["crop"]
        n, size = len(batch), crops.shape[1]
        faces = [i for i, it in enumerate(batch.items) if it.has_face]
        latents = np.zeros((n, 2 * self._channels, size // 8, size // 8), np.float32)
        if faces:
            with torch.inference_mode():
                x = crops[faces] if len(faces) < n else crops
                # NHWC -> NCHW, then contiguous: a channels-last-strided input takes other
                # convolution kernels, and the UNet's output moved by 6.6e-4 (relative) against
                # MuseTalk's for the same crops (2.5e-6 once contiguous, as MuseTalk's tensors are).
                x = x.permute(0, 3, 1, 2).contiguous().to(self._dtype) / 127.5 - 1.0
                masked = x.clone()
                masked[:, :, size // 2:, :] = -1.0
                z = self._vae.encode(torch.cat([masked, x])).latent_dist.mode() * self._scale
                z_masked, z_ref = z.chunk(2)
                latents[faces] = torch.cat([z_masked, z_ref], dim=1).float().cpu().numpy()
        return {"frames": [advance(it, EncodedFrame, crop=None, latents=latents[i])
                           for i, it in enumerate(batch.items)]}


class VaeDecode(_Vae):
    """Decode the UNet's latents into 256x256 RGB faces.

    Latents are divided by ``scaling_factor``, decoded, mapped from [-1, 1] to uint8.

    Ports:
      - in ``frames`` (PredFrame): frames with generated latents (batched).
      - out ``frames`` (GeneratedFrame): the same frames with ``face`` (256x256x3 uint8 RGB).

    Example::

        decode_face:
          type: musetalk.vae_decode
          inputs: {frames: unet.frames}
          params: {models: "${models}", batch_size: 8}
    """

    type = "musetalk.vae_decode"
    inputs = {"frames": Port(PredFrame, "frames with generated latents")}
    outputs = {"frames": Port(GeneratedFrame, "frames with a generated face")}

    def process_batch(self, batch, ctx):
        import torch

        faces = [i for i, it in enumerate(batch.items) if it.has_face]
        images = {}
        if faces:
            with torch.inference_mode():
                z = batch.tensors["pred"]
                z = (z[faces] if len(faces) < len(batch) else z).to(self._dtype) / self._scale
                img = self._vae.decode(z).sample
                img = ((img.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
                arr = img.permute(0, 2, 3, 1).contiguous().cpu().numpy()
            images = {i: arr[j] for j, i in enumerate(faces)}
        return {"frames": [advance(it, GeneratedFrame, pred=None, latents=None, prompt=None, face=images.get(i))
                           for i, it in enumerate(batch.items)]}
