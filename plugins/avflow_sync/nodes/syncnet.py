"""``sync.syncnet``: Wav2Lip's lip-sync expert scores each audio-visual window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from avflow.errors import InputError, ModelError
from avflow.node import Batch, BatchSpec, ModelFile, Node, NodeContext, Port, param
from avflow.payloads import Score

from ..payloads import SyncEvidence, SyncWindow
from ..syncnet import AUDIO_INPUT, CHECKPOINT_HELP, FACE_INPUT

# The speaker threshold suited to the expert's cosine similarity (recommended to sync.speaker
# through Score.extra): Wav2Lip treats in-sync pairs as similarity ~1, off-sync as ~0.
SPEAKER_THRESHOLD = 0.5
# On CPU a batch runs this many windows at a time: larger ones spill the caches (2 cores, fp32:
# 11.9 ms a window at 8, 13 at 32, 16-37 at 64, 21.7 one at a time).
_CPU_CHUNK = 8


@dataclass(frozen=True)
class SyncNetConfig:
    weights: Optional[Path] = param(None, "Wav2Lip's lip-sync expert checkpoint (lipsync_expert.pth)")
    random_init: bool = param(False, "use seeded random weights instead of a checkpoint (tests and dry runs "
                                     "only: the scores mean nothing)")
    seed: int = param(0, "seed of the random weights (random_init only)")
    batch_size: int = param(64, "windows per forward pass; windows of all tracks share batches", min=1)
    precision: Literal["auto", "fp32", "fp16", "bf16"] = param(
        "auto", "auto: fp16 on CUDA; on CPU bf16 where the CPU computes it natively (AVX512-BF16 or AMX), "
                "else fp32", choices=("auto", "fp32", "fp16", "bf16"))


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN on AVX512-BF16 or AMX)."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and bool(check()) for check in checks)


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``fp16`` on CUDA, ``bf16`` on a CPU with native bf16, else ``fp32``."""
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


class SyncNetScorer(Node):
    """Lip-sync confidence of each window with Wav2Lip's colour SyncNet (the lip-sync expert).

    The score is the cosine similarity of the face and audio embeddings, in [0, 1]; near 1 when
    the lips match the sound.

    Windows of all tracks are batched together (``batch_size``), in fp16 on CUDA; on CPU each
    batch runs 8 windows at a time, the fastest size there, in bf16 where the CPU has it natively
    (cosine within 0.0015 of fp32). BatchNorms are folded into the convolutions, and the audio
    of a moment is encoded once for all the faces scored against it. Measured on a 2-core
    AVX512-BF16 CPU, three faces: 5.8 ms a window in bf16, 10.9 in fp32 (6.4 and 12.2 without
    the folding and the shared audio). With windows cut for an offset search
    (``sync.windows offset_search: N``) every window is also scored against the audio shifted
    by ``-N .. N`` frames.

    Ports:
        windows (SyncWindow): from ``sync.windows``.
    Outputs:
        scores (Score): one per window, for its centre frame (``frame_index`` = first frame + 2,
            ``pts`` of that frame); ``value``: the similarity at offset 0 (Wav2Lip's pairing);
            ``extra``: ``window_start`` (first frame), ``mel_start``, and with an offset search
            ``offset`` (frames, the best offset of this window: positive when the audio is late),
            ``offset_score``, ``offset_confidence`` (best minus median over offsets),
            ``offset_scores`` (every offset, null where the audio does not reach) and
            ``track_offset`` (the best offset of the track's mean scores so far).
    Params:
        weights: path to ``lipsync_expert.pth`` (required unless ``random_init``).
        random_init, seed: random weights for tests.
        batch_size: windows per batch (64).
        precision: auto | fp32 | fp16 | bf16.

    .. code-block:: yaml

        syncnet:
          type: sync.syncnet
          params: {weights: ${syncnet_weights}, batch_size: 64}
          inputs: {windows: windows.windows}
    """

    type = "sync.syncnet"
    Config = SyncNetConfig
    inputs = {"windows": Port(SyncWindow, "audio-visual windows from sync.windows")}
    outputs = {"scores": Port(Score, "sync confidence per track for each window's centre frame"),
               "evidence": Port(SyncEvidence, "cosine similarity per track per window at every audio offset "
                                              "(sync.windows' offset_search), for sync.assign")}
    batch = BatchSpec(port="windows")
    models = [ModelFile(
        name="Wav2Lip lip-sync expert (SyncNet_color)", param="weights", required=True, unless="random_init",
        doc="lipsync_expert.pth from Wav2Lip (github.com/Rudrabha/Wav2Lip, checkpoints/): a torch checkpoint, "
            "dict with 'state_dict' (face_encoder.N.conv_block.{0,1}.*, audio_encoder.N.conv_block.{0,1}.*); "
            "read with weights_only=True")]
    queue_size = 128

    def open(self, ctx: NodeContext) -> None:
        import torch

        from ..syncnet import build_syncnet, fold_batchnorm, load_syncnet, random_state_dict

        c = self.config
        device = ctx.device
        if device == "auto":
            from avflow import resolve_device

            device = resolve_device(device)
        if c.weights is not None:
            # Loaded once per worker when the graph runs over many inputs.
            # (nn.Module.to() below casts in place, hence the precision in the key.)
            model = ctx.resource((self.type, str(c.weights), str(device), c.precision),
                                 lambda: fold_batchnorm(load_syncnet(c.weights, device)))
        elif c.random_init:
            model = build_syncnet()
            model.load_state_dict(random_state_dict(c.seed))
            model = fold_batchnorm(model).to(device)
        else:
            raise ModelError(f"sync.syncnet needs weights: set weights to {CHECKPOINT_HELP} "
                             f"(or random_init: true for a test run with meaningless scores)")
        on_cuda = str(device).startswith("cuda")
        precision = resolve_precision(c.precision, device)
        if precision == "fp16" and not on_cuda:
            ctx.logger.warning("precision fp16 asked for on %s; using fp32 (fp16 convolutions need CUDA)", device)
            precision = "fp32"
        elif precision == "bf16" and not on_cuda and not cpu_has_bf16():
            ctx.logger.warning("precision bf16 asked for on a CPU without native bf16: emulated, slower than fp32")
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        ctx.logger.info("sync.syncnet: %s on %s", precision, device)
        self._model = model.to(self._dtype)
        self._device = device
        self._track_sums: dict[str, np.ndarray] = {}
        self._track_counts: dict[str, np.ndarray] = {}

    def process_batch(self, batch: Batch, ctx: NodeContext):
        from ..syncnet import sync_similarity

        video, mel = batch.tensors["video"], batch.tensors["mel"]
        if tuple(video.shape[1:]) != FACE_INPUT or mel.dim() != 4 or tuple(mel.shape[2:]) != AUDIO_INPUT[1:]:
            raise InputError(f"sync.syncnet.windows: expected video (B, 15, 48, 96) and mel (B, K, 80, 16), got "
                             f"{tuple(video.shape)} and {tuple(mel.shape)}; feed sync.windows' output")
        video, mel = video.to(self._device), mel.to(self._device)
        chunk = None if str(self._device).startswith("cuda") else _CPU_CHUNK
        cos = sync_similarity(self._model, video, mel, self._dtype, chunk).cpu().numpy().astype(np.float64)
        valid = batch.tensors["mel_valid"].cpu().numpy().astype(bool)
        out, evidence = [], []
        for i, w in enumerate(batch.items):
            n = w.n_offsets // 2
            offsets = np.asarray(w.meta.get("offsets", range(-n, n + 1)), np.int64)
            ok = valid[i].astype(bool)
            evidence.append(SyncEvidence(pts=w.pts, time_base=w.time_base, track_id=w.track_id,
                                         frame_index=w.centre_index, offsets=offsets[ok],
                                         values=cos[i][ok].astype(np.float32),
                                         frame_s=float(w.meta.get("frame_s", 0.04)), scale="syncnet"))
            extra = {"window_start": w.frame_index, "mel_start": w.mel_start, "threshold": SPEAKER_THRESHOLD}
            if w.n_offsets > 1:
                extra.update(self._offsets(w, cos[i], valid[i]))
            out.append(Score(pts=w.pts, time_base=w.time_base, track_id=w.track_id, frame_index=w.centre_index,
                             value=float(cos[i, n]), extra=extra))
        return {"scores": out, "evidence": evidence}

    def _offsets(self, w: SyncWindow, cos: np.ndarray, valid: np.ndarray) -> dict:
        offsets = list(w.meta.get("offsets", range(-(w.n_offsets // 2), w.n_offsets // 2 + 1)))
        masked = np.where(valid, cos, -np.inf)
        best = int(np.argmax(masked))
        sums = self._track_sums.setdefault(w.track_id, np.zeros(len(offsets)))
        counts = self._track_counts.setdefault(w.track_id, np.zeros(len(offsets)))
        sums += np.where(valid, cos, 0.0)
        counts += valid
        means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
        return {"offset": offsets[best], "offset_score": float(cos[best]),
                "offset_confidence": float(cos[best] - np.median(cos[valid])),
                "offset_scores": [float(v) if ok else None for v, ok in zip(cos, valid)],
                "track_offset": offsets[int(np.argmax(means))]}

    def close(self, ctx: NodeContext) -> None:
        self._model = None
