"""`avflow validate` catches what `avflow run` would, in the graph's words (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest


def avflow_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "avflow", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ), cwd=cwd, timeout=300)


def test_validate_syncnet_without_weights_names_the_graph_param():
    res = avflow_cli("validate", "diarize", "--set", "scorer=syncnet")
    assert res.returncode == 2, res.stdout
    assert "syncnet_weights (sets syncnet.weights): needs the Wav2Lip lip-sync expert" in res.stderr
    assert "--set syncnet_weights=PATH" in res.stderr
    assert "random_init" not in res.stderr


def test_validate_checks_inputs_and_model_folders(tmp_path):
    res = avflow_cli("validate", "lipsync", "--set", f"models={tmp_path}", "--set", "video=/nonexistent.mp4")
    assert res.returncode == 2
    assert "video (sets video.path): not found: /nonexistent.mp4" in res.stderr
    assert f"models (sets encode.models): MuseTalk model folder {tmp_path} is incomplete" in res.stderr
    assert res.stderr.count("MuseTalk model folder") == 1  # one cause, said once (5 nodes use it)
    assert "musetalkV15/unet.pth" in res.stderr


def test_validate_alone_does_not_check_paths_left_at_their_default():
    # `models: models` is the graph's default; a structural check of the graph still passes.
    res = avflow_cli("validate", "lipsync")
    assert res.returncode == 0, res.stderr


def test_node_param_errors_name_the_graph_param_that_sets_them():
    res = avflow_cli("validate", "diarize", "--set", "detect_every=0")
    assert res.returncode == 2
    assert "detect_every (sets detect.every_n): must be >= 1, got 0" in res.stderr


def test_a_wrong_choice_is_reported_without_knock_on_errors():
    res = avflow_cli("validate", "diarize", "--set", "scorer=nonsense")
    assert res.returncode == 2
    assert "1 error in graph 'diarize'" in res.stderr
    assert "expected one of 'motion', 'syncnet', got 'nonsense'" in res.stderr
    assert "smooth" not in res.stderr and "evidence" not in res.stderr


def test_a_still_image_given_to_diarize_asks_for_a_video_with_sound(media_dir):
    res = avflow_cli("validate", "diarize", "--set", f"video={media_dir / 'monalisa.png'}")
    assert res.returncode == 2
    assert "is a still image" in res.stderr and "give it a video with sound" in res.stderr
    assert "connect the audio port" not in res.stderr


def test_a_missing_input_is_reported_before_the_heavy_imports(tmp_path):
    t0 = time.perf_counter()
    res = avflow_cli("run", "diarize", "--set", f"video={tmp_path / 'missing.mp4'}", "-o", tmp_path / "out")
    took = time.perf_counter() - t0
    assert res.returncode == 2 and "not found" in res.stderr
    assert not (tmp_path / "out").exists()  # nothing left behind
    assert took < 3.0, f"{took:.1f} s before the error"


def test_models_check_exits_2_when_files_or_the_folder_are_missing(tmp_path):
    res = avflow_cli("models", "--check", tmp_path / "nope")
    assert res.returncode == 2 and "no such folder" in res.stderr
    res = avflow_cli("models", "--check", tmp_path)  # exists, holds nothing
    assert res.returncode == 2 and "required file(s) missing" in res.stderr


def test_models_check_passes_a_complete_scaffold(tmp_path):
    assert avflow_cli("models", "scaffold", tmp_path, "--random", "--tiny").returncode == 0
    res = avflow_cli("models", "--check", tmp_path)
    assert res.returncode == 0, res.stderr
    res = avflow_cli("validate", "lipsync", "--set", f"models={tmp_path}")
    assert res.returncode == 0, res.stderr


def test_a_random_bytes_checkpoint_is_not_a_checkpoint_and_the_safe_loader_stays(tmp_path):
    import numpy as np

    import avflow

    bad = tmp_path / "lipsync_expert.pth"
    # random bytes fail the unpickler in many ways (UnpicklingError, IndexError, KeyError,
    # UnicodeDecodeError, ...): seeds 0 (UnpicklingError), 17 (IndexError), 54 (UnicodeDecodeError) and
    # 62 (KeyError) among these
    for seed in [*range(20), 54, 62]:
        bad.write_bytes(np.random.default_rng(seed).bytes(4096))
        with pytest.raises(avflow.ModelError) as info:
            avflow.read_torch_checkpoint(bad, "Wav2Lip lip-sync expert")
        msg = str(info.value)
        assert "is not a PyTorch weights checkpoint" in msg, (seed, msg)
        assert "weights_only" not in msg and "False" not in msg
