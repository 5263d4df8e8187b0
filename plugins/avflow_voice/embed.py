"""Voice embeddings from Resemblyzer's GE2E encoder, on mel windows computed here.

Resemblyzer (Apache-2.0) ships its trained ``VoiceEncoder`` weights (``pretrained.pt``) inside its
wheel: a 3-layer LSTM over 40-band mel power spectra (25 ms windows, 10 ms hops, 16 kHz) whose
final state becomes an L2-normalised 256-d embedding; same voice, nearby points. Its own
``preprocess_wav`` cuts silences and so moves every time after the first pause: here the mel
frames are computed from the decoded 16 kHz audio as it streams, frame ``k`` centred on sample
``160 k`` of the stream, so that a window's time is exact. The filter bank and the STFT are
librosa's (``melspectrogram`` with ``n_fft=400``, ``hop_length=160``, ``n_mels=40``, power 2),
as Resemblyzer computes them.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame (10 ms)
N_FFT = 400  # 25 ms
N_MELS = 40
FRAME_S = HOP / SAMPLE_RATE


def load_encoder(device: str = "cpu"):
    """Resemblyzer's ``VoiceEncoder`` with the weights from its wheel, in eval mode."""
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise ImportError("voice embeddings need Resemblyzer (pip install webrtcvad-wheels && "
                          f"pip install --no-deps resemblyzer==0.1.4): {exc}") from None
    return VoiceEncoder(device=device, verbose=False).eval()


class MelStream:
    """Mel power frames of a 16 kHz mono stream, fed in pieces of any length.

    ``push(samples)`` returns the ``(n, 40)`` frames completed so far: frame ``k`` is centred on
    stream sample ``160 k`` (librosa's ``center=True``; the stream's start is zero-padded).
    """

    def __init__(self):
        import librosa

        self._basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
        self._window = librosa.filters.get_window("hann", N_FFT, fftbins=True).astype(np.float32)
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
