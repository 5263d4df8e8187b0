"""Each node on its own (NodeRunner): face region + cache, crop, Whisper, VAE, UNet, blend."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avflow import AudioChunk, InputError, VideoFrame
from avflow.testing import NodeRunner, synth_audio
from avflow_musetalk import Blend, Crop, FaceRegion, UNetGenerator, VaeDecode, VaeEncode, WhisperFeatures
from avflow_musetalk.payloads import GeneratedFrame, PromptFrame, advance


def read_image(path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def video_frames(images, fps: int = 25) -> list[VideoFrame]:
    return [VideoFrame(pts=i, time_base=Fraction(1, fps), image=img, index=i, duration=Fraction(1, fps))
            for i, img in enumerate(images)]


def chunks(samples: np.ndarray, rate: int, size: int = 1600) -> list[AudioChunk]:
    return [AudioChunk(pts=s, time_base=Fraction(1, rate), samples=samples[:, s:s + size], sample_rate=rate)
            for s in range(0, samples.shape[1], size)]


@pytest.fixture(scope="module")
def portrait(media_dir):
    import cv2

    img = read_image(media_dir / "yongen.jpeg")
    scale = 480 / max(img.shape[:2])  # keep detection quick
    return cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def test_face_region_finds_the_face_and_caches_it(portrait, tmp_path):
    blank = np.full_like(portrait, 90)
    frames = video_frames([portrait, blank, portrait])
    runner = NodeRunner(FaceRegion, output_dir=tmp_path)
    out = runner.run({"frames": frames})["frames"]
    h, w = portrait.shape[:2]
    face, none, again = out
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert (x2 - x1) > 0.15 * w and face.landmarks.shape == (68, 2)
    assert face.box == again.box  # the same picture gives the same region
    assert none.box is None and none.landmarks is None and none.image is blank  # passed through
    assert [f.index for f in out] == [0, 1, 2] and [f.pts for f in out] == [0, 1, 2]
    cached = list((tmp_path / ".cache" / "musetalk" / "faces").glob("*.npz"))
    assert len(cached) == 1

    # A second run on the same video: every frame from the cache, MediaPipe never started;
    # bbox_shift is applied after the cache.
    second = NodeRunner(FaceRegion, output_dir=tmp_path, bbox_shift=6)
    out2 = second.run({"frames": frames})["frames"]
    assert second.node._cache.hits == 3 and second.node._mesher is None
    assert out2[0].box[1] == face.box[1] + 12 and out2[0].box[3] == face.box[3]

    # A different video starting with the same frame reuses only the frames that match.
    third = NodeRunner(FaceRegion, output_dir=tmp_path)
    third.run({"frames": video_frames([portrait, portrait])})
    assert third.node._cache.hits == 1


def test_face_region_version_margin(portrait, tmp_path):
    frames = video_frames([portrait])
    v15 = NodeRunner(FaceRegion, output_dir=tmp_path).run({"frames": frames})["frames"][0]
    v1 = NodeRunner(FaceRegion, output_dir=tmp_path, version="v1").run({"frames": frames})["frames"][0]
    assert v15.box[3] - v1.box[3] == min(10, portrait.shape[0] - v1.box[3])
    assert v15.box[:3] == v1.box[:3]


def test_frames_after_the_audio_skip_detection(portrait, tmp_path):
    from avflow import MediaInfo

    info = MediaInfo(pts=0, time_base=Fraction(1, 1000), path="a.wav", duration=0.02)
    runner = NodeRunner(FaceRegion, output_dir=tmp_path, cache=False)
    runner.feed("audio_info", info)
    out = runner.run({"frames": video_frames([portrait] * 3, fps=1)})["frames"]
    assert out[0].box is not None and out[1].box is None and out[2].box is None  # shown after 0.02 s + margin


def test_crop(portrait):
    from avflow_musetalk.payloads import FaceFrame

    items = [FaceFrame(pts=0, time_base=Fraction(1, 25), image=portrait, box=(10, 20, 110, 160)),
             FaceFrame(pts=1, time_base=Fraction(1, 25), image=portrait, box=None)]
    out = NodeRunner(Crop).run({"frames": items})["frames"]
    assert out[0].crop.shape == (256, 256, 3) and out[0].crop.any()
    assert out[1].crop.shape == (256, 256, 3) and not out[1].crop.any()


def test_whisper_features_shape_and_segments(tiny_models):
    audio = synth_audio(31.0, 16000)
    runner = NodeRunner(WhisperFeatures, models=tiny_models)
    out = runner.run({"audio": chunks(audio, 16000, 16000)})["features"]
    assert [t.pts for t in out] == [0, 1500]  # one Tensor per 30 s Whisper window
    assert out[0].data.shape == (1500, 5, 16) and out[1].data.shape == (50, 5, 16)
    assert out[0].time_base == Fraction(1, 50)
    assert [t.meta["n_samples"] for t in out] == [480000, 496000]
    assert np.isfinite(out[1].data).all()


def test_whisper_features_drop_a_partial_last_frame(tiny_models):
    """32100 samples: 100 whole feature frames, as MuseTalk keeps floor(n x 50 / 16000)."""
    audio = synth_audio(2.00625, 16000)
    assert audio.shape[1] == 32100
    out = NodeRunner(WhisperFeatures, models=tiny_models).run({"audio": chunks(audio, 16000)})["features"]
    assert len(out) == 1 and out[0].data.shape[0] == 100 and out[0].meta["n_samples"] == 32100


def test_whisper_features_resample_mix_and_fill_gaps(tiny_models):
    stereo = synth_audio(1.0, 8000, channels=2)
    parts = chunks(stereo, 8000, 800)
    del parts[3]  # a 0.1 s hole: filled with silence, later audio keeps its time
    out = NodeRunner(WhisperFeatures, models=tiny_models).run({"audio": parts})["features"]
    assert len(out) == 1 and out[0].data.shape[0] == 50 and out[0].meta["n_samples"] == 16000


def test_whisper_features_need_audio(tiny_models):
    with pytest.raises(InputError, match="no samples"):
        NodeRunner(WhisperFeatures, models=tiny_models).run({"audio": []})


def test_vae_unet_chain_and_blend(tiny_models, portrait):
    """crop -> encode -> (prompt) -> unet -> decode -> blend, with a frame without face."""
    from avflow_musetalk.payloads import CropFrame

    import cv2

    img = portrait
    box = (40, 60, 200, 240)
    crop = cv2.resize(img[60:240, 40:200], (256, 256))
    items = [CropFrame(pts=i, time_base=Fraction(1, 25), image=img, index=i, box=box if i != 1 else None,
                       crop=crop if i != 1 else np.zeros_like(crop)) for i in range(3)]
    enc = NodeRunner(VaeEncode, models=tiny_models, batch_size=2)
    encoded = enc.run({"frames": items})["frames"]
    assert enc.batch_sizes == [2, 1]
    assert encoded[0].latents.shape == (8, 32, 32) and encoded[0].crop is None
    assert not encoded[1].latents.any()
    # masked half differs from the reference half; the reference is the whole crop
    assert not np.allclose(encoded[0].latents[:4], encoded[0].latents[4:])
    np.testing.assert_allclose(encoded[0].latents, encoded[2].latents, atol=1e-5)

    prompted = [advance(e, PromptFrame, out_index=e.index, prompt=np.random.default_rng(e.index)
                        .standard_normal((50, 16)).astype(np.float32)) for e in encoded]
    unet = NodeRunner(UNetGenerator, models=tiny_models, batch_size=3)
    pred = unet.run({"frames": prompted})["frames"]
    assert pred[0].pred.shape == (4, 32, 32) and np.isfinite(pred[0].pred).all()
    assert not np.allclose(pred[0].pred, pred[2].pred)  # different audio, different mouth
    assert not pred[1].pred.any() and pred[0].latents is None

    faces = NodeRunner(VaeDecode, models=tiny_models, batch_size=4).run({"frames": pred})["frames"]
    assert faces[0].face.shape == (256, 256, 3) and faces[0].face.dtype == np.uint8
    assert faces[1].face is None

    blended = NodeRunner(Blend).run({"frames": faces})["frames"]
    assert [b.index for b in blended] == [0, 1, 2]
    assert blended[1].image is img  # no face: the very same pixels
    x1, y1, x2, y2 = box
    outside = np.ones(img.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    np.testing.assert_array_equal(blended[0].image[outside], img[outside])
    assert (blended[0].image[y1:y2, x1:x2] != img[y1:y2, x1:x2]).any()


def test_vae_encode_equals_musetalks_contiguous_nchw_input(tiny_models, portrait):
    """MuseTalk feeds the VAE a contiguous NCHW tensor; a channels-last view of the NHWC crops
    runs other kernels (1.3e-4 relative on these latents), so the node makes it contiguous."""
    import cv2
    import torch

    from avflow_musetalk.loading import load_vae
    from avflow_musetalk.payloads import CropFrame

    crop = cv2.resize(portrait[60:240, 40:200], (256, 256), interpolation=cv2.INTER_LANCZOS4)
    item = CropFrame(pts=0, time_base=Fraction(1, 25), image=portrait, box=(40, 60, 200, 240), crop=crop)
    got = NodeRunner(VaeEncode, models=tiny_models).run({"frames": [item]})["frames"][0].latents
    vae = load_vae(tiny_models, "cpu", torch.float32)
    with torch.inference_mode():
        x = torch.from_numpy(crop.transpose(2, 0, 1).copy())[None].float() / 127.5 - 1.0
        masked = x.clone()
        masked[:, :, 128:] = -1.0
        z = vae.encode(torch.cat([masked, x])).latent_dist.mode() * vae.config.scaling_factor
    want = torch.cat(z.chunk(2), dim=1)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_blend_without_landmarks_uses_the_box():
    img = np.full((100, 120, 3), 50, np.uint8)
    item = GeneratedFrame(pts=0, time_base=Fraction(1, 25), image=img, box=(10, 10, 90, 90),
                          face=np.full((256, 256, 3), 200, np.uint8))
    out = NodeRunner(Blend).run({"frames": [item]})["frames"][0].image
    assert out[70, 50, 0] > 150 and out[20, 50, 0] == 50 and out[95, 50, 0] == 50


def test_unet_refuses_a_prompt_of_the_wrong_width(tiny_models, encoded_frames):
    from avflow import ModelError

    frames = [advance(e, PromptFrame, latents=np.zeros((8, 32, 32), np.float32),
                      prompt=np.zeros((50, 384), np.float32)) for e in encoded_frames(1)]
    with pytest.raises(ModelError, match="cross_attention_dim"):
        NodeRunner(UNetGenerator, models=tiny_models).run({"frames": frames})


def test_blend_counts_the_frames_it_finishes_for_the_progress_bar():
    """The run's bar follows the last stage (issue 14: prompts ran ahead and the bar sat at 100 %)."""
    frames = [GeneratedFrame(pts=i, time_base=Fraction(1, 25), image=np.zeros((8, 8, 3), np.uint8), out_index=i,
                             n_out=None if i == 0 else 3) for i in range(3)]
    runner = NodeRunner(Blend, mode="landmarks")
    runner.run({"frames": frames})
    assert runner.progress_events[-1] == (3, 3)
    assert any(total == 3 for _, total in runner.progress_events)
