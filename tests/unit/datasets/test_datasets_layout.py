"""The LMDB layout: clips, n_frames, FLAC audio, the growing writer, shared read handles."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest

from avflow import InputError
from avflow_datasets.layout import (READERS, LmdbWriter, SubjectData, audio_unit, decode_flac, encode_flac,
                                    read_subjects, subject_records, to_pcm16)


def test_audio_unit():
    assert audio_unit(25) == 640 and audio_unit(50) == 320 and audio_unit(20) == 800
    with pytest.raises(InputError, match="fps=30 does not divide 16000"):
        audio_unit(30)


def test_pcm16_and_flac_roundtrip_exactly():
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 1 / 32768], np.float32)
    pcm = to_pcm16(x)
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768, 32767, 1]
    data = encode_flac(pcm)
    assert data[:4] == b"fLaC"
    import soundfile as sf

    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert np.array_equal(decode_flac(data), pcm.astype(np.float32) / 32768)


def test_subject_records_cut_clips_as_diffposetalk_does(ref):
    coefs, audio = ref.ramp_subject(53, 50 * 640 + 639)  # audio-limited: 50 frames
    records = dict(subject_records("p/007", SubjectData(coefs, audio), seg_len=20, unit=640, source="p/7.mp4"))
    keys = list(records)
    assert keys == [b"p/007/000", b"p/007/001", b"p/007/002", b"avflow/source/p/007", b"p/007/metadata"]
    assert pickle.loads(records[b"p/007/metadata"]) == {"n_frames": 50}
    for i, (a, b) in enumerate([(0, 20), (20, 40), (40, 50)]):
        value = pickle.loads(records[f"p/007/{i:03d}".encode()])
        assert set(value) == {"audio", "coef"} and set(value["coef"]) == {"shape", "exp", "pose"}
        assert value["coef"]["exp"][:, 0].tolist() == list(range(a, b))
        assert value["coef"]["pose"].shape == (b - a, 6) and value["coef"]["pose"].dtype == np.float32
        assert np.array_equal(decode_flac(value["audio"]), audio[a * 640:b * 640].astype(np.float32) / 32768)


def test_subject_without_a_frame_is_an_input_error(ref):
    coefs, audio = ref.ramp_subject(10, 639)
    with pytest.raises(InputError, match="no complete frame"):
        subject_records("p/000", SubjectData(coefs, audio), 10, 640)
    with pytest.raises(InputError, match="lack pose"):
        subject_records("p/000", SubjectData({"shape": coefs["shape"], "exp": coefs["exp"]}, audio), 10, 640)


def test_writer_grows_the_map_instead_of_failing(tmp_path):
    rng = np.random.default_rng(0)
    with LmdbWriter(tmp_path / "db", map_size=64 << 10) as w:
        start = w.map_size
        for i in range(8):
            w.put([(f"k/{i:03d}/000".encode(), rng.bytes(200_000)), (f"k/{i:03d}/metadata".encode(),
                                                                       pickle.dumps({"n_frames": 1}))])
        assert w.map_size > start
        assert sorted(w.subjects()) == [f"k/{i:03d}" for i in range(8)]
        assert w.get(b"k/003/metadata") == {"n_frames": 1}


def test_shared_read_handles(tmp_path, ref):
    path = ref.write_lmdb(tmp_path / "db", {"a/000": ref.ramp_subject(5, 5 * 640)}, 10)
    env = READERS.get(path)
    assert READERS.get(path) is env
    assert read_subjects(env) == {"a/000": None}
    pid = os.fork()
    if pid == 0:  # a forked child (a DataLoader worker) gets a handle of its own
        try:
            child = READERS.get(path)
            ok = child is not env and read_subjects(child) == {"a/000": None}
        except BaseException:  # noqa: BLE001 - reported through the exit status
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert read_subjects(env) == {"a/000": None}  # the parent's handle still works
    with pytest.raises(InputError, match="no data.mdb"):
        READERS.get(tmp_path)
