"""Benchmark: lip-sync generation speed, avflow's graph vs MuseTalk's own inference loop.

Both run in one process on the same input (the first ``--frames`` frames of a video, the driving
audio cut to the same length), the same model folder (full-size random weights by default,
written by the scaffold) and the same device and precision:

- **avflow**: ``graphs/lipsync.yaml`` through ``avflow.run``: streaming nodes in threads, batched
  VAE/UNet, blending and encoding overlapped with generation.
- **baseline**: MuseTalk's ``scripts/inference.py`` loop, step by step: Whisper features and all
  audio prompts; the frames read into a list; per-frame VAE latents; then per batch: positional
  encoding, UNet, VAE decode, copy to the CPU; then per frame: resize, blend, write a PNG; then
  the PNGs encoded into an mp4 with the audio. Both blend through the landmark mask (the graph
  with ``blend: landmarks``): MuseTalk's own face-parsing mask (``blend: parsing``) would add
  one BiSeNet pass per frame to both, and these figures predate it.

Face detection is outside both timings: its results are cached first (MuseTalk's
``--use_saved_coord``; avflow's content-hash cache). Model loading is timed separately;
"generation fps" excludes it, "end-to-end fps" includes it. Each pipeline runs in a fresh
process (libraries imported before timing), so neither inherits the other's threads or caches.

    python bench/lipsync.py --device cpu --frames 8            # full-size weights, CPU
    python bench/lipsync.py --device cuda --frames 250          # the figures in bench/README.md
    python bench/lipsync.py --tiny --frames 50 --json out.json  # tiny weights: pipeline overheads
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEDIA = (REPO / ".." / "shared" / "media").resolve()


def warm_imports() -> None:
    """Import the heavy libraries once, so neither timing pays for a first import."""
    import av  # noqa: F401
    import cv2  # noqa: F401
    import mediapipe  # noqa: F401
    import torch  # noqa: F401
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL  # noqa: F401
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel  # noqa: F401
    from transformers.models.whisper.feature_extraction_whisper import WhisperFeatureExtractor  # noqa: F401
    from transformers.models.whisper.modeling_whisper import WhisperEncoder  # noqa: F401


def prepare_models(models: Path | None, tiny: bool, work: Path) -> Path:
    from avflow import ModelError
    from avflow_musetalk.layout import check_model_dir
    from avflow_musetalk.scaffold import write_scaffold

    folder = models or work / ("models-tiny" if tiny else "models-full")
    try:
        check_model_dir(folder, "v15")
    except ModelError:
        write_scaffold(folder, tiny=tiny, seed=0)
    return folder


def prepare_audio(audio: Path, seconds: float, work: Path) -> Path:
    import soundfile as sf

    data, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    n = int(round(seconds * rate))
    if len(data) < n:  # loop a short speech file to the length asked for
        data = np.concatenate([data] * (n // len(data) + 1))
    path = work / "speech.wav"
    sf.write(str(path), data[:n], rate)
    return path


def read_frames(video: Path, n: int) -> tuple[list, Fraction]:
    import av

    from avflow import VideoFrame

    out = []
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        fps = Fraction(stream.average_rate)
        for f in c.decode(stream):
            out.append(VideoFrame(pts=f.pts, time_base=Fraction(f.time_base), image=f.to_ndarray(format="rgb24"),
                                  index=len(out)))
            if len(out) == n:
                break
    return out, fps


def detect_faces(frames: list, work: Path) -> list:
    """Face regions of the frames, cached under work/.cache as the graph will find them."""
    from avflow.testing import NodeRunner
    from avflow_musetalk import FaceRegion

    return NodeRunner(FaceRegion, output_dir=work).run({"frames": frames})["frames"]


# -- avflow ----------------------------------------------------------------------------------
def run_avflow(video: Path, audio: Path, models: Path, n: int, fps: Fraction, args, work: Path) -> dict:
    import avflow

    out = work / "avflow"
    t0 = time.perf_counter()
    result = avflow.run(REPO / "graphs" / "lipsync.yaml",
                        {"video": video, "audio": audio, "models": models, "batch_size": args.batch_size,
                         "blend": "landmarks",  # the baseline's mask
                         "video.max_duration": float((n - 0.5) / fps)},  # the same n frames
                        output_dir=out, device=args.device, cache_dir=work / ".cache")
    wall = time.perf_counter() - t0
    load = max(s.open_s for s in result.stats)  # nodes open (load models) in parallel, first
    frames = next(s.items_out for s in result.stats if s.node == "blend")
    return {"frames": frames, "wall_s": wall, "load_s": load, "gen_s": wall - load,
            "nodes": {s.node: round(s.busy_s, 3) for s in result.stats}, "file": str(result.outputs["video"].path)}


# -- baseline: MuseTalk's inference loop -------------------------------------------------------
def run_baseline(video: Path, audio: Path, models: Path, n: int, faces: list | None, args, work: Path) -> dict:
    import cv2
    import soundfile as sf
    import torch

    from avflow import resolve_device
    from avflow_media.writer import MediaWriter
    from avflow_musetalk.geometry import blend_mask, crop_face, paste_face
    from avflow_musetalk.loading import load_unet, load_vae, load_whisper, resolve_dtype
    from avflow_musetalk.positional import add_positional_encoding
    from avflow_musetalk.slicer import audio_prompt
    from avflow_musetalk.nodes.whisper import SEGMENT_S, encode_segment, resample

    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    if faces is None:  # MuseTalk's saved coordinates: from the cache, before timing
        faces = detect_faces(read_frames(video, n)[0], work)
    t0 = time.perf_counter()
    unet, _ = load_unet(models, "v15", device, dtype)
    vae = load_vae(models, device, dtype)
    encoder, extractor, _ = load_whisper(models, device, dtype)
    scale = vae.config.scaling_factor
    load = time.perf_counter() - t0

    t1 = time.perf_counter()
    with torch.inference_mode():
        # audio: Whisper features of every 30 s segment, then one prompt per output frame
        samples, rate = sf.read(str(audio), dtype="float32", always_2d=True)
        samples = resample(samples.mean(axis=1), rate)
        seg = SEGMENT_S * 16000
        feats = np.concatenate([encode_segment(encoder, extractor, samples[i:i + seg], device, dtype)
                                for i in range(0, len(samples), seg)])
        fps = Fraction(1) / (faces[1].pts * faces[1].time_base - faces[0].pts * faces[0].time_base)
        n_out = int(np.ceil(len(samples) / 16000 * fps - 1e-9))
        prompts = [audio_prompt(feats, Fraction(i) / fps) for i in range(n_out)]
        # frames read into a list, and the latents of each, one frame at a time
        frames, _ = read_frames(video, n)
        latents = []
        for face, frame in zip(faces, frames):
            crop = crop_face(frame.image, face.box)
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].to(device, dtype) / 127.5 - 1
            masked = x.clone()
            masked[:, :, 128:] = -1
            z_masked = vae.encode(masked).latent_dist.mode() * scale
            z_ref = vae.encode(x).latent_dist.mode() * scale
            latents.append(torch.cat([z_masked, z_ref], 1))
        cycle = list(range(len(frames))) + list(range(len(frames)))[::-1]
        timestep = torch.tensor([0], device=device)
        results = []
        for b in range(0, n_out, args.batch_size):
            idx = range(b, min(b + args.batch_size, n_out))
            audio_batch = torch.from_numpy(np.stack([prompts[i] for i in idx])).to(device, dtype)
            audio_batch = add_positional_encoding(audio_batch)
            latent_batch = torch.cat([latents[cycle[i % len(cycle)]] for i in idx])
            pred = unet(latent_batch, timestep, encoder_hidden_states=audio_batch).sample
            img = vae.decode(pred / scale).sample
            img = ((img.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
            results.extend(img.permute(0, 2, 3, 1).cpu().numpy())
    # paste back frame by frame, one PNG each
    png_dir = work / "baseline-png"
    png_dir.mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(results):
        src = cycle[i % len(cycle)]
        box, lm = faces[src].box, faces[src].landmarks
        out = paste_face(frames[src].image, face, box, blend_mask(box, lm))
        cv2.imwrite(str(png_dir / f"{i:08d}.png"), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    # then the PNGs into an mp4 with the audio
    mp4 = work / "baseline.mp4"
    with MediaWriter(mp4, fps=float(fps), audio_rate=16000, audio_channels=1, origin=0.0) as writer:
        for i in range(len(results)):
            writer.add_video(cv2.cvtColor(cv2.imread(str(png_dir / f"{i:08d}.png")), cv2.COLOR_BGR2RGB), i / fps)
        writer.add_audio(samples[None, :], 0.0)
    gen = time.perf_counter() - t1
    shutil.rmtree(png_dir)
    return {"frames": len(results), "wall_s": load + gen, "load_s": load, "gen_s": gen, "file": str(mp4)}


def _worker(name: str, video: Path, audio: Path, models: Path, n: int, fps: Fraction, args, work: Path) -> dict:
    warm_imports()
    if name == "avflow":
        return run_avflow(video, audio, models, n, fps, args, work)
    return run_baseline(video, audio, models, n, None, args, work)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--frames", type=int, default=None, help="generated frames (default: 250 on CUDA, 8 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="frames per VAE/UNet call (default: 16 CUDA, 4 CPU)")
    p.add_argument("--models", type=Path, default=None, help="model folder (default: a full-size scaffold)")
    p.add_argument("--tiny", action="store_true", help="scaffold tiny models instead of full-size ones")
    p.add_argument("--video", type=Path, default=MEDIA / "yongen.mp4")
    p.add_argument("--audio", type=Path, default=MEDIA / "yongen.wav")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args(argv)

    from avflow import resolve_device

    device = resolve_device(args.device)
    args.device = device
    cuda = device.startswith("cuda")
    n = args.frames or (250 if cuda else 8)
    args.batch_size = args.batch_size or (16 if cuda else 4)
    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="avflow-bench-lipsync-")
        work = Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        warm_imports()
        models = prepare_models(args.models, args.tiny, work)
        frames, fps = read_frames(args.video, n)
        if len(frames) < 2:
            raise SystemExit(f"{args.video}: need at least 2 frames")
        audio = prepare_audio(args.audio, n / float(fps), work)
        detect_faces(frames, work)  # fills the face cache both pipelines read
        del frames
        figures = {"device": device, "frames": n, "batch_size": args.batch_size, "models": str(models),
                   "tiny": args.tiny, "video": str(args.video)}
        if cuda:
            import torch

            figures["gpu"] = torch.cuda.get_device_name()
        spawn = multiprocessing.get_context("spawn")
        for name in ("avflow", "baseline"):
            if name == "baseline" and args.skip_baseline:
                continue
            with spawn.Pool(1) as pool:
                figures[name] = pool.apply(_worker, (name, args.video, audio, models, n, fps, args, work))
        rows = []
        for name in ("avflow", "baseline"):
            r = figures.get(name)
            if r is None:
                continue
            r["gen_fps"] = round(r["frames"] / r["gen_s"], 3)
            r["e2e_fps"] = round(r["frames"] / r["wall_s"], 3)
            rows.append(f"{name:9s} {r['frames']:6d} frames  generation {r['gen_fps']:8.3f} fps  "
                        f"end-to-end {r['e2e_fps']:8.3f} fps  (load {r['load_s']:.1f} s, total {r['wall_s']:.1f} s)")
        if "baseline" in figures:
            figures["speedup"] = round(figures["avflow"]["gen_fps"] / figures["baseline"]["gen_fps"], 3)
            rows.append(f"speed-up (generation): {figures['speedup']:.2f}x")
        sys.stdout.write(f"lipsync bench on {device} ({figures.get('gpu', 'CPU')}), "
                         f"{'tiny' if args.tiny else 'full-size'} random weights, batch {args.batch_size}\n")
        sys.stdout.write("\n".join(rows) + "\n")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
