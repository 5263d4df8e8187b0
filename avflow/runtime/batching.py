"""Batch building: stack payload tensor fields and move them to the node's device once."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..node import Batch
from ..payloads import Payload
from .memory import quiet_openmp


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; others are checked."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    if device == "cpu" or (device == "auto" and not _cuda_possible()):
        return "cpu"
    quiet_openmp()  # the first torch import of a run may be this one
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise ValueError(f"--device {device} was asked for but torch sees no CUDA device; use cpu or auto")


def _cuda_possible() -> bool:
    """False when this machine surely has no usable CUDA device, found without importing torch
    (1-2 s of start-up): no NVIDIA driver on Linux, no device made visible, or macOS."""
    import os
    import sys

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0") or \
            os.path.exists("/dev/dxg")  # WSL's GPU
    return True


def collate(port: str, items: list[Payload], device: str) -> Batch:
    """Stack each ``tensor_fields`` array of ``items`` into one tensor on ``device``.

    Payloads of different classes may share a batch only if they declare the same fields.
    """
    import torch

    tensors: dict[str, Any] = {}
    if items:
        for name in type(items[0]).tensor_fields:
            arrays = [getattr(it, name) for it in items]
            shapes = {tuple(a.shape) for a in arrays}
            if len(shapes) > 1:
                raise ValueError(f"cannot batch field '{name}' on port '{port}': items have different "
                                 f"shapes {sorted(shapes)}; resize them to one shape upstream")
            stacked = torch.from_numpy(np.ascontiguousarray(np.stack(arrays)))
            # One host->device copy per batch; pinned memory lets it overlap with compute on CUDA.
            if device.startswith("cuda"):
                stacked = stacked.pin_memory().to(device, non_blocking=True)
            tensors[name] = stacked
    return Batch(port=port, items=list(items), tensors=tensors)
