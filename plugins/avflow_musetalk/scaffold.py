"""``avflow models scaffold DIR --random [--tiny]``: a MuseTalk model folder with random weights.

Writes exactly the layout and file formats of MuseTalk's ``models/`` folder (see
:mod:`.layout`), so the whole loading and inference path runs without downloads:

- ``musetalkV15/musetalk.json`` + ``unet.pth`` and ``musetalk/musetalk.json`` +
  ``pytorch_model.bin``: a diffusers ``UNet2DConditionModel`` config and a ``torch.save``'d state
  dict (the v1 file is a hard link to the v1.5 one when the file system allows).
- ``sd-vae/config.json`` + ``diffusion_pytorch_model.bin``: ``AutoencoderKL`` (loadable with
  ``AutoencoderKL.from_pretrained(dir)``).
- ``whisper/config.json`` + ``pytorch_model.bin`` + ``preprocessor_config.json``: a Hugging Face
  ``WhisperForConditionalGeneration`` checkpoint (``model.encoder.*``, ``model.decoder.*``; the
  output projection is tied to the token embedding), loadable with ``WhisperModel.from_pretrained(dir)``.
- ``face-parse-bisent/79999_iter.pth`` + ``resnet18-5c106cde.pth``: MuseTalk's BiSeNet face
  parser and torchvision's ImageNet ResNet-18, in the legacy (pre-zip) ``torch.save`` format those
  2019 / 2017 files have; BiSeNet has no config, so these are always full size (13.3 M and
  11.7 M parameters, ~100 MB together), ``tiny`` or not.

Full size follows MuseTalk's configs (UNet 320-640-1280-1280, cross-attention 384; sd-vae-ft-mse;
whisper-tiny). ``tiny`` keeps every structural property the code relies on (8 input channels,
4 latent channels, 256 -> 32x32 latents, 5 Whisper hidden states, 80 mel bins) with a few
channels, so a CPU run takes seconds.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from avflow import atomic_path, write_text_atomic

UNET_FULL: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0.dev0", "act_fn": "silu",
    "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "cross_attention_dim": 384,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 8, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
UNET_TINY: dict[str, Any] = {
    **UNET_FULL, "attention_head_dim": 2, "block_out_channels": [16, 32], "cross_attention_dim": 16,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "layers_per_block": 1, "norm_num_groups": 8,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "sample_size": 32,
}
VAE_FULL: dict[str, Any] = {  # stabilityai/sd-vae-ft-mse
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 256, "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
VAE_TINY: dict[str, Any] = {**VAE_FULL, "block_out_channels": [8, 8, 16, 16], "layers_per_block": 1,
                            "norm_num_groups": 4}
WHISPER_FULL: dict[str, Any] = {  # openai/whisper-tiny
    "d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "encoder_attention_heads": 6,
    "decoder_attention_heads": 6, "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, "num_mel_bins": 80,
    "vocab_size": 51865, "max_source_positions": 1500, "max_target_positions": 448,
}
WHISPER_TINY: dict[str, Any] = {
    **WHISPER_FULL, "d_model": 16, "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
    "encoder_ffn_dim": 32, "decoder_ffn_dim": 32, "vocab_size": 64, "max_target_positions": 16,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1, "decoder_start_token_id": 2,
    "suppress_tokens": None, "begin_suppress_tokens": None,
}


_POOL = 1_000_003  # normal samples drawn once; a prime length, so tiles never align with shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Any]:
    """Random tensors for ``shapes``: weights ~ N(0, 1/fan_in), norm scales 1, biases 0
    (BatchNorm statistics: mean 0, variance 1).

    Fan-in scaling keeps activations of a deep random network finite and O(1), so random
    weights exercise real arithmetic (no NaN/inf) through every layer. Weights are windows of
    one pool of normal samples at random offsets: drawing 850 M fresh samples for the
    full-size UNet would cost minutes of CPU for no benefit to a test.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    pool = torch.randn(_POOL, generator=g)
    out = {}
    for name, shape in shapes.items():
        if len(shape) >= 2:
            n = math.prod(shape)
            flat = torch.empty(n)
            done, offset = 0, int(torch.randint(0, _POOL, (1,), generator=g))
            while done < n:
                k = min(n - done, _POOL - offset)
                flat[done:done + k] = pool[offset:offset + k]
                done, offset = done + k, 0
            t = flat.mul_(1.0 / math.sqrt(math.prod(shape[1:]))).reshape(shape)
        elif name.endswith("num_batches_tracked"):  # BatchNorm's step counter
            t = torch.zeros(shape, dtype=torch.long)
        elif name.endswith(("weight", "running_var")):
            t = torch.ones(shape)
        else:
            t = torch.zeros(shape)
        out[name] = t
    return out


def _meta_shapes(build) -> dict[str, tuple[int, ...]]:
    import torch

    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _save(state: dict[str, Any], path: Path, legacy: bool = False) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, str(tmp), _use_new_zipfile_serialization=not legacy)
    return path


def _json(data: dict[str, Any], path: Path) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_unet(root: Path, tiny: bool, seed: int) -> list[Path]:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    config = UNET_TINY if tiny else UNET_FULL
    state = random_state(_meta_shapes(lambda: UNet2DConditionModel.from_config(config)), seed)
    v15 = [_json(config, root / "musetalkV15" / "musetalk.json"), _save(state, root / "musetalkV15" / "unet.pth")]
    del state
    v1_weights = root / "musetalk" / "pytorch_model.bin"
    v1_weights.parent.mkdir(parents=True, exist_ok=True)
    v1_weights.unlink(missing_ok=True)
    try:  # the same bytes in both formats' places: no second multi-GB file
        os.link(v15[1], v1_weights)
    except OSError:
        import shutil

        with atomic_path(v1_weights) as tmp:
            shutil.copyfile(v15[1], tmp)
    return [*v15, _json(config, root / "musetalk" / "musetalk.json"), v1_weights]


def write_vae(root: Path, tiny: bool, seed: int) -> list[Path]:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    config = VAE_TINY if tiny else VAE_FULL
    state = random_state(_meta_shapes(lambda: AutoencoderKL.from_config(config)), seed + 1)
    return [_json(config, root / "sd-vae" / "config.json"),
            _save(state, root / "sd-vae" / "diffusion_pytorch_model.bin")]


def write_whisper(root: Path, tiny: bool, seed: int) -> list[Path]:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(**(WHISPER_TINY if tiny else WHISPER_FULL))
    config.architectures = ["WhisperForConditionalGeneration"]
    # proj_out.weight is tied to the decoder's token embedding and, as in the real file, not saved.
    shapes = {f"model.{k}": v for k, v in _meta_shapes(lambda: WhisperModel(config)).items()}
    state = random_state(shapes, seed + 2)
    folder = root / "whisper"
    config_path = _json(config.to_dict(), folder / "config.json")
    weights = _save(state, folder / "pytorch_model.bin")
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    fe_path = _json(extractor.to_dict(), folder / "preprocessor_config.json")
    return [config_path, weights, fe_path]


def write_face_parsing(root: Path, seed: int) -> list[Path]:
    from .bisenet import BiSeNet, ResNet18
    from .layout import FACE_PARSE_FILES

    parser_path, backbone_path = (root / f.path for f in FACE_PARSE_FILES)
    # torchvision's file predates BatchNorm's step counters; the face parser's has them.
    backbone = {k: v for k, v in _meta_shapes(lambda: ResNet18(classifier=True)).items()
                if not k.endswith("num_batches_tracked")}
    written = [_save(random_state(backbone, seed + 3), backbone_path, legacy=True)]
    written.insert(0, _save(random_state(_meta_shapes(BiSeNet), seed + 4), parser_path, legacy=True))
    return written


def write_scaffold(directory: str | Path, tiny: bool = False, seed: int = 0) -> list[Path]:
    """Write the whole MuseTalk model folder with random weights; return the files written."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    return [*write_unet(root, tiny, seed), *write_vae(root, tiny, seed), *write_whisper(root, tiny, seed),
            *write_face_parsing(root, seed)]
