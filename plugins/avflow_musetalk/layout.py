"""The MuseTalk model folder: which files, what each is, and the one check for all of them.

Laid out as MuseTalk's own ``models/`` folder::

    models/
      musetalkV15/musetalk.json, unet.pth        # version v15
      musetalk/musetalk.json, pytorch_model.bin  # version v1
      sd-vae/config.json, diffusion_pytorch_model.bin
      whisper/config.json, pytorch_model.bin, preprocessor_config.json
      face-parse-bisent/79999_iter.pth, resnet18-5c106cde.pth   # optional: blend mode 'parsing'

Every node of the lip-sync graph checks the whole folder when it opens, so a user with an
incomplete folder gets one error listing every missing file, whichever node opens first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avflow import ModelError, ModelFile

VERSIONS = ("v15", "v1")


@dataclass(frozen=True)
class LayoutFile:
    """One file of the model folder.

    :param path: relative to the model folder.
    :param what: what it is, for error messages.
    :param alternatives: other accepted names (e.g. the safetensors twin of a ``.bin``).
    """

    path: str
    what: str
    alternatives: tuple[str, ...] = ()

    def find(self, root: Path) -> Path | None:
        for rel in (self.path, *self.alternatives):
            p = root / rel
            if p.is_file():
                return p
        return None


UNET_FILES = {
    "v15": (
        LayoutFile("musetalkV15/musetalk.json", "MuseTalk v1.5 UNet config (diffusers UNet2DConditionModel JSON)"),
        LayoutFile("musetalkV15/unet.pth", "MuseTalk v1.5 UNet weights (torch state dict)"),
    ),
    "v1": (
        LayoutFile("musetalk/musetalk.json", "MuseTalk v1 UNet config (diffusers UNet2DConditionModel JSON)"),
        LayoutFile("musetalk/pytorch_model.bin", "MuseTalk v1 UNet weights (torch state dict)"),
    ),
}
VAE_FILES = (
    LayoutFile("sd-vae/config.json", "sd-vae-ft-mse config (diffusers AutoencoderKL JSON)"),
    LayoutFile("sd-vae/diffusion_pytorch_model.bin", "sd-vae-ft-mse weights (torch state dict)",
               ("sd-vae/diffusion_pytorch_model.safetensors",)),
)
WHISPER_FILES = (
    LayoutFile("whisper/config.json", "Whisper-tiny config (Hugging Face WhisperConfig JSON)"),
    LayoutFile("whisper/pytorch_model.bin", "Whisper-tiny weights (Hugging Face torch state dict)",
               ("whisper/model.safetensors",)),
    LayoutFile("whisper/preprocessor_config.json", "Whisper feature extractor config (80 mel bins)"),
)


#: Optional: MuseTalk's face parser, for ``musetalk.blend`` in mode ``parsing``.
FACE_PARSE_FILES = (
    LayoutFile("face-parse-bisent/79999_iter.pth",
               "BiSeNet face-parsing weights (face-parsing.PyTorch, 19 CelebAMask-HQ classes; torch state dict)"),
    LayoutFile("face-parse-bisent/resnet18-5c106cde.pth",
               "ImageNet ResNet-18, the face parser's backbone (torchvision state dict)"),
)


def has_files(models: str | Path | None, files: tuple[LayoutFile, ...]) -> bool:
    """Whether every one of ``files`` is in the folder."""
    return models is not None and all(f.find(Path(models)) is not None for f in files)


def required_files(version: str) -> tuple[LayoutFile, ...]:
    """Every file the lip-sync graph needs for ``version``."""
    if version not in UNET_FILES:
        raise ValueError(f"unknown MuseTalk version {version!r}; valid: {', '.join(VERSIONS)}")
    return (*UNET_FILES[version], *VAE_FILES, *WHISPER_FILES)


def check_model_dir(models: str | Path, version: str, extra: tuple[LayoutFile, ...] = ()) -> dict[str, Path]:
    """Resolve every file of the folder; raise one :class:`ModelError` listing all missing ones.

    :param extra: optional files the caller needs too (e.g. :data:`FACE_PARSE_FILES`).
    :return: layout path -> the file found (possibly an accepted alternative name).
    """
    root = Path(models)
    found: dict[str, Path] = {}
    missing: list[LayoutFile] = []
    for f in (*required_files(version), *extra):
        p = f.find(root) if root.is_dir() else None
        if p is None:
            missing.append(f)
        else:
            found[f.path] = p
    if missing:
        head = (f"MuseTalk model folder {root} does not exist" if not root.is_dir() else
                f"MuseTalk model folder {root} is incomplete for version {version}")
        lines = "\n".join(
            f"  - {f.path}: {f.what}" + (f" (or {', '.join(f.alternatives)})" if f.alternatives else "")
            for f in missing)
        raise ModelError(f"{head}; {len(missing)} file(s) missing:\n{lines}\n"
                         "Lay it out as MuseTalk's models/ folder, or write one with random weights: "
                         "avflow models scaffold DIR --random [--tiny]")
    return found


def preflight_model_dir(config, extra: tuple[LayoutFile, ...] = ()) -> list[tuple[str, str]]:
    """For ``Node.preflight``: the :func:`check_model_dir` problem of ``config.models``, if any."""
    if getattr(config, "models", None) is None:
        return []
    try:
        check_model_dir(config.models, getattr(config, "version", "v15"), extra)
    except ModelError as exc:
        return [("models", str(exc))]
    return []


def _model_file(name: str, files: tuple[LayoutFile, ...], required: bool, doc: str,
                when: dict | None = None) -> ModelFile:
    return ModelFile(name=name, param="models", files=tuple(f.path for f in files), required=required, doc=doc,
                     when=when or {})


UNET_MODELS = (
    _model_file("MuseTalk v1.5 UNet", UNET_FILES["v15"], True,
                "UNet2DConditionModel config + state dict; used with version=v15 (the default)", {"version": "v15"}),
    _model_file("MuseTalk v1 UNet", UNET_FILES["v1"], False,
                "UNet2DConditionModel config + state dict; used with version=v1", {"version": "v1"}),
)
VAE_MODELS = (_model_file("sd-vae-ft-mse", VAE_FILES, True,
                          "Stable Diffusion VAE (AutoencoderKL), stabilityai/sd-vae-ft-mse layout"),)
WHISPER_MODELS = (_model_file("whisper-tiny", WHISPER_FILES, True,
                              "Hugging Face openai/whisper-tiny folder (encoder used)"),)
FACE_PARSE_MODELS = (_model_file("face-parse-bisent", FACE_PARSE_FILES, False,
                                 "MuseTalk's BiSeNet face parser; blend mode 'parsing' (mode 'auto' uses it "
                                 "when both files are present)"),)
