"""Wav2Lip's SyncNet_color: checkpoint format and loading, batched scoring, the sync.syncnet node."""

from __future__ import annotations

import pathlib
import pickle
import re
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from avflow.errors import ModelError  # noqa: E402
from avflow.payloads import Box, FaceCrop  # noqa: E402
from avflow.testing import NodeRunner  # noqa: E402
from avflow_sync.nodes.mel import MelSpectrogram  # noqa: E402
from avflow_sync.nodes.syncnet import SyncNetScorer  # noqa: E402
from avflow_sync.nodes.windows import SyncWindows  # noqa: E402
from avflow_sync.payloads import SyncWindow  # noqa: E402
from avflow_sync.syncnet import (AUDIO_LAYERS, FACE_LAYERS, build_syncnet, fold_batchnorm,  # noqa: E402
                                 load_syncnet, save_random_syncnet, sync_similarity)

KEY = re.compile(r"^(face|audio)_encoder\.\d+\.conv_block\.[01]\."
                 r"(weight|bias|running_mean|running_var|num_batches_tracked)$")


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory):
    return save_random_syncnet(tmp_path_factory.mktemp("syncnet") / "lipsync_expert.pth", seed=3)


@pytest.fixture(scope="module")
def ckpt(ckpt_path):
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model(ckpt_path):
    return load_syncnet(ckpt_path)


@pytest.fixture(scope="module")
def lite_sd(ckpt):
    """The real keys and shapes, each tensor a broadcast zero: checkpoints of a few kB for error cases."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in ckpt["state_dict"].items()}


def windows(n, tracks=("a", "b"), k=1, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(SyncWindow(
            pts=i + 2, time_base=Fraction(1, 25), track_id=tracks[i % len(tracks)], frame_index=i,
            video=rng.integers(0, 256, (15, 48, 96), dtype=np.uint8),
            mel=rng.uniform(-4, 4, (k, 80, 16)).astype(np.float32), mel_valid=np.ones(k, bool),
            mel_start=int(3.2 * i), meta={"offsets": list(range(-(k // 2), k // 2 + 1))}))
    return out


# -- architecture and format ------------------------------------------------------------------------
def test_checkpoint_is_in_wav2lips_format(ckpt):
    assert set(ckpt) == {"state_dict", "optimizer", "global_step", "global_epoch"}
    sd = ckpt["state_dict"]
    assert all(KEY.match(k) for k in sd), [k for k in sd if not KEY.match(k)][:3]
    assert {int(k.split(".")[1]) for k in sd if k.startswith("face_")} == set(range(len(FACE_LAYERS))) == set(range(17))
    assert {int(k.split(".")[1]) for k in sd if k.startswith("audio_")} == set(range(len(AUDIO_LAYERS))) == set(range(14))
    assert sd["face_encoder.0.conv_block.0.weight"].shape == (32, 15, 7, 7)
    assert sd["face_encoder.1.conv_block.0.weight"].shape == (64, 32, 5, 5)
    assert sd["audio_encoder.0.conv_block.0.weight"].shape == (32, 1, 3, 3)
    assert sd["audio_encoder.13.conv_block.1.running_var"].shape == (512,)
    assert len(sd) == 7 * (17 + 14)


def test_encoders_map_windows_to_512_vectors(model):
    m = model
    assert type(build_syncnet()).__name__ == "SyncNetColor"
    with torch.no_grad():
        assert m.face_encoder(torch.zeros(2, 15, 48, 96)).shape == (2, 512, 1, 1)
        assert m.audio_encoder(torch.zeros(2, 1, 80, 16)).shape == (2, 512, 1, 1)
        a, f = m(torch.randn(2, 1, 80, 16), torch.rand(2, 15, 48, 96))
    np.testing.assert_allclose(a.norm(dim=1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(f.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_load_restores_the_saved_weights(model, ckpt):
    assert not model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["state_dict"][k])


def test_module_prefix_and_legacy_serialisation_load(tmp_path, lite_sd):
    p = tmp_path / "dp.pth"
    sd = {"module." + k: v + (1 if k == "face_encoder.3.conv_block.0.bias" else 0)
          for k, v in lite_sd.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": sd, "global_step": 1}, p, _use_new_zipfile_serialization=False)
    m = load_syncnet(p)
    assert m.state_dict()["face_encoder.3.conv_block.0.bias"].tolist() == [1.0] * 64


# -- errors -----------------------------------------------------------------------------------------
def _save_modified(tmp_path, lite_sd, edit):
    sd = dict(lite_sd)
    edit(sd)
    p = tmp_path / "bad.pth"
    torch.save({"state_dict": sd}, p)
    return p


def test_wrong_shape_names_the_first_mismatching_key(tmp_path, lite_sd):
    def edit(sd):
        sd["face_encoder.0.conv_block.0.weight"] = torch.zeros(32, 3, 7, 7)    # 3 channels instead of 15
        sd["audio_encoder.2.conv_block.1.bias"] = torch.zeros(7)
    p = _save_modified(tmp_path, lite_sd, edit)
    with pytest.raises(ModelError, match=r"'face_encoder\.0\.conv_block\.0\.weight' has shape \(32, 3, 7, 7\) "
                                         r"in the checkpoint, expected \(32, 15, 7, 7\)") as e:
        load_syncnet(p)
    assert "2 mis-shaped" in str(e.value) and str(p) in str(e.value)


def test_missing_and_unexpected_keys_are_named(tmp_path, lite_sd):
    p = _save_modified(tmp_path, lite_sd, lambda sd: sd.pop("audio_encoder.5.conv_block.0.bias"))
    with pytest.raises(ModelError, match=r"'audio_encoder\.5\.conv_block\.0\.bias' is missing"):
        load_syncnet(p)
    p = _save_modified(tmp_path, lite_sd, lambda sd: sd.update({"face_encoder.17.conv_block.0.weight": torch.zeros(1)}))
    with pytest.raises(ModelError, match=r"'face_encoder\.17\.conv_block\.0\.weight' is unexpected"):
        load_syncnet(p)


def test_not_a_dict_or_no_state_dict_is_a_clear_error(tmp_path):
    p = tmp_path / "list.pth"
    torch.save([1, 2, 3], p)
    with pytest.raises(ModelError, match="expected a dict with 'state_dict'.*got a list"):
        load_syncnet(p)
    torch.save({"model": {}, "epoch": 3}, p)
    with pytest.raises(ModelError, match=r"no 'state_dict' \(its keys: 'model', 'epoch'\)"):
        load_syncnet(p)
    with pytest.raises(ModelError, match="not found"):
        load_syncnet(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ModelError, match="junk.pth"):
        load_syncnet(tmp_path / "junk.pth")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))  # would run at unpickling time


def test_code_executing_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"state_dict": _Evil(marker)}, protocol=2))
    zipped = tmp_path / "zipped.pth"
    torch.save({"state_dict": _Evil(marker)}, zipped)
    for p in (plain, zipped):
        with pytest.raises(ModelError, match="refused because loading them could run code"):
            load_syncnet(p)
    assert not marker.exists()


# -- scoring ----------------------------------------------------------------------------------------
def test_batched_scores_equal_batch_size_one(ckpt_path, model):
    items = windows(4)  # tracks a, b, a, b: one batch mixes both
    # fp32: compared with Wav2Lip's own forward below (bf16 is checked separately)
    big = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=3, precision="fp32")
    out3 = big.run({"windows": items})["scores"]
    one = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=1, precision="fp32")
    out1 = one.run({"windows": items})["scores"]
    assert big.batch_sizes == [3, 1] and one.batch_sizes == [1] * 4  # the partial batch is flushed at the end
    assert [(s.track_id, s.frame_index, s.pts) for s in out3] == [(w.track_id, w.frame_index + 2, w.pts) for w in items]
    np.testing.assert_allclose([s.value for s in out3], [s.value for s in out1], atol=1e-5, rtol=0)
    assert all(0.0 <= s.value <= 1.0 for s in out3)
    assert out3[0].extra == {"window_start": 0, "mel_start": 0, "threshold": 0.5}
    # the reference: Wav2Lip's forward on float frames in [0, 1], cosine of the embeddings
    with torch.no_grad():
        a, f = model(torch.from_numpy(items[3].mel[None]), torch.from_numpy(items[3].video[None]).float() / 255)
    assert out3[3].value == pytest.approx(float((a * f).sum()), abs=1e-5)


def test_offset_search_scores_every_offset(ckpt_path, model):
    items = windows(2, k=5, seed=1)
    items[0].mel_valid[:2] = False
    out = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=8, precision="fp32").run(
        {"windows": items})["scores"]
    ref = sync_similarity(model, torch.from_numpy(np.stack([w.video for w in items])),
                          torch.from_numpy(np.stack([w.mel for w in items]))).numpy()
    for s, r, w in zip(out, ref, items):
        assert s.value == pytest.approx(float(r[2]), abs=1e-5)
        masked = np.where(w.mel_valid, r, -np.inf)
        assert s.extra["offset"] == int(np.argmax(masked)) - 2
        assert s.extra["offset_score"] == pytest.approx(float(r.max() if w.mel_valid.all() else masked.max()), abs=1e-6)
        assert [v is None for v in s.extra["offset_scores"]] == (~w.mel_valid).tolist()
        assert s.extra["track_offset"] in range(-2, 3)


def test_folded_batchnorm_and_shared_audio_give_the_same_similarities(ckpt_path, model):
    items = windows(6, tracks=("a", "b", "c"), k=3, seed=2)
    for i in (1, 2, 4, 5):  # three faces seen at the same moments: the same mel windows
        items[i].mel[...] = items[3 * (i // 3)].mel
    video = torch.from_numpy(np.stack([w.video for w in items]))
    mel = torch.from_numpy(np.stack([w.mel for w in items]))
    ref = sync_similarity(model, video, mel).numpy()
    folded = fold_batchnorm(load_syncnet(ckpt_path))
    assert fold_batchnorm(folded) is folded and not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    rows = []
    folded.audio_encoder.register_forward_hook(lambda mod, args, out: rows.append(len(args[0])))
    got = sync_similarity(folded, video, mel, chunk=4).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    assert sum(rows) == 6 and rows == [4, 2]  # 2 moments x 3 offsets, encoded once each, 4 at a time


def test_weights_are_required_unless_random_init():
    with pytest.raises(ModelError, match="needs weights"):
        NodeRunner(SyncNetScorer).open()
    out = NodeRunner(SyncNetScorer, random_init=True, seed=3, batch_size=2).run({"windows": windows(2)})["scores"]
    assert len(out) == 2


def test_models_declares_the_checkpoint():
    (mf,) = SyncNetScorer.models
    assert mf.param == "weights" and "lipsync_expert.pth" in mf.doc


def test_bf16_matches_fp32_and_auto_picks_it_only_where_the_cpu_has_it(ckpt_path):
    from avflow_sync.nodes.syncnet import cpu_has_bf16, resolve_precision

    assert resolve_precision("auto", "cuda") == "fp16" and resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_bf16() else "fp32")
    items = windows(8)
    fp32 = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=8, precision="fp32").run({"windows": items})
    bf16 = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=8, precision="bf16").run({"windows": items})
    np.testing.assert_allclose([s.value for s in bf16["scores"]], [s.value for s in fp32["scores"]], atol=1e-2)


@pytest.mark.gpu
def test_fp16_on_cuda_matches_fp32(ckpt_path):
    items = windows(8)
    fp32 = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=8, precision="fp32").run({"windows": items})["scores"]
    r = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=8, device="cuda")
    fp16 = r.run({"windows": items})["scores"]
    np.testing.assert_allclose([s.value for s in fp16], [s.value for s in fp32], atol=2e-2)


# -- mel -> windows -> syncnet on real speech ---------------------------------------------------------
def test_chain_on_real_speech(media_dir, ckpt_path):
    sf = pytest.importorskip("soundfile")
    from avflow.payloads import AudioChunk

    x, _ = sf.read(str(media_dir / "eng.wav"), dtype="float32", frames=8000)
    chunks = [AudioChunk(pts=i, time_base=Fraction(1, 16000), samples=x[None, i:i + 3200], sample_rate=16000)
              for i in range(0, len(x), 3200)]
    mel = NodeRunner(MelSpectrogram).run({"audio": chunks})["mel"]
    rng = np.random.default_rng(0)
    crops = [FaceCrop(pts=i, time_base=Fraction(1, 25), track_id=t, frame_index=i,
                      image=rng.integers(0, 256, (48, 96, 3), dtype=np.uint8), box=Box(0, 0, 96, 96))
             for i in range(12) for t in ("face_0", "face_1")]
    wins = NodeRunner(SyncWindows, connected_inputs=("crops", "mel")).run({"crops": crops, "mel": mel})["windows"]
    # 0.5 s of audio = 41 columns: int(3.2 i) + 16 <= 41 for i <= 8; crops for i <= 7
    assert [w.frame_index for w in wins if w.track_id == "face_1"] == list(range(8))
    wins = [w for w in wins if w.frame_index >= 6]
    scorer = NodeRunner(SyncNetScorer, weights=ckpt_path, batch_size=3)
    scores = scorer.run({"windows": wins})["scores"]
    assert scorer.batch_sizes == [3, 1]
    assert [(s.track_id, s.frame_index) for s in scores] == [("face_0", 8), ("face_1", 8), ("face_0", 9), ("face_1", 9)]
