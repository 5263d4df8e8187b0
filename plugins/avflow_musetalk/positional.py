"""MuseTalk's sinusoidal positional encoding of the audio prompt (``PositionalEncoding``).

Row ``p`` of the ``(length, d_model)`` table holds ``sin(p w_k)`` in even columns and
``cos(p w_k)`` in odd ones, with ``w_k = 10000^(-2k / d_model)``; the prompt's row ``p`` gets
row ``p`` added before it enters the UNet's cross-attention.
"""

from __future__ import annotations

import math

import numpy as np


def sinusoidal_table(length: int, d_model: int) -> np.ndarray:
    """The ``(length, d_model)`` float32 encoding table (``d_model`` even)."""
    if d_model % 2:
        raise ValueError(f"d_model must be even for the sinusoidal encoding, got {d_model}")
    position = np.arange(length, dtype=np.float64)[:, None]
    freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    table = np.zeros((length, d_model), np.float64)
    table[:, 0::2] = np.sin(position * freq)
    table[:, 1::2] = np.cos(position * freq)
    return table.astype(np.float32)


def add_positional_encoding(prompts, table=None):
    """``prompts`` (torch, ``(B, T, D)``) plus the table's first ``T`` rows, in the prompts' dtype.

    Pass a ``table`` (torch, on the prompts' device) to avoid rebuilding it on every call.
    """
    import torch

    _, length, d_model = prompts.shape
    if table is None:
        table = torch.from_numpy(sinusoidal_table(length, d_model)).to(prompts.device)
    return (prompts.float() + table[:length].float()).to(prompts.dtype)
