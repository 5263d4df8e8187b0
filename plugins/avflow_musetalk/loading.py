"""Loading the user's MuseTalk, VAE and Whisper weights, with errors that say what is wrong.

Weights are read with ``torch.load(weights_only=True)`` (or safetensors), checked key by key
against the architecture built from the folder's own config, then assigned into a model built
on the ``meta`` device (no random initialisation, no second copy in memory). A file that does
not match raises :class:`avflow.ModelError` naming the file, the first mismatching key and both
shapes. Nothing is ever downloaded.

Classes are imported from their defining modules, not from ``diffusers``/``transformers``
top level: those resolve names lazily in a way that is not thread-safe, and the graph's nodes
open (and import) in parallel threads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from avflow import ModelError

from .layout import FACE_PARSE_FILES, UNET_FILES, VAE_FILES, WHISPER_FILES, check_model_dir

if TYPE_CHECKING:
    import torch

#: Old diffusers attention names (e.g. in stabilityai/sd-vae-ft-mse's .bin) -> current ones.
_LEGACY_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def resolve_dtype(name: str, device: str) -> "torch.dtype":
    """``auto`` is float16 on CUDA and float32 elsewhere."""
    import torch

    if name == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    return {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: the {what} must be a JSON object, got {type(data).__name__}")
    return data


def read_state_dict(path: Path, what: str) -> dict[str, "torch.Tensor"]:
    """Tensors of a weights file (torch zip/legacy pickle read with ``weights_only``, or safetensors)."""
    import zipfile

    import torch

    from avflow import read_torch_checkpoint

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = read_torch_checkpoint(path, f"{what} (a torch state dict)", mmap=True)
    except ModelError:
        raise
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: cannot read the {what} as a torch state dict: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: the {what} must hold a state dict (parameter name -> tensor), "
                         f"got {type(state).__name__}")
    return state


def check_state_dict(state: Mapping[str, "torch.Tensor"], expected: Mapping[str, tuple[int, ...]], path: Path,
                     what: str, config: Path | None = None, allow_unexpected: bool = False) -> None:
    """Raise :class:`ModelError` on the first key whose shape differs, then on missing/unexpected keys."""
    arch = f"the {what} architecture" + (f" from {config}" if config else "")
    for key, tensor in state.items():
        want = expected.get(key)
        if want is not None and tuple(tensor.shape) != tuple(want):
            raise ModelError(f"{path}: key '{key}' has shape {tuple(tensor.shape)} but {arch} expects "
                             f"{tuple(want)}; the weights do not match the config")
    missing = [k for k in expected if k not in state]
    if missing:
        raise ModelError(f"{path}: {len(missing)} key(s) of {arch} are missing, first '{missing[0]}' "
                         f"(shape {tuple(expected[missing[0]])}); is this the right file?")
    if not allow_unexpected:
        extra = [k for k in state if k not in expected]
        if extra:
            raise ModelError(f"{path}: {len(extra)} key(s) are not in {arch}, first '{extra[0]}' "
                             f"(shape {tuple(state[extra[0]].shape)}); is this the right file?")


def _assign(model: "torch.nn.Module", state: Mapping[str, "torch.Tensor"], device: str,
            dtype: "torch.dtype") -> "torch.nn.Module":
    # Cast before assigning: the model is never materialised in another dtype.
    state = {k: v.to(dtype=dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # an architecture with non-persistent buffers would need initialising here
        raise RuntimeError(f"tensors not covered by the state dict: {', '.join(left[:5])}")
    if str(device) != "cpu":
        model = model.to(device)
    return model.eval().requires_grad_(False)


def _build(cls: Any, config: dict[str, Any], path: Path, what: str) -> Any:
    import torch

    try:
        with torch.device("meta"):
            return cls.from_config(config)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        raise ModelError(f"{path}: not a valid {what} config: {exc}") from None


def _shapes(model: "torch.nn.Module") -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# -- UNet ------------------------------------------------------------------------------------
def unet_config(models: str | Path, version: str) -> tuple[dict[str, Any], Path]:
    path = Path(models) / UNET_FILES[version][0].path
    return read_json(path, f"MuseTalk {version} UNet config"), path


def load_unet(models: str | Path, version: str, device: str, dtype: "torch.dtype"):
    """MuseTalk's UNet (diffusers ``UNet2DConditionModel``) and its config."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    files = check_model_dir(models, version)
    config, config_path = unet_config(models, version)
    what = f"MuseTalk {version} UNet"
    model = _build(UNet2DConditionModel, config, config_path, what)
    weights = files[UNET_FILES[version][1].path]
    state = read_state_dict(weights, f"{what} weights")
    check_state_dict(state, _shapes(model), weights, what, config_path)
    return _assign(model, state, device, dtype), dict(model.config)


# -- VAE -------------------------------------------------------------------------------------
def convert_legacy_vae_keys(state: dict[str, "torch.Tensor"], expected: Mapping[str, tuple[int, ...]]) -> dict:
    """Rename old diffusers attention keys (``query``/``key``/``value``/``proj_attn``) and squeeze
    1x1-conv attention weights, as ``AutoencoderKL.from_pretrained`` does for old checkpoints."""
    out = {}
    for k, v in state.items():
        if "attentions" in k:
            for old, new in _LEGACY_ATTENTION.items():
                k = k.replace(old, new)
            want = expected.get(k)
            if want is not None and len(want) == 2 and v.dim() == 4 and v.shape[2:] == (1, 1):
                v = v[:, :, 0, 0]
        out[k] = v
    return out


def load_vae(models: str | Path, device: str, dtype: "torch.dtype", version: str = "v15"):
    """The Stable Diffusion VAE (diffusers ``AutoencoderKL``) of ``models/sd-vae``."""
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    files = check_model_dir(models, version)
    config_path = files[VAE_FILES[0].path]
    what = "sd-vae (AutoencoderKL)"
    model = _build(AutoencoderKL, read_json(config_path, f"{what} config"), config_path, what)
    weights = files[VAE_FILES[1].path]
    expected = _shapes(model)
    state = convert_legacy_vae_keys(read_state_dict(weights, f"{what} weights"), expected)
    check_state_dict(state, expected, weights, what, config_path)
    return _assign(model, state, device, dtype)


# -- Whisper ---------------------------------------------------------------------------------
def whisper_config(models: str | Path):
    from transformers.models.whisper.configuration_whisper import WhisperConfig

    path = Path(models) / WHISPER_FILES[0].path
    data = read_json(path, "Whisper config")
    try:
        return WhisperConfig.from_dict(data), path
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: not a valid Whisper config: {exc}") from None


def load_whisper(models: str | Path, device: str, dtype: "torch.dtype", version: str = "v15"):
    """Whisper's encoder (weights from the folder's Whisper model) and its feature extractor.

    The state dict may be a ``WhisperForConditionalGeneration`` (``model.encoder.*``, as on the
    Hub) or a ``WhisperModel`` (``encoder.*``); only the encoder is kept.
    """
    import torch
    from transformers.models.whisper.feature_extraction_whisper import WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    files = check_model_dir(models, version)
    config, config_path = whisper_config(models)
    config._attn_implementation = "sdpa"
    try:
        with torch.device("meta"):
            encoder = WhisperEncoder(config)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{config_path}: cannot build the Whisper encoder from this config: {exc}") from None
    weights = files[WHISPER_FILES[1].path]
    raw = read_state_dict(weights, "Whisper weights")
    state = {}
    for k, v in raw.items():
        k = k[len("model."):] if k.startswith("model.") else k
        if k.startswith("encoder."):
            state[k[len("encoder."):]] = v
    if not state:
        raise ModelError(f"{weights}: no Whisper encoder weights in it (expected keys 'model.encoder.*' "
                         "or 'encoder.*')")
    check_state_dict(state, _shapes(encoder), weights, "Whisper encoder", config_path)
    encoder = _assign(encoder, state, device, dtype)
    fe_path = files[WHISPER_FILES[2].path]
    try:
        extractor = WhisperFeatureExtractor.from_pretrained(str(fe_path.parent), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{fe_path}: cannot load the Whisper feature extractor: {exc}") from None
    if extractor.feature_size != config.num_mel_bins:
        raise ModelError(f"{fe_path}: feature_size {extractor.feature_size} does not match num_mel_bins "
                         f"{config.num_mel_bins} of {config_path}")
    return encoder, extractor, config


# -- Face parser -----------------------------------------------------------------------------
_BN_COUNTER = "num_batches_tracked"  # absent from checkpoints older than torch 0.4.1 (torchvision's resnet18)


def _without_counters(shapes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shapes.items() if not k.endswith(_BN_COUNTER)}


def load_face_parser(models: str | Path, device: str, version: str = "v15"):
    """MuseTalk's BiSeNet face parser from ``face-parse-bisent/`` (always float32, as MuseTalk runs it).

    As MuseTalk builds it: the backbone starts from ``resnet18-5c106cde.pth`` (torchvision's
    ImageNet ResNet-18; its classifier ``fc.*`` is not used), then ``79999_iter.pth`` is loaded
    over the whole network. Both files are checked key by key; BatchNorm's
    ``num_batches_tracked`` counters are optional (old checkpoints lack them; inference ignores them).
    """
    import torch

    from .bisenet import BiSeNet, ResNet18

    files = check_model_dir(models, version, extra=FACE_PARSE_FILES)
    parser_path, backbone_path = (files[f.path] for f in FACE_PARSE_FILES)
    with torch.device("meta"):
        model = BiSeNet()
        backbone_shapes = _shapes(ResNet18(classifier=True))
    backbone = read_state_dict(backbone_path, "ResNet-18 backbone weights")
    check_state_dict(_without_counters(backbone), _without_counters(backbone_shapes), backbone_path,
                     "torchvision ResNet-18")
    weights = read_state_dict(parser_path, "BiSeNet face-parsing weights")
    if weights and all(k.startswith("module.") for k in weights):  # saved from nn.DataParallel
        weights = {k[len("module."):]: v for k, v in weights.items()}
    expected = _shapes(model)
    check_state_dict(_without_counters(weights), _without_counters(expected), parser_path,
                     "BiSeNet face parser (ResNet-18 backbone, 19 classes)")
    state = {f"cp.resnet.{k}": v for k, v in backbone.items() if not k.startswith("fc.")}
    state.update(weights)
    for k in expected:
        if k.endswith(_BN_COUNTER) and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    return _assign(model, {k: v for k, v in state.items() if k in expected}, device, torch.float32)
