"""GPU figures in one go (never a test): SyncNet windows/s and the diarize graph with scorer=syncnet.

SyncNet windows/s: ``sync.syncnet``'s own scoring call (:func:`avflow_sync.syncnet.sync_similarity`
on the folded network, fp16 on CUDA) on batches of random windows shaped as ``sync.windows`` cuts
them for the diarize graph (15x48x96 uint8 faces, 31 audio offsets of 80x16 mel), after a
warm-up, with the weights in the real checkpoint format (random values: speed does not depend
on them). Then ``graphs/diarize.yaml`` with ``scorer=syncnet --device cuda`` on a composed 30 s
720p input, for the whole run's real-time factor. Target (issue 11): >= 5,000 windows/s.

    python bench/gpu.py [--batch 256] [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, machine  # noqa: E402


def windows_per_s(batch: int, seconds: float, offsets: int, device: str) -> dict:
    import torch

    from avflow_sync.syncnet import build_syncnet, fold_batchnorm, random_state_dict, sync_similarity

    model = build_syncnet()
    model.load_state_dict(random_state_dict(0))
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = fold_batchnorm(model).to(device).to(dtype).eval()
    g = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (batch, 15, 48, 96), dtype=torch.uint8, generator=g).to(device)
    mel = torch.randn((batch, offsets, 80, 16), generator=g).to(device)
    for _ in range(3):  # warm-up: cuDNN picks its algorithms
        sync_similarity(model, video, mel, dtype)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sync_similarity(model, video, mel, dtype)
        n += batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"device": device, "batch": batch, "offsets": offsets, "dtype": str(dtype), "windows": n,
            "seconds": round(dt, 2), "windows_per_s": round(n / dt, 1),
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None}


def diarize_syncnet(device: str, seconds: float, work: Path) -> dict:
    from avflow.testing.compose import compose_benchmark
    from avflow_sync.syncnet import save_random_syncnet

    video = work / "gpu_in.mp4"
    if not video.exists():
        compose_benchmark(MEDIA, duration=seconds, out=video)
    weights = save_random_syncnet(work / "lipsync_expert.pth", seed=0)
    exe = Path(sys.executable).with_name("avflow")
    cmd = [str(exe), "run", str(REPO / "graphs" / "diarize.yaml"), "--set", f"video={video}", "--set",
           "scorer=syncnet", "--set", f"syncnet_weights={weights}", "--device", device, "-o",
           str(work / "out"), "--quiet", "--profile"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    prof = json.loads((work / "out" / "profile.json").read_text())
    syncnet = next(n for n in prof["nodes"] if n["node"] == "syncnet")
    return {"input_s": seconds, "run_s": round(wall, 2), "realtime_x": round(seconds / wall, 2),
            "syncnet_windows": syncnet["items_in"], "syncnet_busy_s": syncnet["busy_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--offsets", type=int, default=31, help="audio offsets per window (diarize: 2 * 15 + 1)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of timed SyncNet scoring")
    ap.add_argument("--input-seconds", type=float, default=30.0, help="length of the diarize input")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {"machine": machine()}
    for batch in sorted({64, args.batch}):
        out[f"syncnet_batch_{batch}"] = r = windows_per_s(batch, args.seconds, args.offsets, args.device)
        print(f"SyncNet, batch {batch}, {args.offsets} offsets, {r['dtype']} on {r['gpu'] or r['device']}: "
              f"{r['windows_per_s']:.0f} windows/s (target >= 5000)", flush=True)
    with tempfile.TemporaryDirectory(prefix="avflow-gpu-") as tmp:
        out["diarize_syncnet"] = r = diarize_syncnet(args.device, args.input_seconds, Path(tmp))
    print(f"diarize.yaml scorer=syncnet --device {args.device}: {r}", flush=True)
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
