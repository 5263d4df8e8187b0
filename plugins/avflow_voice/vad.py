"""Speech activity from Silero VAD (v5/v6, 16 kHz), with the weights its wheel ships.

The ``silero-vad`` package carries its model as TorchScript (``data/silero_vad.jit``, the one its
own ``load_silero_vad()`` returns). This module never imports ``silero_vad`` (its import calls
``torch.set_num_threads(1)`` for the whole process): it finds the wheel's data folder, reads the
weights out of that archive and puts them into the same network written as a plain torch module,
which computes many chunks at once (the TorchScript model takes one 32 ms chunk per call).

The network sees 512 samples (32 ms) at a time with the 64 samples before them as context; an
STFT as a convolution, four convolutions and one LSTM cell carried from chunk to chunk give the
probability that the chunk is speech. Everything but the LSTM is computed for many chunks at
once, so a minute of audio costs a few tens of milliseconds on one core.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CHUNK = 512  # samples per decision (32 ms)
CONTEXT = 64  # samples of the previous chunk seen with each chunk
HOP_S = CHUNK / SAMPLE_RATE


def weights_path() -> Path:
    """Where the installed ``silero-vad`` wheel keeps its 16 kHz weights."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("speech activity needs the silero-vad package (pip install silero-vad==6.2.3); "
                                "its wheel carries the model weights")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise FileNotFoundError(f"silero-vad is installed but {path} is missing; reinstall silero-vad==6.2.3")
    return path


def _build():
    import torch
    from torch import nn

    class SileroVAD(nn.Module):
        """Silero VAD's 16 kHz network; ``forward(chunks, state)`` over ``(T, 576)`` consecutive chunks."""

        def __init__(self):
            super().__init__()
            self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
            self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
            self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
            self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
            self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
            self.rnn = nn.LSTM(128, 128)
            self.final_conv = nn.Conv1d(128, 1, 1)

        def features(self, x: "torch.Tensor") -> "torch.Tensor":
            x = nn.functional.pad(x, (0, 64), mode="reflect").unsqueeze(1)
            x = self.stft_conv(x)
            x = torch.sqrt(x[:, :129] ** 2 + x[:, 129:] ** 2)
            for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
                x = torch.relu(conv(x))
            return x.squeeze(-1)  # (T, 128)

        def forward(self, chunks, state=None):
            feats = self.features(chunks)
            # the recurrence is the only sequential part: one LSTM call over all the chunks
            hs, state = self.rnn(feats, state)
            out = torch.relu(hs).unsqueeze(-1)
            prob = torch.sigmoid(self.final_conv(out)).squeeze(-1).mean(dim=1)
            return prob, state

    return SileroVAD


#: our parameter name -> the name inside silero_vad.jit (its 16 kHz model, ``_model``)
_JIT_NAMES = {
    "stft_conv.weight": "_model.stft.forward_basis_buffer",
    **{f"conv{i + 1}.{w}": f"_model.encoder.{i}.reparam_conv.{w}" for i in range(4) for w in ("weight", "bias")},
    **{f"rnn.{w}_l0": f"_model.decoder.rnn.{w}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "final_conv.weight": "_model.decoder.decoder.2.weight", "final_conv.bias": "_model.decoder.decoder.2.bias",
}


def load_vad(path: str | Path | None = None):
    """The network with the weights of ``path`` (default: the silero-vad wheel's), in eval mode."""
    import torch

    path = Path(path) if path is not None else weights_path()
    import warnings

    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates jit.load; the wheel ships TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            archive = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path} is not a Silero VAD TorchScript archive: {exc}") from None
    found = {**dict(archive.named_parameters()), **dict(archive.named_buffers())}
    missing = [theirs for theirs in _JIT_NAMES.values() if theirs not in found]
    if missing:
        raise ValueError(f"{path} lacks Silero VAD's 16 kHz weights {missing[:3]}; expected silero-vad 5 or 6")
    model = _build()()
    try:
        model.load_state_dict({ours: found[theirs].detach().clone() for ours, theirs in _JIT_NAMES.items()})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights of unexpected shapes for Silero VAD: {exc}") from None
    return model.eval()


class StreamingVAD:
    """Speech probability per 32 ms of 16 kHz mono audio, fed in pieces of any length.

    ``push(samples)`` returns the probabilities of the chunks completed so far (chunk ``k``
    covers samples ``[k * 512, (k + 1) * 512)`` of the stream); ``flush()`` pads the last partial
    chunk with zeros. The LSTM state and the 64 context samples carry over between calls.
    """

    def __init__(self, model, min_chunks: int = 1):
        self.model = model
        self.min_chunks = max(1, int(min_chunks))
        self._tail = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._state = None

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of the chunks completed, once at least ``min_chunks`` are waiting (a call
        costs ~5 ms however few chunks it holds; the results do not depend on the grouping)."""
        buf = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        n = buf.size // CHUNK
        if n < self.min_chunks:
            self._pending = buf
            return np.zeros(0, np.float32)
        self._pending = buf[n * CHUNK:]
        return self._run(buf[: n * CHUNK])

    def flush(self) -> np.ndarray:
        if self._pending.size == 0:
            return np.zeros(0, np.float32)
        n = -(-self._pending.size // CHUNK)
        last = np.pad(self._pending, (0, n * CHUNK - self._pending.size))
        self._pending = np.zeros(0, np.float32)
        return self._run(last)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        import torch

        n = audio.size // CHUNK
        with_context = np.concatenate([self._tail, audio])
        idx = np.arange(n)[:, None] * CHUNK + np.arange(CHUNK + CONTEXT)[None, :]
        frames = torch.from_numpy(np.ascontiguousarray(with_context[idx]))
        with torch.inference_mode():
            prob, self._state = self.model(frames, self._state)
        self._tail = audio[-CONTEXT:].copy()
        return prob.numpy().astype(np.float32)
