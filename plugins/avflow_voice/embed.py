"""Voice embeddings from Resemblyzer's GE2E encoder, on mel windows computed here.

Resemblyzer (Apache-2.0) ships its trained ``VoiceEncoder`` weights (``pretrained.pt``) inside its
wheel: a 3-layer LSTM over 40-band mel power spectra (25 ms windows, 10 ms hops, 16 kHz) whose
final state becomes an L2-normalised 256-d embedding; same voice, nearby points. Its own
``preprocess_wav`` cuts silences and so moves every time after the first pause: here the mel
frames are computed from the decoded 16 kHz audio as it streams, frame ``k`` centred on sample
``160 k`` of the stream, so that a window's time is exact. The filter bank and the STFT are
librosa's (``melspectrogram`` with ``n_fft=400``, ``hop_length=160``, ``n_mels=40``, power 2),
as Resemblyzer computes them, rewritten in numpy (:func:`mel_filters`; a test checks them
against librosa's) so that neither librosa nor resemblyzer is imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame (10 ms)
N_FFT = 400  # 25 ms
N_MELS = 40
FRAME_S = HOP / SAMPLE_RATE


def weights_path() -> Path:
    """Where the installed ``resemblyzer`` wheel keeps its encoder weights (``pretrained.pt``)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("voice embeddings need Resemblyzer (pip install webrtcvad-wheels && "
                          "pip install --no-deps resemblyzer==0.1.4): its wheel carries the weights")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"resemblyzer is installed but {path} is missing; reinstall resemblyzer==0.1.4")
    return path


def load_encoder(device: str = "cpu"):
    """Resemblyzer's ``VoiceEncoder`` network with the weights from its wheel, in eval mode.

    The network is written here (the same three-layer LSTM, linear layer, ReLU and L2 norm) rather
    than imported: ``import resemblyzer`` imports librosa, numba and scipy.signal, 1.5 s of start-up
    the embeddings do not need.
    """
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        """GE2E speaker encoder: mel windows ``(B, frames, 40)`` -> L2-normalised ``(B, 256)``."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels: "torch.Tensor") -> "torch.Tensor":
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    model = VoiceEncoder()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
    model.load_state_dict(state, strict=False)  # the checkpoint also holds training-only scalars
    model.device = torch.device(device)
    return model.to(model.device).eval()


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` float32 triangular filters on the Slaney mel scale between
    ``fmin`` and ``fmax`` (default ``sr / 2``), area-normalised: librosa's ``filters.mel`` with its
    defaults (``htk=False``, ``norm="slaney"``), as Resemblyzer and Wav2Lip call it, without
    importing librosa (and numba, scipy.signal with it: 1.5 s of start-up)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                        f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` samples (librosa's and scipy's ``get_window("hann", n,
    fftbins=True)``), float64."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


class MelStream:
    """Mel power frames of a 16 kHz mono stream, fed in pieces of any length.

    ``push(samples)`` returns the ``(n, 40)`` frames completed so far: frame ``k`` is centred on
    stream sample ``160 k`` (librosa's ``center=True``; the stream's start is zero-padded).
    """

    def __init__(self):
        self._basis = mel_filters()
        self._window = hann(N_FFT).astype(np.float32)
        self._buf = np.zeros(N_FFT // 2, np.float32)  # centre padding before the first sample
        self._buf_start = -(N_FFT // 2)  # stream index of _buf[0]
        self.n_frames = 0

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(samples, np.float32).reshape(-1)])
        if final:
            self._buf = np.concatenate([self._buf, np.zeros(N_FFT // 2, np.float32)])
        # frame k needs stream samples [160 k - 200, 160 k + 200)
        last = (self._buf_start + self._buf.size - N_FFT // 2) // HOP
        ks = np.arange(self.n_frames, last + 1)
        if ks.size == 0:
            return np.zeros((0, N_MELS), np.float32)
        starts = ks * HOP - N_FFT // 2 - self._buf_start
        frames = self._buf[starts[:, None] + np.arange(N_FFT)[None, :]] * self._window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        self.n_frames = int(ks[-1]) + 1
        drop = self.n_frames * HOP - N_FFT // 2 - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return (power.astype(np.float32) @ self._basis.T).astype(np.float32)


def embed_windows(encoder, mels: np.ndarray) -> np.ndarray:
    """Embeddings ``(B, 256)`` of a batch of mel windows ``(B, frames, 40)`` (L2-normalised)."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)).to(encoder.device)
        return encoder(x).cpu().numpy().astype(np.float32)
