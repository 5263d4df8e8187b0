"""Wav2Lip mel: whole-file reference, streaming equality, hand-computed values, the sync.mel node."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from avflow.errors import InputError
from avflow.payloads import AudioChunk
from avflow.testing import NodeRunner
from avflow_sync.mel import (COLUMNS_PER_SECOND, MEL_TIME_BASE, StreamingMel, amp_to_db, n_columns, normalize,
                             preemphasis, wav2lip_mel)
from avflow_sync.nodes.mel import MelSpectrogram


@pytest.fixture(scope="module")
def speech(media_dir):
    sf = pytest.importorskip("soundfile")
    x, sr = sf.read(str(media_dir / "eng.wav"), dtype="float32")
    assert sr == 16000 and x.ndim == 1
    return x


def stream(x, chunk, pad_mode="reflect"):
    sm = StreamingMel(pad_mode)
    cols = [sm.push(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(cols + [sm.finish()], axis=1)


# -- hand-computed values -----------------------------------------------------------------------
def test_db_and_normalisation_on_known_values():
    # 20 log10(a) - 20 (ref), then 8 (S + 100) / 100 - 4, clipped to [-4, 4]
    amps = np.array([1.0, 0.1, 10.0, 100.0, 1e-3, 0.0, 1e-9])
    s = amp_to_db(amps) - 20
    np.testing.assert_allclose(s[:5], [-20.0, -40.0, 0.0, 20.0, -80.0], atol=1e-9)
    np.testing.assert_allclose(s[5:], [-120.0, -120.0], atol=1e-9)  # floor: 1e-5 -> -100 dB
    np.testing.assert_allclose(normalize(s), [2.4, 0.8, 4.0, 4.0, -2.4, -4.0, -4.0], atol=1e-9)


def test_preemphasis_resumes_across_chunks():
    np.testing.assert_allclose(preemphasis(np.array([1.0, 1.0, 0.0])), [1.0, 0.03, -0.97])
    np.testing.assert_allclose(preemphasis(np.array([1.0, 2.0]), prev=1.0), [0.03, 1.03])


@pytest.mark.parametrize("n", [0, 1, 199, 200, 201, 16000, 16199])
def test_number_of_columns(n):
    x = np.zeros(n, np.float32)
    assert n_columns(n) == (1 + n // 200 if n else 0)
    assert stream(x, 333).shape == (80, n_columns(n))


def test_silence_is_minus_four_everywhere():
    mel = wav2lip_mel(np.zeros(8000, np.float32))
    assert mel.shape == (80, 41)
    assert np.all(mel == -4.0)


def _slaney_hz_to_mel(f):
    # Slaney: linear 3 mels per 200 Hz below 1 kHz, logarithmic (27 mels per factor 6.4) above.
    return f * 3 / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)


def _slaney_mel_to_hz(m):
    return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)


def test_pure_tone_peaks_in_the_band_centred_on_it():
    # 82 points equally spaced in mel between 55 and 7600 Hz; band k is centred on point k + 1.
    lo, hi = _slaney_hz_to_mel(55.0), _slaney_hz_to_mel(7600.0)
    centres = [_slaney_mel_to_hz(lo + (hi - lo) * (k + 1) / 81) for k in range(80)]
    for band in (20, 45):
        f = centres[band]
        t = np.arange(16000) / 16000
        mel = wav2lip_mel((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32))
        peaks = np.argmax(mel[:, 5:-5], axis=0)
        assert np.all(peaks == band), (band, f, np.unique(peaks))


def test_pad_mode_only_changes_the_edges(speech):
    x = speech[:16000]
    a, b = wav2lip_mel(x, "reflect"), wav2lip_mel(x, "constant")
    np.testing.assert_array_equal(a[:, 2:-2], b[:, 2:-2])
    assert not np.array_equal(a[:, 0], b[:, 0])


# -- streaming == whole file ------------------------------------------------------------------
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_streaming_equals_whole_file_on_speech(speech, pad_mode):
    ref = wav2lip_mel(speech, pad_mode)
    assert ref.shape == (80, 1 + len(speech) // 200)
    for chunk in (16000, 1023):
        np.testing.assert_allclose(stream(speech, chunk, pad_mode), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk", [1, 7, 199, 200, 401, 799])
def test_streaming_odd_chunk_sizes(speech, chunk):
    x = speech[8000:8000 + (4000 if chunk < 100 else 24321)]
    np.testing.assert_allclose(stream(x, chunk), wav2lip_mel(x), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:n_fft=800 is too large")
@pytest.mark.parametrize("n", [1, 300, 400, 401, 402, 799, 800, 1000])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_streaming_short_signals(speech, n, pad_mode):
    x = speech[16000:16000 + n]
    np.testing.assert_allclose(stream(x, 97, pad_mode), wav2lip_mel(x, pad_mode), atol=1e-5, rtol=0)


def test_streaming_memory_is_bounded(speech):
    sm = StreamingMel()
    for i in range(0, 160000, 1600):
        sm.push(speech[i:i + 1600])
        assert sm._buf.size <= 1600 + 800
    assert sm.next_column > 790


# -- sync.mel node ----------------------------------------------------------------------------
def chunks(x, size, start=0, rate=16000):
    for i in range(0, len(x), size):
        yield AudioChunk(pts=start + i, time_base=Fraction(1, rate), samples=x[None, i:i + size], sample_rate=rate)


def test_node_streams_the_reference_columns(speech):
    x = speech[:40000]
    out = NodeRunner(MelSpectrogram).run({"audio": chunks(x, 1234)})["mel"]
    assert all(t.name == "mel" and t.time_base == MEL_TIME_BASE == Fraction(200, 16000) for t in out)
    pts = [t.pts for t in out]
    assert pts[0] == 0 and all(b.pts == a.pts + a.data.shape[1] for a, b in zip(out, out[1:]))
    mel = np.concatenate([t.data for t in out], axis=1)
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, wav2lip_mel(x), atol=1e-5, rtol=0)
    assert COLUMNS_PER_SECOND == 80


def test_node_keeps_the_audio_start_and_fills_gaps(speech):
    x = speech[:8000]
    items = list(chunks(x, 1000, start=4800))       # audio starts at 0.3 s on the media timeline
    del items[3]                                    # samples 3000..3999 missing
    out = NodeRunner(MelSpectrogram).run({"audio": items})["mel"]
    assert {t.meta["audio_start_sample"] for t in out} == {4800}
    assert out[0].pts == 0
    filled = x.copy()
    filled[3000:4000] = 0
    np.testing.assert_allclose(np.concatenate([t.data for t in out], axis=1), wav2lip_mel(filled), atol=1e-5)


@pytest.mark.parametrize("rate,channels", [(44100, 1), (16000, 2)])
def test_node_rejects_other_rates_and_layouts(rate, channels):
    chunk = AudioChunk(pts=0, time_base=Fraction(1, rate), samples=np.zeros((channels, 100), np.float32),
                       sample_rate=rate)
    with pytest.raises(InputError, match="audio_rate=16000 audio_channels=1"):
        NodeRunner(MelSpectrogram).run({"audio": [chunk]})
