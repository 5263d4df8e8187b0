"""``datasets.npz_coefs``: precomputed coefficients from ``<coef_dir>/<relative path>.npz``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from avflow import InputError, Node, Port, param

from ..layout import COEF_KEYS
from ..payloads import FaceCoefficients


@dataclass(frozen=True)
class NpzCoefsConfig:
    path: Path = param(doc="the video whose coefficients are read")
    coef_dir: Path = param(doc="folder of <video path relative to videos_root, suffix .npz> files with "
                               "shape, exp, pose arrays (n, d); shape may be a single row (d,)")
    videos_root: Path | None = param(None, "folder the video's relative path is taken from "
                                           "(None: the video's own folder, i.e. <coef_dir>/<name>.npz)")
    fps: float = param(25.0, "rate of the coefficient frames", min=1e-3)


class NpzCoefs(Node):
    """Precomputed per-frame coefficients (SPECTRE, MICA, ... fitters) read from a .npz file.

    The file for ``<videos_root>/<person>/<n>.mp4`` is ``<coef_dir>/<person>/<n>.npz``, with
    ``shape``, ``exp`` and ``pose`` arrays of one row per frame (a one-row ``shape`` is repeated).
    Loaded with ``allow_pickle=False``.

    Ports:
      - out ``coefs`` (FaceCoefficients): one per row, pts = row, time base 1/fps.

    Example::

        coefs:
          type: datasets.npz_coefs
          params: {path: "${video}", coef_dir: coefs/, videos_root: videos/, fps: 25}
    """

    type = "datasets.npz_coefs"
    Config = NpzCoefsConfig
    outputs = {"coefs": Port(FaceCoefficients, "per-frame shape/exp/pose")}

    def coef_file(self) -> Path:
        video = Path(self.config.path)
        root = Path(self.config.videos_root) if self.config.videos_root is not None else video.parent
        try:
            rel = Path(os.path.abspath(video)).relative_to(os.path.abspath(root))
        except ValueError:
            rel = Path(video.name)
        return Path(self.config.coef_dir) / rel.with_suffix(".npz")

    def generate(self, ctx) -> Iterator[dict[str, list[FaceCoefficients]]]:
        f = self.coef_file()
        if not f.is_file():
            raise InputError(f"no coefficient file for {self.config.path}: expected {f} (coef_dir + the video's "
                             "path relative to videos_root, suffix .npz)")
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k], np.float32) for k in COEF_KEYS if k in z.files}
                have = list(z.files)
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: cannot read as .npz without pickles ({exc})") from None
        missing = [k for k in COEF_KEYS if k not in arrays]
        if missing:
            raise InputError(f"{f}: lacks {', '.join(missing)} (has {', '.join(have) or 'nothing'}); "
                             "needs shape, exp and pose arrays of one row per frame")
        if arrays["shape"].ndim == 1:
            arrays["shape"] = arrays["shape"][None, :]
        bad = [f"{k} {arrays[k].shape}" for k in COEF_KEYS if arrays[k].ndim != 2]
        if bad:
            raise InputError(f"{f}: arrays must be 2-D (frames, dims): {', '.join(bad)}")
        n = len(arrays["exp"])
        if len(arrays["shape"]) == 1:
            arrays["shape"] = np.repeat(arrays["shape"], n, axis=0)
        if n == 0 or len(arrays["pose"]) != n or len(arrays["shape"]) != n:
            raise InputError(f"{f}: frame counts differ or are zero: "
                             + ", ".join(f"{k} {arrays[k].shape[0]}" for k in COEF_KEYS))
        tb = Fraction(self.config.fps).limit_denominator(1_000_000) ** -1
        ctx.progress.set_total(n, "frames")
        step = 256
        for a in range(0, n, step):
            yield {"coefs": [FaceCoefficients(pts=i, time_base=tb, frame_index=i, shape=arrays["shape"][i],
                                               exp=arrays["exp"][i], pose=arrays["pose"][i])
                             for i in range(a, min(a + step, n))]}
            ctx.progress.advance(min(step, n - a))
