"""graphs/lipsync.yaml end to end on real media, with a tiny random-weight model folder.

Runs through the embedding API (``avflow.run``) on CPU. The face-detection cache is shared by
the tests of this module, so the avatar is examined once, as a user's second audio would be.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

import avflow
from avflow import ModelError, NodeError
from avflow.testing import synth_audio, synth_video, write_video

REPO = Path(__file__).resolve().parents[2]
GRAPH = REPO / "graphs" / "lipsync.yaml"


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    from avflow_musetalk.scaffold import write_scaffold

    root = tmp_path_factory.mktemp("models")
    write_scaffold(root, tiny=True, seed=0)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def speech(media_dir, tmp_path_factory):
    """``speech(seconds)``: the start of yongen.wav (48 kHz stereo) as a wav file."""
    import soundfile as sf

    data, rate = sf.read(str(media_dir / "yongen.wav"), dtype="float32")
    folder = tmp_path_factory.mktemp("speech")

    def make(seconds: float) -> Path:
        path = folder / f"speech_{seconds}.wav"
        if not path.exists():
            sf.write(str(path), data[: int(round(seconds * rate))], rate)
        return path

    return make


def graph_with_frames() -> dict:
    """The shipped graph, also returning the blended frames and what they were made from."""
    spec = yaml.safe_load(GRAPH.read_text())
    spec["outputs"].update({"frames": "blend.frames", "generated": "decode_face.frames"})
    return spec


def run(graph, params: dict, out: Path, cache_dir: Path):
    return avflow.run(graph, params, output_dir=out, device="cpu", cache_dir=cache_dir)


def probe(path: Path) -> dict:
    """What a player sees in the file: frames, size, rate, both durations."""
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {"width": v.codec_context.width, "height": v.codec_context.height,
                "fps": float(v.average_rate), "frames": sum(1 for _ in c.decode(video=0))}
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(audio=0))
        info["audio_s"] = samples / a.codec_context.sample_rate
    info["video_s"] = info["frames"] / info["fps"]
    return info


def source_frames(path: Path, n: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out


def assert_only_face_changed(frames, generated, sources) -> int:
    """Blended frames equal their source frames outside the face boxes; return how many changed."""
    changed = 0
    for frame, gen in zip(frames, generated, strict=True):
        src = sources[gen.index]
        np.testing.assert_array_equal(gen.image, src)  # the chain carried the decoded pixels
        if gen.box is None:
            np.testing.assert_array_equal(frame.image, src)
            continue
        x1, y1, x2, y2 = gen.box
        outside = np.ones(src.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        np.testing.assert_array_equal(frame.image[outside], src[outside])
        changed += int((frame.image[y1:y2, x1:x2] != src[y1:y2, x1:x2]).any())
    return changed


@pytest.fixture(scope="module")
def video_run(media_dir, speech, tiny_models, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("video-run")
    params = {"video": media_dir / "yongen.mp4", "audio": speech(2.0), "models": tiny_models,
              "blend": "landmarks",  # the default (parsing, with this folder) runs in its own test
              "video.max_duration": 3.0}  # decode no more of the 10.7 s clip than a test needs
    return run(graph_with_frames(), params, out, cache_dir)


def test_video_input_writes_lipsync_mp4(video_run, media_dir):
    path = video_run.outputs["video"].path
    assert path == video_run.output_dir / "lipsync.mp4" and path.is_file()
    info = probe(path)
    assert (info["width"], info["height"]) == (704, 1216)
    assert info["fps"] == pytest.approx(25.0)
    assert info["frames"] == 50  # 2 s of audio at the source's 25 fps
    assert info["audio_s"] == pytest.approx(2.0, abs=0.07)  # AAC frames round up
    assert info["video_s"] == pytest.approx(info["audio_s"], abs=0.07)  # A/V in sync
    assert not list(path.parent.glob(".*partial*"))  # written atomically


def test_pixels_outside_the_face_boxes_are_unchanged(video_run, media_dir):
    frames, generated = video_run.outputs["frames"], video_run.outputs["generated"]
    assert [f.index for f in frames] == list(range(50))
    assert [g.index for g in generated] == list(range(50))  # video longer than audio: no cycle
    assert [f.pts * f.time_base for f in frames] == [g.pts * g.time_base for g in generated]
    sources = source_frames(media_dir / "yongen.mp4", 50)
    assert assert_only_face_changed(frames, generated, sources) == 50  # a face in every frame


def test_short_video_cycles_backward_and_forward(media_dir, speech, tiny_models, cache_dir, video_run,
                                                 tmp_path, caplog):
    from avflow_musetalk.nodes.prompts import pingpong

    params = {"video": media_dir / "yongen.mp4", "audio": speech(2.0), "models": tiny_models, "blend": "landmarks",
              "video.max_duration": 0.6}  # 15 frames for 50 output frames
    with caplog.at_level(logging.INFO, logger="avflow"):
        result = run(graph_with_frames(), params, tmp_path, cache_dir)
    assert "15 frames, 15 from the cache" in caplog.text  # same avatar: no detection at all
    generated = result.outputs["generated"]
    assert [g.index for g in generated] == [pingpong(k, 15) for k in range(50)]
    sources = source_frames(media_dir / "yongen.mp4", 15)
    assert_only_face_changed(result.outputs["frames"], generated, sources)
    info = probe(result.outputs["video"].path)
    assert info["frames"] == 50 and info["fps"] == pytest.approx(25.0)


def test_still_portrait(media_dir, speech, tiny_models, cache_dir, tmp_path):
    params = {"video": media_dir / "yongen.jpeg", "audio": speech(1.2), "models": tiny_models, "fps": 20.0,
              "blend": "landmarks"}
    result = run(GRAPH, params, tmp_path, cache_dir)
    info = probe(result.outputs["video"].path)
    assert (info["width"], info["height"]) == (736, 1308)
    assert info["fps"] == pytest.approx(20.0) and info["frames"] == 24
    assert info["audio_s"] == pytest.approx(1.2, abs=0.07)


def test_both_blend_modes_and_the_frame_count_at_the_audio_end(media_dir, speech, tiny_models, cache_dir,
                                                               video_run, tmp_path, caplog):
    """0.45 s of audio: floor(0.45 x 25) = 11 frames (a 12th, shown until 0.48 s, would outlast
    it). The same generated faces pasted through MuseTalk's face-parsing mask (the default, as
    the folder holds face-parse-bisent/) and through the landmark mask: different pixels, both
    only inside the face boxes, and the parsing mask nothing above the box's centre line but
    its blur."""
    from avflow_musetalk.parsing import blur_size, parsing_crop_box

    params = {"video": media_dir / "yongen.mp4", "audio": speech(0.45), "models": tiny_models,
              "video.max_duration": 1.0}
    with caplog.at_level(logging.INFO, logger="avflow"):
        parsing = run(graph_with_frames(), params, tmp_path / "parsing", cache_dir)
    assert "blend mask: face parsing (jaw)" in caplog.text
    landmarks = run(graph_with_frames(), {**params, "blend": "landmarks"}, tmp_path / "landmarks", cache_dir)
    assert probe(parsing.outputs["video"].path)["frames"] == 11
    sources = source_frames(media_dir / "yongen.mp4", 11)
    generated = parsing.outputs["generated"]
    for a, b in zip(generated, landmarks.outputs["generated"], strict=True):
        np.testing.assert_array_equal(a.face, b.face)
    assert assert_only_face_changed(parsing.outputs["frames"], generated, sources) == 11
    assert assert_only_face_changed(landmarks.outputs["frames"], generated, sources) == 11
    differ = 0
    for p, q, g in zip(parsing.outputs["frames"], landmarks.outputs["frames"], generated):
        x1, y1, x2, y2 = g.box
        crop = parsing_crop_box(g.box)
        top = (y1 + y2) // 2 - blur_size(0.05, crop[2] - crop[0]) // 2
        np.testing.assert_array_equal(p.image[:top], g.image[:top])
        differ += int((p.image != q.image).any())
    assert differ == 11


def test_frames_without_a_face_pass_through_unchanged(tiny_models, cache_dir, tmp_path):
    """No face anywhere: every frame comes out exactly as it went in (v1 weights, for once).
    The v1 prompts are zeros outside the audio, as current MuseTalk slices v1 (hand-computed:
    0.4 s = 20 feature frames; frame 0's window is features -4..5, frame 9's 14..23)."""
    video = write_video(tmp_path / "noface.mp4", synth_video(12, 160, 120), fps=25)
    audio = tmp_path / "tone.wav"
    import soundfile as sf

    sf.write(str(audio), synth_audio(0.4, 16000)[0], 16000)
    spec = graph_with_frames()
    spec["outputs"]["prompts"] = "prompts.frames"
    result = run(spec, {"video": video, "audio": audio, "models": tiny_models, "version": "v1"},
                 tmp_path / "out", cache_dir)
    sources = source_frames(video, 12)
    frames = result.outputs["frames"]
    assert len(frames) == 10  # 0.4 s at 25 fps
    assert all(g.box is None for g in result.outputs["generated"])
    for f, src in zip(frames, sources):
        np.testing.assert_array_equal(f.image, src)
    layers = 5  # whisper-tiny's hidden states: embeddings + 4 blocks
    steps = [np.abs(p.prompt.reshape(10, layers, -1)).sum(axis=(1, 2)) > 0 for p in result.outputs["prompts"]]
    assert steps[0].tolist() == [False] * 4 + [True] * 6
    assert steps[9].tolist() == [True] * 6 + [False] * 4
    assert all(s.all() for s in steps[2:8])


def test_missing_model_files_are_one_clear_exit_2_error(media_dir, speech, tiny_models, cache_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    (models / "musetalkV15" / "unet.pth").unlink()
    (models / "whisper" / "config.json").unlink()
    # Found by validation, before any node opens (issue 14): one issue for the five nodes using it.
    with pytest.raises(avflow.GraphValidationError) as err:
        run(GRAPH, {"video": media_dir / "yongen.jpeg", "audio": speech(1.2), "models": models},
            tmp_path / "out", cache_dir)
    assert err.value.exit_code == 2 and len(err.value.issues) == 1
    msg = str(err.value)
    assert "2 file(s) missing" in msg
    assert "musetalkV15/unet.pth: MuseTalk v1.5 UNet weights" in msg
    assert "whisper/config.json: Whisper-tiny config" in msg
    assert not (tmp_path / "out" / "lipsync.mp4").exists()


def test_wrong_shaped_weights_are_a_clear_exit_2_error(media_dir, speech, tiny_models, cache_dir, tmp_path):
    import torch

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    path = models / "sd-vae" / "diffusion_pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    state["decoder.conv_in.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(NodeError) as err:
        run(GRAPH, {"video": media_dir / "yongen.jpeg", "audio": speech(1.2), "models": models},
            tmp_path / "out", cache_dir)
    assert err.value.exit_code == 2 and isinstance(err.value.cause, ModelError)
    msg = str(err.value)
    assert str(path) in msg and "'decoder.conv_in.weight'" in msg
    assert "(16, 3, 3, 3)" in msg and "(16, 4, 3, 3)" in msg
