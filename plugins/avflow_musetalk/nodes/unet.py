"""``musetalk.unet``: MuseTalk's one-step latent inpainting, driven by the audio prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from avflow import BatchSpec, ModelError, Node, Port, param

from ..layout import UNET_MODELS, VAE_FILES, preflight_model_dir
from ..payloads import PredFrame, PromptFrame, advance


@dataclass(frozen=True)
class UNetConfig:
    models: Path = param(doc="MuseTalk model folder (uses musetalkV15/ or musetalk/)")
    version: Literal["v15", "v1"] = param("v15", "v15: musetalkV15/unet.pth; v1: musetalk/pytorch_model.bin")
    batch_size: int = param(8, "frames per UNet call", min=1)
    dtype: Literal["auto", "float16", "float32"] = param("auto", "auto: float16 on CUDA, float32 on CPU")


class UNetGenerator(Node):
    """Generate the face's latents from the masked + reference latents and the audio prompt.

    The UNet (diffusers ``UNet2DConditionModel`` from ``musetalk.json`` and the version's
    weights) runs one denoising step at timestep 0 on the 8-channel input; the audio prompt,
    plus MuseTalk's sinusoidal positional encoding, enters through cross-attention. Frames are
    batched (``batch_size``); float16 on CUDA. Frames without a face are skipped.

    Ports:
      - in ``frames`` (PromptFrame): frames with ``latents`` and ``prompt`` (batched).
      - out ``frames`` (PredFrame): the same frames with ``pred`` (4 latent channels).

    Example::

        unet:
          type: musetalk.unet
          inputs: {frames: prompts.frames}
          params: {models: "${models}", version: v15, batch_size: 8}
    """

    type = "musetalk.unet"
    open_alone = True  # loading imports diffusers / transformers, whose lazy imports are not thread-safe
    Config = UNetConfig
    models = UNET_MODELS

    @classmethod
    def preflight(cls, config, check):
        """The whole model folder, checked as when the node opens (one list of missing files)."""
        return preflight_model_dir(config)
    inputs = {"frames": Port(PromptFrame, "frames with UNet input latents and audio prompt")}
    outputs = {"frames": Port(PredFrame, "frames with generated latents")}
    batch = BatchSpec(port="frames")
    queue_size = 16

    def open(self, ctx) -> None:
        import torch

        from ..loading import load_unet, read_json, resolve_dtype, whisper_config

        c = self.config
        self._dtype = resolve_dtype(c.dtype, ctx.device)
        self._unet, config = ctx.resource(("musetalk.unet", str(c.models), c.version, ctx.device, str(self._dtype)),
                                          lambda: load_unet(c.models, c.version, ctx.device, self._dtype))
        self._cross = int(config["cross_attention_dim"])
        self._out = int(config["out_channels"])
        # The three models must fit together; say so now rather than fail inside a matmul.
        wconf, wpath = whisper_config(c.models)
        if wconf.d_model != self._cross:
            raise ModelError(f"the UNet's cross_attention_dim is {self._cross} but Whisper's d_model is "
                             f"{wconf.d_model} ({wpath}); the audio prompt would not fit")
        vpath = Path(c.models) / VAE_FILES[0].path
        latent = int(read_json(vpath, "sd-vae config").get("latent_channels", 4))
        if int(config["in_channels"]) != 2 * latent or self._out != latent:
            raise ModelError(f"the UNet takes {config['in_channels']} channels and gives {self._out}, but the VAE "
                             f"({vpath}) has {latent} latent channels: expected {2 * latent} in and {latent} out")
        self._timestep = torch.zeros(1, dtype=torch.long, device=ctx.device)
        self._pe = None

    def process_batch(self, batch, ctx):
        import numpy as np
        import torch

        from ..positional import add_positional_encoding, sinusoidal_table

        lat, prompt = batch.tensors["latents"], batch.tensors["prompt"]
        if prompt.shape[-1] != self._cross:
            raise ModelError(f"audio prompts have {prompt.shape[-1]} features but the UNet's cross_attention_dim "
                             f"is {self._cross}")
        n = len(batch)
        faces = [i for i, it in enumerate(batch.items) if it.has_face]
        pred = np.zeros((n, self._out, *lat.shape[2:]), np.float32)
        if faces:
            if self._pe is None or self._pe.shape[0] < prompt.shape[1]:
                self._pe = torch.from_numpy(sinusoidal_table(prompt.shape[1], self._cross)).to(prompt.device)
            if len(faces) < n:
                lat, prompt = lat[faces], prompt[faces]
            with torch.inference_mode():
                audio = add_positional_encoding(prompt.float(), self._pe).to(self._dtype)
                out = self._unet(lat.to(self._dtype), self._timestep, encoder_hidden_states=audio).sample
                pred[faces] = out.float().cpu().numpy()
        return {"frames": [advance(it, PredFrame, latents=None, prompt=None, pred=pred[i])
                           for i, it in enumerate(batch.items)]}

    def close(self, ctx) -> None:
        self._unet = None
