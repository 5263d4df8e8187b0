"""Model folder: the scaffold's formats, loading real-format files, and the errors for bad ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from avflow import InputError, ModelError
from avflow_musetalk.layout import check_model_dir, required_files
from avflow_musetalk.loading import convert_legacy_vae_keys, load_unet, load_vae, load_whisper
from avflow_musetalk.scaffold import UNET_FULL, VAE_FULL, WHISPER_FULL, write_scaffold

LAYOUT = {
    "musetalkV15/musetalk.json", "musetalkV15/unet.pth", "musetalk/musetalk.json", "musetalk/pytorch_model.bin",
    "sd-vae/config.json", "sd-vae/diffusion_pytorch_model.bin",
    "whisper/config.json", "whisper/pytorch_model.bin", "whisper/preprocessor_config.json",
    "face-parse-bisent/79999_iter.pth", "face-parse-bisent/resnet18-5c106cde.pth",
}


@pytest.fixture
def models(tiny_models, tmp_path):
    """A private copy of the tiny folder, for tests that break it."""
    dst = tmp_path / "models"
    shutil.copytree(tiny_models, dst)
    return dst


def test_scaffold_writes_musetalks_layout(tiny_models):
    files = {str(p.relative_to(tiny_models)) for p in tiny_models.rglob("*") if p.is_file()}
    assert files == LAYOUT
    assert check_model_dir(tiny_models, "v15") and check_model_dir(tiny_models, "v1")


def test_cli_scaffold_and_check(tmp_path):
    """``avflow models scaffold DIR --random --tiny`` and ``avflow models --check DIR`` use this plugin."""
    import subprocess
    import sys

    def avflow_cli(*args):
        return subprocess.run([sys.executable, "-m", "avflow", *map(str, args)], capture_output=True, text=True,
                              timeout=300)

    done = avflow_cli("models", "scaffold", tmp_path, "--random", "--tiny", "--name", "musetalk")
    assert done.returncode == 0, done.stderr
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()} == LAYOUT
    (tmp_path / "sd-vae" / "diffusion_pytorch_model.bin").unlink()
    check = avflow_cli("models", "--check", tmp_path)
    assert check.returncode == 2, check.stdout + check.stderr
    assert "[missing] sd-vae/diffusion_pytorch_model.bin" in check.stdout
    for f in LAYOUT - {"sd-vae/diffusion_pytorch_model.bin"}:
        assert f"[ok]      {f}" in check.stdout
    # The face parser is listed as the blend node's optional files; without it the folder is complete.
    blend = check.stdout[check.stdout.index("musetalk.blend"):]
    assert blend.startswith("musetalk.blend  face-parse-bisent (optional, param 'models')")
    (tmp_path / "face-parse-bisent" / "79999_iter.pth").unlink()
    (tmp_path / "sd-vae" / "diffusion_pytorch_model.bin").write_bytes(b"")  # present again
    check = avflow_cli("models", "--check", tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "[missing] face-parse-bisent/79999_iter.pth" in check.stdout


def test_scaffold_files_load_with_the_libraries_own_loaders(tiny_models):
    """The formats are the real ones: each library's standard loader reads them as they are."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperModel

    for folder, weights in (("musetalkV15", "unet.pth"), ("musetalk", "pytorch_model.bin")):
        config = json.loads((tiny_models / folder / "musetalk.json").read_text())
        unet = UNet2DConditionModel(**config)  # as MuseTalk's own UNet wrapper builds it
        unet.load_state_dict(torch.load(tiny_models / folder / weights, weights_only=True))
    vae = AutoencoderKL.from_pretrained(tiny_models / "sd-vae", local_files_only=True)
    assert vae.config.scaling_factor == pytest.approx(0.18215) and vae.config.latent_channels == 4
    whisper = WhisperModel.from_pretrained(tiny_models / "whisper", local_files_only=True)
    assert whisper.config.num_mel_bins == 80 and whisper.config.encoder_layers == 4
    WhisperForConditionalGeneration.from_pretrained(tiny_models / "whisper", local_files_only=True)
    fe = WhisperFeatureExtractor.from_pretrained(tiny_models / "whisper", local_files_only=True)
    assert fe.feature_size == 80 and fe.sampling_rate == 16000


def test_loaders_build_working_models(tiny_models):
    import torch

    unet, config = load_unet(tiny_models, "v15", "cpu", torch.float32)
    assert config["in_channels"] == 8 and config["out_channels"] == 4
    vae = load_vae(tiny_models, "cpu", torch.float32)
    z = vae.encode(torch.zeros(1, 3, 256, 256)).latent_dist.mode()
    assert z.shape == (1, 4, 32, 32)  # 256 px -> 32 x 32 latents, as sd-vae
    encoder, extractor, wconf = load_whisper(tiny_models, "cpu", torch.float32)
    assert wconf.d_model == config["cross_attention_dim"]
    out = unet(torch.zeros(2, 8, 32, 32), torch.tensor([0]),
               encoder_hidden_states=torch.zeros(2, 50, wconf.d_model)).sample
    assert out.shape == (2, 4, 32, 32) and torch.isfinite(out).all()


def test_missing_files_are_listed_each_with_what_it_is(models):
    (models / "musetalkV15" / "unet.pth").unlink()
    (models / "whisper" / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError) as err:
        check_model_dir(models, "v15")
    msg = str(err.value)
    assert "2 file(s) missing" in msg
    assert "musetalkV15/unet.pth: MuseTalk v1.5 UNet weights" in msg
    assert "whisper/preprocessor_config.json: Whisper feature extractor config" in msg
    assert "avflow models scaffold" in msg
    assert isinstance(err.value, InputError) and err.value.exit_code == 2
    with pytest.raises(ModelError) as err:  # v1's UNet is complete: only the shared file is missing
        check_model_dir(models, "v1")
    assert "1 file(s) missing" in str(err.value) and "unet.pth" not in str(err.value)


def test_missing_folder_lists_every_file(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as err:
        check_model_dir(tmp_path / "nowhere", "v1")
    for f in required_files("v1"):
        assert f.path in str(err.value)


def test_wrong_shape_names_the_file_the_key_and_both_shapes(models):
    import torch

    path = models / "musetalkV15" / "unet.pth"
    state = torch.load(path, weights_only=True)
    key = "conv_in.weight"
    state[key] = torch.zeros(16, 9, 3, 3)  # 9 input channels instead of 8
    path.unlink()  # the v1 file is a hard link to this one: replace, don't overwrite
    torch.save(state, path)
    with pytest.raises(ModelError) as err:
        load_unet(models, "v15", "cpu", torch.float32)
    msg = str(err.value)
    assert str(path) in msg and f"'{key}'" in msg and "(16, 9, 3, 3)" in msg and "(16, 8, 3, 3)" in msg
    load_unet(models, "v1", "cpu", torch.float32)  # the v1 weights are untouched


def test_missing_and_unexpected_keys(models):
    import torch

    path = models / "sd-vae" / "diffusion_pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    state.pop("decoder.conv_out.bias")
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"missing, first 'decoder.conv_out.bias' \(shape \(3,\)\)"):
        load_vae(models, "cpu", torch.float32)
    state["decoder.conv_out.bias"] = torch.zeros(3)
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, path)
    with pytest.raises(ModelError, match="not in the sd-vae"):
        load_vae(models, "cpu", torch.float32)


def test_unreadable_weights_and_config(models):
    import torch

    (models / "whisper" / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="pytorch_model.bin is not a PyTorch weights checkpoint"):
        load_whisper(models, "cpu", torch.float32)
    (models / "musetalkV15" / "musetalk.json").write_text("{broken")
    with pytest.raises(ModelError, match="musetalk.json: cannot read"):
        load_unet(models, "v15", "cpu", torch.float32)


def test_pickled_code_is_refused(models, tmp_path):
    """weights_only: a checkpoint that would run code on load is an error, not executed."""
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(models / "whisper" / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f, protocol=2)
    import torch

    with pytest.raises(ModelError):
        load_whisper(models, "cpu", torch.float32)
    assert not marker.exists()


def test_whisper_model_state_dict_without_prefix(models):
    """A WhisperModel state dict (``encoder.*``, no ``model.``) loads too."""
    import torch

    path = models / "whisper" / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    torch.save({k[len("model."):]: v for k, v in state.items()}, path)
    load_whisper(models, "cpu", torch.float32)
    torch.save({k: v for k, v in state.items() if "decoder" in k}, path)
    with pytest.raises(ModelError, match="no Whisper encoder weights"):
        load_whisper(models, "cpu", torch.float32)


def test_legacy_vae_attention_keys_are_converted():
    import torch

    expected = {"encoder.mid_block.attentions.0.to_q.weight": (8, 8),
                "encoder.mid_block.attentions.0.to_out.0.bias": (8,)}
    old = {"encoder.mid_block.attentions.0.query.weight": torch.zeros(8, 8, 1, 1),
           "encoder.mid_block.attentions.0.proj_attn.bias": torch.zeros(8),
           "encoder.conv_in.weight": torch.zeros(1)}
    new = convert_legacy_vae_keys(old, expected)
    assert set(new) == {*expected, "encoder.conv_in.weight"}
    assert new["encoder.mid_block.attentions.0.to_q.weight"].shape == (8, 8)


def test_full_size_configs_are_musetalks():
    assert UNET_FULL["block_out_channels"] == [320, 640, 1280, 1280]
    assert UNET_FULL["cross_attention_dim"] == 384 and UNET_FULL["in_channels"] == 8
    assert VAE_FULL["block_out_channels"] == [128, 256, 512, 512] and VAE_FULL["scaling_factor"] == 0.18215
    assert WHISPER_FULL["d_model"] == 384 and WHISPER_FULL["encoder_layers"] == 4


@pytest.mark.slow
def test_full_size_scaffold_loads_and_generates(tmp_path, request):
    """MuseTalk's real architecture sizes, written and loaded through the same code; one frame."""
    import torch

    from avflow_musetalk.positional import add_positional_encoding

    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))  # ~4 GB: don't keep it
    write_scaffold(tmp_path, tiny=False, seed=0)
    unet, config = load_unet(tmp_path, "v15", "cpu", torch.float32)
    n_params = sum(p.numel() for p in unet.parameters())
    assert 840e6 < n_params < 860e6  # MuseTalk's UNet: ~850 M parameters
    vae = load_vae(tmp_path, "cpu", torch.float32)
    assert sum(p.numel() for p in vae.parameters()) == pytest.approx(83.65e6, rel=0.01)
    encoder, extractor, wconf = load_whisper(tmp_path, "cpu", torch.float32)
    assert (wconf.d_model, wconf.encoder_layers, wconf.num_mel_bins) == (384, 4, 80)
    with torch.inference_mode():
        mel = extractor(torch.zeros(16000).numpy(), sampling_rate=16000, return_tensors="pt").input_features
        hidden = encoder(mel, output_hidden_states=True).hidden_states
        assert len(hidden) == 5 and hidden[0].shape == (1, 1500, 384)
        prompt = torch.stack(hidden, 2)[:, :10].reshape(1, 50, 384)
        z = vae.encode(torch.zeros(1, 3, 256, 256)).latent_dist.mode() * vae.config.scaling_factor
        pred = unet(torch.cat([z, z], 1), torch.tensor([0]),
                    encoder_hidden_states=add_positional_encoding(prompt)).sample
        face = vae.decode(pred / vae.config.scaling_factor).sample
    assert face.shape == (1, 3, 256, 256) and torch.isfinite(face).all()
