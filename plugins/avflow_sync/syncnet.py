"""Wav2Lip's colour SyncNet (the lip-sync expert): architecture, checkpoint loading, scoring.

The architecture is ``SyncNet_color`` of Wav2Lip's ``models/syncnet.py``: two stacks of
``Conv2d`` blocks (``models/conv.py``: ``conv_block = Sequential(Conv2d, BatchNorm2d)``, then
ReLU, with an identity shortcut added before the ReLU in *residual* blocks). The face encoder
maps 5 stacked lower-half crops (15 x 48 x 96, values in [0, 1]) and the audio encoder one mel
window (1 x 80 x 16) to 512-d vectors; both are L2-normalised and their dot product (cosine
similarity, in [0, 1] since the features come out of a ReLU) is the sync confidence the expert
was trained to output.

Checkpoints are Wav2Lip's format (``lipsync_expert.pth``): a dict with ``state_dict`` (keys
``face_encoder.N.conv_block.{0,1}.*`` and ``audio_encoder.N.conv_block.{0,1}.*``) and the
training state (``optimizer``, ``global_step``, ``global_epoch``). They are read with
``torch.load(..., weights_only=True)``, so a file that would run code when unpickled is refused.

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avflow.errors import ModelError

# (in, out, kernel, stride, padding, residual) of each Conv2d block, in Wav2Lip's order.
FACE_LAYERS: tuple[tuple[Any, ...], ...] = (
    (15, 32, (7, 7), 1, 3, False),
    (32, 64, 5, (1, 2), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 2, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, 2, 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 2, 1, False),
    (512, 512, 3, 1, 1, True),
    (512, 512, 3, 1, 1, True),
    (512, 512, 3, 2, 1, False),
    (512, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
)
AUDIO_LAYERS: tuple[tuple[Any, ...], ...] = (
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
)
FACE_INPUT = (15, 48, 96)
AUDIO_INPUT = (1, 80, 16)
EMBEDDING_DIM = 512
#: Keys a checkpoint may lack (BatchNorm's counter, absent from PyTorch < 0.4.1 checkpoints).
OPTIONAL_SUFFIXES = (".num_batches_tracked",)
CHECKPOINT_HELP = ("Wav2Lip's lip-sync expert checkpoint (lipsync_expert.pth): a dict with 'state_dict' "
                   "whose keys are face_encoder.N.conv_block.{0,1}.* and audio_encoder.N.conv_block.{0,1}.*")


def build_syncnet() -> Any:
    """A fresh, randomly initialised ``SyncNet_color`` (a ``torch.nn.Module``, training mode).

    ``forward(audio, face) -> (audio_embedding, face_embedding)`` as in Wav2Lip, both (B, 512)
    and L2-normalised; ``face_encoder`` / ``audio_encoder`` are the two ``nn.Sequential`` stacks.
    """
    from torch import nn
    from torch.nn import functional as F

    class Conv2d(nn.Module):
        """Wav2Lip's ``models.conv.Conv2d``: conv + batch norm (+ identity) + ReLU."""

        def __init__(self, cin: int, cout: int, kernel_size: Any, stride: Any, padding: Any, residual: bool = False):
            super().__init__()
            self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
            self.act = nn.ReLU()
            self.residual = residual

        def forward(self, x):
            out = self.conv_block(x)
            if self.residual:
                out = out + x
            return self.act(out)

    class SyncNetColor(nn.Module):
        """Wav2Lip's ``SyncNet_color``."""

        def __init__(self) -> None:
            super().__init__()
            self.face_encoder = nn.Sequential(*(Conv2d(*spec) for spec in FACE_LAYERS))
            self.audio_encoder = nn.Sequential(*(Conv2d(*spec) for spec in AUDIO_LAYERS))

        def forward(self, audio_sequences, face_sequences):
            a = self.audio_encoder(audio_sequences).flatten(1)
            f = self.face_encoder(face_sequences).flatten(1)
            return F.normalize(a, p=2, dim=1), F.normalize(f, p=2, dim=1)

    return SyncNetColor()


def extract_state_dict(checkpoint: Any, source: str = "checkpoint") -> dict[str, Any]:
    """The ``state_dict`` of a Wav2Lip checkpoint, with a DataParallel ``module.`` prefix removed."""
    if not isinstance(checkpoint, Mapping):
        raise ModelError(f"{source}: expected a dict with 'state_dict' ({CHECKPOINT_HELP}), "
                         f"got a {type(checkpoint).__name__}")
    if "state_dict" not in checkpoint:
        keys = ", ".join(repr(k) for k in list(checkpoint)[:6]) or "none"
        raise ModelError(f"{source}: the checkpoint has no 'state_dict' (its keys: {keys}"
                         f"{', ...' if len(checkpoint) > 6 else ''}); expected {CHECKPOINT_HELP}")
    sd = checkpoint["state_dict"]
    if not isinstance(sd, Mapping):
        raise ModelError(f"{source}: 'state_dict' is a {type(sd).__name__}, expected a dict of tensors")
    out: dict[str, Any] = {}
    for key, value in sd.items():
        name = str(key)
        out[name[len("module."):] if name.startswith("module.") else name] = value
    return out


def check_state_dict(state_dict: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]],
                     source: str = "checkpoint") -> None:
    """Raise :class:`ModelError` naming the first key that is missing, unexpected or mis-shaped.

    Keys are checked in the model's order, then unexpected keys in the checkpoint's order.
    """
    problems: list[str] = []
    missing: list[str] = []
    mismatched: list[str] = []
    for key, shape in expected.items():
        if key not in state_dict:
            if not key.endswith(OPTIONAL_SUFFIXES):
                missing.append(key)
                problems.append(f"key '{key}' is missing (expected shape {shape})")
            continue
        value = state_dict[key]
        got = getattr(value, "shape", None)
        if got is None:
            mismatched.append(key)
            problems.append(f"key '{key}' holds a {type(value).__name__}, expected a tensor of shape {shape}")
        elif tuple(got) != tuple(shape):
            mismatched.append(key)
            problems.append(f"key '{key}' has shape {tuple(got)} in the checkpoint, expected {tuple(shape)}")
    unexpected = [k for k in state_dict if k not in expected]
    problems.extend(f"key '{k}' is unexpected" for k in unexpected)
    if not problems:
        return
    counts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
        if keys:
            counts.append(f"{len(keys)} {what}")
    hint = ""
    if any(k.startswith(("face_encoder_blocks.", "face_decoder_blocks.")) for k in unexpected):
        hint = " (this looks like a Wav2Lip generator checkpoint, not the lip-sync expert)"
    raise ModelError(f"{source} does not match Wav2Lip's SyncNet_color{hint}: {problems[0]} "
                     f"[{', '.join(counts)} keys in all]; expected {CHECKPOINT_HELP}")


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors as :class:`ModelError`."""
    from avflow import read_torch_checkpoint

    return read_torch_checkpoint(path, f"Wav2Lip lip-sync expert: {CHECKPOINT_HELP}")


def load_syncnet(path: str | Path, device: str = "cpu") -> Any:
    """Load Wav2Lip's lip-sync expert from ``path`` onto ``device``, in eval mode (float32).

    :raises ModelError: the file is missing, unreadable, refused by ``weights_only``, not in
        Wav2Lip's format, or its keys/shapes do not match (the message names the first key).
    """
    import torch

    ckpt = read_checkpoint(path)
    sd = extract_state_dict(ckpt, str(path))
    with torch.device("meta"):  # no point initialising weights that are overwritten at once
        model = build_syncnet()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_state_dict(sd, expected, str(path))
    full = {}
    for key in expected:
        value = sd.get(key)
        if value is None:  # an optional BatchNorm counter
            full[key] = torch.zeros((), dtype=torch.long)
        elif not isinstance(value, torch.Tensor):
            raise ModelError(f"{path}: key '{key}' holds a {type(value).__name__}, expected a tensor")
        else:
            full[key] = (value.float() if value.is_floating_point() else value).contiguous()
    model.load_state_dict(full, assign=True)
    return model.eval().to(device)


def random_state_dict(seed: int = 0) -> dict[str, Any]:
    """Seeded random ``SyncNet_color`` weights (He-normal convs, randomised BatchNorm statistics).

    Uses its own ``torch.Generator``: the global RNG is left alone.
    """
    import torch
    from torch import nn

    model = build_syncnet()
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                m.bias.copy_((torch.rand(m.bias.shape, generator=g) * 2 - 1) / fan_in ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.state_dict()


def save_random_syncnet(path: str | Path, seed: int = 0, *, legacy_format: bool = False) -> Path:
    """Write a random ``SyncNet_color`` checkpoint in Wav2Lip's format to ``path`` (atomically).

    ``{"state_dict", "optimizer" (a fresh Adam's state, as Wav2Lip trains it), "global_step",
    "global_epoch"}``. ``legacy_format`` writes PyTorch's pre-1.6 (non-zip) serialisation, the
    one the published ``lipsync_expert.pth`` uses.
    """
    import torch

    from avflow.io import atomic_path

    sd = random_state_dict(seed)
    params = [v for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    optimizer = torch.optim.Adam([p.clone().requires_grad_(True) for p in params], lr=1e-4, betas=(0.5, 0.999))
    ckpt = {"state_dict": sd, "optimizer": optimizer.state_dict(), "global_step": 0, "global_epoch": 0}
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp, _use_new_zipfile_serialization=not legacy_format)
    return Path(path)


def fold_batchnorm(model: Any) -> Any:
    """Fold each block's BatchNorm into its convolution, in place; returns ``model``, in eval mode.

    Inference only: the outputs stay the same (to float rounding) and a pass over every
    activation goes (3-7 % of the face encoder's time in bf16 on a 2-core CPU). The state dict
    loses the ``conv_block.1.*`` keys, so fold after loading a checkpoint, not before. Folding
    twice is a no-op.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for encoder in (model.face_encoder, model.audio_encoder):
        for block in encoder:
            conv, norm = block.conv_block
            if isinstance(norm, nn.BatchNorm2d):
                block.conv_block = nn.Sequential(fuse_conv_bn_eval(conv, norm), nn.Identity())
    return model


def sync_similarity(model: Any, video: Any, mel: Any, dtype: Any = None, chunk: int | None = None) -> Any:
    """Cosine similarity of each window's face and audio embeddings: float32 tensor (B, K).

    :param model: a ``SyncNet_color`` in eval mode.
    :param video: (B, 15, 48, 96) tensor, uint8 (divided by 255 here) or float in [0, 1].
    :param mel: (B, K, 80, 16) or (B, 80, 16) tensor: K mel windows (audio offsets) per window;
        the face is encoded once and compared with each.
    :param dtype: compute dtype (``torch.float16`` on GPU); embeddings are normalised in float32.
    :param chunk: encode at most this many faces (and mel windows) per forward pass (None: all).

    A mel window shared by several windows (the same moment seen on several faces, or
    overlapping offset searches) is encoded once.
    """
    import torch
    from torch.nn import functional as F

    if dtype is None:
        dtype = next(model.parameters()).dtype
    if mel.dim() == 3:
        mel = mel.unsqueeze(1)
    b, k = mel.shape[0], mel.shape[1]
    step = chunk or max(1, b * k)
    mels, where = torch.unique(mel.reshape(b * k, -1), dim=0, return_inverse=True)
    mels = mels.reshape(-1, 1, *mel.shape[2:])
    with torch.inference_mode():
        faces = [video[s:s + step] for s in range(0, b, step)]
        f = torch.cat([model.face_encoder(v.to(dtype) / 255.0 if v.dtype == torch.uint8 else v.to(dtype))
                       .flatten(1).float() for v in faces])
        a = torch.cat([model.audio_encoder(mels[s:s + step].to(dtype)).flatten(1).float()
                       for s in range(0, len(mels), step)])
    f = F.normalize(f, p=2, dim=1)
    a = F.normalize(a, p=2, dim=1)[where].reshape(b, k, -1)
    return (a * f[:, None, :]).sum(-1)
