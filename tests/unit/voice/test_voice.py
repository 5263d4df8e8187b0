"""Voices: Silero VAD and Resemblyzer with the weights their wheels ship, clustering, the nodes."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from avflow import AudioChunk
from avflow.testing import NodeRunner

from avflow_voice.cluster import cluster_voices, segment_voices
from avflow_voice.nodes.activity import SpeechActivityDetector
from avflow_voice.nodes.cluster import VoiceClusterer
from avflow_voice.nodes.embed import VoiceEmbedder
from avflow_voice.vad import StreamingVAD, load_vad


def _wav(media_dir, name, rate=16000, seconds=None):
    import librosa
    import soundfile as sf

    audio, sr = sf.read(str(media_dir / name), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != rate:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=rate)
    return mono[: int(seconds * rate)] if seconds else mono


def _chunks(audio, rate=16000, size=4000, start=0):
    return [AudioChunk(pts=start + i, time_base=Fraction(1, rate), samples=audio[None, i:i + size].copy(),
                       sample_rate=rate) for i in range(0, len(audio), size)]


def test_vad_matches_silero_own_model_and_leaves_torch_threads_alone(media_dir):
    import torch

    audio = _wav(media_dir, "eng.wav", seconds=8)
    threads = torch.get_num_threads()
    vad = StreamingVAD(load_vad())
    ours = np.concatenate([vad.push(audio[i:i + 7000]) for i in range(0, len(audio), 7000)])
    assert torch.get_num_threads() == threads
    # silero's own API, in a child process (its import sets one torch thread process-wide)
    code = ("import sys, numpy as np, torch, silero_vad\n"
            "a = np.load(sys.argv[1]); m = silero_vad.load_silero_vad()\n"
            "p = [m(torch.from_numpy(a[i:i+512]), 16000).item() for i in range(0, len(a) - 511, 512)]\n"
            "np.save(sys.argv[2], np.array(p))\n")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/a.npy", audio)
        subprocess.run([sys.executable, "-c", code, f"{tmp}/a.npy", f"{tmp}/p.npy"], check=True)
        theirs = np.load(f"{tmp}/p.npy")
    n = min(len(ours), len(theirs))
    assert n > 200
    np.testing.assert_allclose(ours[:n], theirs[:n], atol=1e-4)
    assert 0.3 < float(np.mean(ours > 0.5)) < 0.98  # real speech with pauses


def test_activity_node_any_rate_and_layout(media_dir):
    audio = _wav(media_dir, "yongen.wav", rate=48000, seconds=6)  # the file is 48 kHz stereo
    stereo = np.stack([audio, audio * 0.5])
    chunks = [AudioChunk(pts=i, time_base=Fraction(1, 48000), samples=stereo[:, i:i + 9600].copy(), sample_rate=48000)
              for i in range(0, stereo.shape[1], 9600)]
    out = NodeRunner(SpeechActivityDetector).run({"audio": chunks})["speech"]
    probs = np.concatenate([o.probs for o in out])
    speech = np.concatenate([o.speech for o in out])
    assert abs(len(probs) * 0.032 - 6.0) < 0.1
    assert 0.3 < speech.mean() < 0.98
    silence = NodeRunner(SpeechActivityDetector).run({"audio": _chunks(np.zeros(32000, np.float32))})["speech"]
    assert not np.concatenate([o.speech for o in silence]).any()


def _embed(audio, offset_s=0.0):
    chunks = _chunks(audio, start=int(offset_s * 16000))
    speech = NodeRunner(SpeechActivityDetector).run({"audio": chunks})["speech"]
    runner = NodeRunner(VoiceEmbedder)
    return runner.run({"audio": chunks, "speech": speech})["embeddings"], speech


def test_embeddings_tell_voices_apart_and_keep_real_time(media_dir):
    a, _ = _embed(_wav(media_dir, "eng.wav", seconds=10))
    b, _ = _embed(_wav(media_dir, "sun.wav", seconds=10), offset_s=20.0)
    va, vb = np.stack([e.vector for e in a]), np.stack([e.vector for e in b])
    same = float(np.mean(va @ va.T))
    other = float(np.mean(va @ vb.T))
    assert same > 0.8 and other < 0.7, (same, other)
    # windows keep their place on the timeline (pauses are left out of a window, not of time)
    assert all(20.0 <= e.start < e.end <= 30.1 and e.start <= e.time <= e.end for e in b)


def test_cluster_voices_counts_voices_and_respects_num_min_max():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    emb = np.concatenate([c + 0.15 * rng.normal(size=(40, 64)) for c in centres])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert cluster_voices(emb).count == 3
    assert cluster_voices(emb, num_speakers=2).count == 2
    assert cluster_voices(emb, max_speakers=2).count == 2
    assert cluster_voices(emb, min_speakers=4).count == 4
    # past max_items, k-means summarises first: the same voices, no all-pairs matrix of all windows
    big = cluster_voices(np.concatenate([emb] * 30), max_items=200)
    assert big.count == 3 and len(big.labels) == 3600
    labels = segment_voices(np.stack([emb @ c / np.linalg.norm(c) for c in centres], axis=1), 0.3)
    assert (labels == np.repeat([0, 1, 2], 40)).mean() > 0.95


def test_cluster_node_finds_turns_and_same_voice_after_a_gap(media_dir):
    eng, sun = _wav(media_dir, "eng.wav", seconds=8), _wav(media_dir, "sun.wav", seconds=8)
    gap = np.zeros(16000 * 3, np.float32)
    audio = np.concatenate([eng[:16000 * 5], sun[:16000 * 6], gap, eng[16000 * 5:]])
    emb, speech = _embed(audio)
    out = NodeRunner(VoiceClusterer).run({"embeddings": emb, "speech": speech})["voices"][0]
    assert [v["id"] for v in out.voices] == ["voice_0", "voice_1"]
    firsts = [t for t in out.turns if t["start"] < 4.5]
    assert firsts and all(t["voice"] == "voice_0" for t in firsts)
    late = [t for t in out.turns if t["start"] > 13.5]
    assert late and all(t["voice"] == "voice_0" for t in late)  # the same voice after a 3 s gap
    # the change of voice is placed near where sun.wav's speech starts (after 5 s of eng)
    alone = NodeRunner(SpeechActivityDetector).run({"audio": _chunks(sun)})["speech"]
    onset = 0.032 * int(np.argmax(np.concatenate([o.speech for o in alone])))
    change = [t["start"] for t in out.turns if t["voice"] == "voice_1"][0]
    # measured: 0.38 s late (a window mixing two voices resembles the first) ...
    assert abs(change - (5.0 + onset)) <= 0.5, (onset, out.turns)
    # ... and with the audio, placed from the spectrum: measured 0.02 s early
    placed = NodeRunner(VoiceClusterer).run({"embeddings": emb, "speech": speech, "audio": _chunks(audio)})["voices"][0]
    change = [t["start"] for t in placed.turns if t["voice"] == "voice_1"][0]
    assert abs(change - (5.0 + onset)) <= 0.1, (onset, placed.turns)
    assert [t["voice"] for t in placed.turns] == [t["voice"] for t in out.turns]  # only the changes move
    two = NodeRunner(VoiceClusterer, num_speakers=1).run({"embeddings": emb, "speech": speech})["voices"][0]
    assert len(two.voices) == 1


def test_short_windows_place_the_changes_of_a_short_turn(media_dir):
    """4 s of eng, 1.5 s of sun, 4 s of eng, no pauses between: the voices come from the 1.6 s
    windows, the changes from the 0.8 s ones (measured 3.81 and 5.63 s; the long windows alone
    put the turn at 3.52-5.66 s), then from the spectrum."""
    eng, sun = _wav(media_dir, "eng.wav", seconds=20), _wav(media_dir, "sun.wav", seconds=12)
    rate = 16000
    audio = np.concatenate([eng[int(3.2 * rate):int(7.2 * rate)], sun[2 * rate:int(3.5 * rate)],
                            eng[8 * rate:12 * rate]])
    emb, speech = _embed(audio)
    fine = NodeRunner(VoiceEmbedder, window=0.8, step=0.1, min_speech=0.3).run(
        {"audio": _chunks(audio), "speech": speech})["embeddings"]
    out = NodeRunner(VoiceClusterer).run({"embeddings": emb, "speech": speech, "fine": fine})["voices"][0]
    sun_turns = [t for t in out.turns if t["voice"] == "voice_1"]
    assert len(out.voices) == 2 and len(sun_turns) == 1, out.turns
    assert abs(sun_turns[0]["start"] - 4.0) <= 0.25 and abs(sun_turns[0]["end"] - 5.5) <= 0.25, sun_turns
    # the audio too: each change moved to where the spectrum changes voice (measured 3.995 and 5.495 s)
    placed = NodeRunner(VoiceClusterer).run({"embeddings": emb, "speech": speech, "fine": fine,
                                             "audio": _chunks(audio)})["voices"][0]
    sun_turns = [t for t in placed.turns if t["voice"] == "voice_1"]
    assert len(sun_turns) == 1, placed.turns
    assert abs(sun_turns[0]["start"] - 4.0) <= 0.1 and abs(sun_turns[0]["end"] - 5.5) <= 0.1, sun_turns
    assert abs(sum(t["speech"] for t in placed.turns) - sum(t["speech"] for t in out.turns)) < 0.01


def test_cluster_node_without_speech_reports_no_voice():
    speech = NodeRunner(SpeechActivityDetector).run({"audio": _chunks(np.zeros(48000, np.float32))})["speech"]
    out = NodeRunner(VoiceClusterer).run({"embeddings": [], "speech": speech})["voices"][0]
    assert out.voices == [] and out.turns == []


def test_mel_filters_and_encoder_match_librosa_and_resemblyzer():
    """The filter bank and the encoder are rewritten so that neither library is imported at run
    time; they give what librosa and Resemblyzer give."""
    import librosa
    import torch
    from resemblyzer import VoiceEncoder

    from avflow_voice import embed

    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)
    np.testing.assert_allclose(embed.mel_filters(), ref, rtol=1e-5, atol=1e-8)
    wav2lip = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)  # sync.mel's
    np.testing.assert_allclose(embed.mel_filters(16000, 800, 80, 55, 7600), wav2lip, rtol=1e-5, atol=1e-8)
    window = librosa.filters.get_window("hann", 400, fftbins=True)
    np.testing.assert_allclose(embed.MelStream()._window, window, atol=1e-7)
    mels = np.random.default_rng(0).random((3, 160, 40)).astype(np.float32)
    ours = embed.embed_windows(embed.load_encoder("cpu"), mels)
    with torch.inference_mode():
        theirs = VoiceEncoder("cpu", verbose=False).eval()(torch.from_numpy(mels)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_the_voice_nodes_import_neither_librosa_nor_resemblyzer():
    code = ("import sys\nfrom avflow_voice import embed\n"
            "embed.MelStream(); embed.load_encoder('cpu')\n"
            "from avflow_sync.mel import StreamingMel\nStreamingMel()\n"
            "print(sorted(m for m in ('librosa', 'resemblyzer', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _mixture_windows(turns, people, window, step, end, seed):
    """VoiceEmbedding windows of ``window`` s every ``step`` s over ``[0, end)``: each the mean of
    the people heard in it (``turns``: (start, end, person)), weighted by their seconds, plus noise."""
    from avflow_voice.payloads import VoiceEmbedding

    rng = np.random.default_rng(seed)
    out = []
    for c in np.arange(window / 2, end - window / 2 + 1e-9, step):
        a, b = c - window / 2, c + window / 2
        v = sum(max(0.0, min(b, e) - max(a, s)) * people[p] for s, e, p in turns)
        v = v + rng.normal(0.0, 0.02, v.shape)
        out.append(VoiceEmbedding(pts=int(round(c * 1000)), time_base=Fraction(1, 1000), start=a, end=b,
                                  vector=(v / np.linalg.norm(v)).astype(np.float32), speech=window))
    return out


def test_short_windows_split_two_similar_voices_the_long_windows_merged():
    """Two people whose long windows (mixtures across every change) stay within the clustering
    cut (cosine distance 0.23), but whose short windows are 0.5 apart: with ``fine_split`` they
    are two voices, each turn placed by the short windows; without it, one voice."""
    from avflow_voice.payloads import SpeechActivity

    rng = np.random.default_rng(0)
    u, e1, e2 = (x / np.linalg.norm(x) for x in rng.normal(size=(3, 256)))
    e2 = e2 - (e2 @ e1) * e1
    e2 /= np.linalg.norm(e2)
    near = {0: u + 0.55 * e1, 1: u + 0.55 * e2}  # as the 1.6 s windows hear them
    far = {0: u + 1.0 * e1, 1: u + 1.0 * e2}  # as the 0.8 s windows do
    turns = [(0.0, 3.0, 0), (3.0, 5.0, 1), (5.0, 8.0, 0), (8.0, 10.0, 1)]
    hop = 0.032
    n = int(10.0 / hop)
    speech = [SpeechActivity(pts=0, time_base=Fraction(1, 1000), probs=np.ones(n, np.float32), hop=hop,
                             speech=np.ones(n, bool))]
    emb = _mixture_windows(turns, near, 1.6, 0.2, 10.0, 1)
    fine = _mixture_windows(turns, far, 0.8, 0.1, 10.0, 2)
    one = NodeRunner(VoiceClusterer, fine_split=None).run({"embeddings": emb, "speech": speech, "fine": fine})
    assert len(one["voices"][0].voices) == 1
    out = NodeRunner(VoiceClusterer).run({"embeddings": emb, "speech": speech, "fine": fine})["voices"][0]
    assert [v["id"] for v in out.voices] == ["voice_0", "voice_1"]
    assert set(out.centroids) == {"voice_0", "voice_1"}
    second = [(t["start"], t["end"]) for t in out.turns if t["voice"] == "voice_1"]
    assert len(second) == 2, out.turns
    for (s, e), (ts, te) in zip(second, [(3.0, 5.0), (8.0, 10.0)]):
        assert abs(s - ts) <= 0.2 and abs(e - te) <= 0.2, second
    given = NodeRunner(VoiceClusterer, num_speakers=1).run({"embeddings": emb, "speech": speech, "fine": fine})
    assert len(given["voices"][0].voices) == 1  # a given number of voices is kept


def test_refine_changes_moves_touching_changes_within_the_search_only(media_dir):
    """eng then sun without a pause (change at 4.0 s), then a 1 s pause, then eng: turns given
    with the change 0.3 s late are placed back from the spectrum; a change across a pause, a
    change a voice too short to model takes part in, and the search bound are respected."""
    from avflow_voice.boundaries import Cepstra, refine_changes

    eng, sun = _wav(media_dir, "eng.wav", seconds=20), _wav(media_dir, "sun.wav", seconds=12)
    rate = 16000
    audio = np.concatenate([eng[int(3.2 * rate):int(7.2 * rate)], sun[2 * rate:int(6.0 * rate)],
                            np.zeros(rate, np.float32), eng[8 * rate:12 * rate]])
    cep = Cepstra()
    for chunk in _chunks(audio):
        cep.push(chunk)
    cep.finish()
    times, feats = cep.frames()
    assert feats.shape == (len(times), 19) and abs(times[1] - times[0] - 0.01) < 1e-9
    turns = [{"voice": 0, "start": 0.0, "end": 4.3, "speech": 4.3}, {"voice": 1, "start": 4.3, "end": 8.0, "speech": 3.7},
             {"voice": 0, "start": 9.0, "end": 13.0, "speech": 4.0}]
    placed = refine_changes(turns, times, feats)
    assert abs(placed[0]["end"] - 4.0) <= 0.1 and placed[1]["start"] == placed[0]["end"], placed
    assert placed[1]["end"] == 8.0 and placed[2]["start"] == 9.0  # across a pause: left as it is
    assert abs(placed[0]["speech"] + placed[1]["speech"] - 8.0) < 1e-6 and turns[0]["end"] == 4.3
    assert abs(refine_changes(turns, times, feats, search=0.1)[0]["end"] - 4.2) <= 0.01  # at most `search` away
    short = [dict(turns[0]), {"voice": 2, "start": 4.3, "end": 4.6, "speech": 0.3}]
    assert refine_changes(short, times, feats) == short  # voice 2: too little speech for a model
