"""Diarization speed and memory: avflow's graph against the original scripts' way, same input.

Inputs are composed from ../shared/media (three talking tiles and a still portrait, 720p,
one audible at a time): a short one and a long one. For each scorer the graph runs in a fresh
process (real-time factor, peak RSS); the baseline (bench/diarize_baseline.py: every frame in
memory, SyncNet at batch size 1 per window) runs on the short input with the same SyncNet
weights (random, in the real checkpoint format: speed does not depend on the values).

    python bench/diarize.py [--short 10] [--long 120] [--scorers motion,syncnet] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, PEAK_RSS_SNIPPET, machine, run_child  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"motion_realtime_x": 4.0, "syncnet_vs_baseline_x": 3.0, "rss_long_over_short": 1.15,
           "rss_long_mb": 1500.0}


def run_graph(video: Path, out: Path, scorer: str, weights: Path | None, truth: Path | None) -> dict:
    params = {"video": str(video), "scorer": scorer}
    if weights is not None:
        params["syncnet_weights"] = str(weights)
    code = PEAK_RSS_SNIPPET + (
        "import time, avflow\n"
        "t = time.perf_counter()\n"
        f"r = avflow.run({str(REPO / 'graphs' / 'diarize.yaml')!r}, {params!r}, output_dir={str(out)!r}, device='cpu')\n"
        "run_s = time.perf_counter() - t\n"
        "doc = r.outputs['diarization'].data\n"
        "acc = None\n"
        f"truth = {str(truth) if truth else None!r}\n"
        "if truth:\n"
        "    from avflow.testing.compose import ComposedVideo\n"
        "    from avflow_sync.scoring import frame_accuracy\n"
        "    acc = frame_accuracy(ComposedVideo.load(truth), doc)\n"
        "print(json.dumps({'run_s': round(run_s, 2), 'peak_rss_mb': round(peak_mb(), 1), 'accuracy': acc,\n"
        "                  'n_frames': doc['n_frames'], 'tracks': len(doc['tracks'])}))\n")
    return run_child([code])


def run_baseline(video: Path, weights: Path) -> dict:
    code = PEAK_RSS_SNIPPET + (
        "import time, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from diarize_baseline import run_baseline\n"
        "t = time.perf_counter()\n"
        f"info = run_baseline({str(video)!r}, {str(weights)!r})\n"
        "info.update(run_s=round(time.perf_counter() - t, 2), peak_rss_mb=round(peak_mb(), 1))\n"
        "print(json.dumps(info))\n")
    return run_child([code])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=float, default=10.0)
    ap.add_argument("--long", type=float, default=120.0)
    ap.add_argument("--scorers", default="motion,syncnet")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--work", default=None, help="folder for the composed inputs (kept between runs)")
    args = ap.parse_args()
    from avflow.testing.compose import compose_benchmark
    from avflow_sync.syncnet import save_random_syncnet

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="avflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    weights = save_random_syncnet(work / "lipsync_expert.pth", seed=0)
    inputs = {}
    for label, seconds in (("short", args.short), ("long", args.long)):
        path = work / f"{label}.mp4"
        truth = work / f"{label}.truth.json"
        if not (path.exists() and truth.exists()):
            fx = compose_benchmark(MEDIA, duration=seconds, out=path)
            fx.save(truth)
        inputs[label] = (path, truth, seconds)

    rows: dict[str, dict] = {}
    for scorer in args.scorers.split(","):
        for label, (path, truth, seconds) in inputs.items():
            r = run_graph(path, work / f"out_{scorer}_{label}", scorer, weights if scorer == "syncnet" else None,
                          truth if scorer == "motion" else None)
            r["realtime_x"] = round(seconds / r["run_s"], 2)
            rows[f"avflow {scorer} {label}"] = r
    if not args.no_baseline and "syncnet" in args.scorers:
        path, _, seconds = inputs["short"]
        r = run_baseline(path, weights)
        r["realtime_x"] = round(seconds / r["run_s"], 2)
        rows["baseline syncnet short"] = r

    print(f"machine: {machine()}; inputs: 1280x720 25 fps, 3 talking faces + 1 still portrait")
    print(f"{'run':28s} {'run s':>8s} {'x real time':>12s} {'peak RSS MB':>12s}  accuracy")
    for name, r in rows.items():
        acc = r.get("accuracy")
        print(f"{name:28s} {r['run_s']:8.2f} {r['realtime_x']:12.2f} {r['peak_rss_mb']:12.1f}  "
              f"{'' if acc is None else f'{acc:.3f}'}")
    verdicts = {}
    if "avflow motion short" in rows:
        verdicts["motion_realtime_x"] = min(rows[f"avflow motion {k}"]["realtime_x"] for k in ("short", "long"))
    for scorer in args.scorers.split(","):
        s, l_ = rows[f"avflow {scorer} short"], rows[f"avflow {scorer} long"]
        verdicts[f"{scorer}_rss_long_over_short"] = round(l_["peak_rss_mb"] / s["peak_rss_mb"], 3)
        verdicts[f"{scorer}_rss_long_mb"] = l_["peak_rss_mb"]
    if "baseline syncnet short" in rows:
        verdicts["syncnet_vs_baseline_x"] = round(rows["baseline syncnet short"]["run_s"]
                                                  / rows["avflow syncnet short"]["run_s"], 2)
    print("targets: motion >= 4x real time; syncnet >= 3x the baseline; long/short RSS <= 1.15; long RSS < 1500 MB")
    for k, v in verdicts.items():
        print(f"  {k}: {v}")
    print(json.dumps({"machine": machine(), "rows": rows, "verdicts": verdicts}))


if __name__ == "__main__":
    main()
