"""Diarization speed and memory: the whole ``avflow run graphs/diarize.yaml`` against the original
scripts' way, same input.

Inputs are composed from ../shared/media (three talking tiles and a still portrait, 720p,
one audible at a time): a short one and a long one. Each graph run is a fresh ``avflow run``
process, timed from its start to its exit (wall clock of the whole command: imports, model
opens, the graph, writing the outputs), with its peak RSS, its CPU per node (every OS thread's
CPU grouped by the node whose name it carries: ``bench/proc_cpu.py``), and the time from the
process's start to the first decoded video frame (``--profile``'s first output of ``decode``
after its ``info``). The baseline (bench/diarize_baseline.py: every frame in memory, SyncNet at
batch size 1 per window) runs on the short input with the same SyncNet weights (random, in the
real checkpoint format: speed does not depend on the values). ``--repeat N`` runs every row N
times, interleaved, and keeps each one's fastest (the machine is shared; all runs are in the JSON).
``--fixtures test`` (or ``tune``) then runs every diarization fixture type of
``bench/diarize_accuracy.py`` with both decisions: frame accuracy and DER per type, and the voice
side's CPU seconds per minute of audio.

    python bench/diarize.py [--short 10] [--long 120] [--scorers motion,syncnet] [--no-baseline]
                            [--repeat 1] [--set KEY=VALUE]... [--work DIR] [--fixtures test]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, PEAK_RSS_SNIPPET, machine, run_child  # noqa: E402
from proc_cpu import run_sampled  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"motion_realtime_x": 4.0, "syncnet_vs_baseline_x": 3.0, "rss_long_over_short": 1.15,
           "rss_long_mb": 1500.0, "first_frame_s": 1.0}


def run_graph(video: Path, out: Path, scorer: str, weights: Path | None, truth: Path | None,
              sets: list[str]) -> dict:
    exe = Path(sys.executable).with_name("avflow")
    cmd = [str(exe), "run", str(REPO / "graphs" / "diarize.yaml"), "--set", f"video={video}", "--set",
           f"scorer={scorer}", "-o", str(out), "--quiet", "--profile"]
    if weights is not None:
        cmd += ["--set", f"syncnet_weights={weights}"]
    for s in sets:
        cmd += ["--set", s]
    r = run_sampled(cmd, cwd=str(REPO))
    if r["rc"] != 0:
        raise RuntimeError(r["stderr"][-3000:])
    profile = json.loads((out / "profile.json").read_text())
    nodes = {n["node"]: n for n in profile["nodes"]}
    doc = json.loads((out / "diarization.json").read_text())
    acc = None
    if truth:
        from avflow.testing.compose import ComposedVideo
        from avflow_sync.scoring import frame_accuracy

        acc = frame_accuracy(ComposedVideo.load(truth), doc)
    first = nodes["decode"].get("first_out_by_port", {}).get("video")  # the first decoded frame
    return {"run_s": r["wall_s"], "graph_s": profile["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
            "cpu_s": r["cpu_s"], "accuracy": acc, "n_frames": doc["n_frames"], "tracks": len(doc["tracks"]),
            "first_frame_s": None if first is None else round(profile["started_at"] - r["start_time"] + first, 3),
            "threads_cpu_s": r["threads"],
            "node_cpu_s": {k: v["cpu_s"] for k, v in nodes.items()}}


def run_baseline(video: Path, weights: Path) -> dict:
    code = PEAK_RSS_SNIPPET + (
        "import time, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from diarize_baseline import run_baseline\n"
        "t = time.perf_counter()\n"
        f"info = run_baseline({str(video)!r}, {str(weights)!r})\n"
        "u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "info.update(run_s=round(time.perf_counter() - t, 2), peak_rss_mb=round(peak_mb(), 1),\n"
        "            cpu_s=round(u.ru_utime + u.ru_stime, 2))\n"
        "print(json.dumps(info))\n")
    # OpenMP threads wait passively, as in avflow's process: spinning ones make a run on a shared
    # machine 10-25x slower (measured 584 s instead of 24 s under a load of 6), which says nothing
    # about the execution model.
    r = run_child([code], env={"OMP_WAIT_POLICY": "PASSIVE"})
    r["run_s"] = r["wall_s"]  # the whole process, as for the graph
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=float, default=10.0)
    ap.add_argument("--long", type=float, default=120.0)
    ap.add_argument("--scorers", default="motion,syncnet")
    ap.add_argument("--inputs", default="short,long", help="which inputs to run the graph on")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="graph params for every graph run")
    ap.add_argument("--work", default=None, help="folder for the composed inputs (kept between runs)")
    ap.add_argument("--fixtures", default="", choices=["", "test", "tune"],
                    help="also the accuracy per fixture type, voices and frame decisions (bench/diarize_accuracy.py)")
    args = ap.parse_args()
    from avflow.testing.compose import compose_benchmark
    from avflow_sync.syncnet import save_random_syncnet

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="avflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "lipsync_expert.pth"
    if not weights.exists():
        save_random_syncnet(weights, seed=0)
    inputs = {}
    for label, seconds in (("short", args.short), ("long", args.long)):
        if label not in args.inputs.split(","):
            continue
        path = work / f"{label}.mp4"
        truth = work / f"{label}.truth.json"
        if not (path.exists() and truth.exists()):
            fx = compose_benchmark(MEDIA, duration=seconds, out=path)
            fx.save(truth)
        inputs[label] = (path, truth, seconds)

    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for scorer in args.scorers.split(","):
            for label, (path, truth, seconds) in inputs.items():
                r = run_graph(path, work / f"out_{scorer}_{label}", scorer,
                              weights if scorer == "syncnet" else None, truth if scorer == "motion" else None,
                              args.sets)
                r["realtime_x"] = round(seconds / r["run_s"], 2)
                r["cpu_per_video_s"] = round(r["cpu_s"] / seconds, 3)
                runs.setdefault(f"avflow {scorer} {label}", []).append(r)
        if not args.no_baseline and "syncnet" in args.scorers and "short" in inputs:
            path, _, seconds = inputs["short"]
            r = run_baseline(path, weights)
            r["realtime_x"] = round(seconds / r["run_s"], 2)
            runs.setdefault("baseline syncnet short", []).append(r)
    rows = {}
    for name, rs in runs.items():
        best = dict(min(rs, key=lambda r: r["run_s"]))
        best["runs_s"] = [r["run_s"] for r in rs]
        rows[name] = best

    print(f"machine: {machine()}; inputs: 1280x720 25 fps, 3 talking faces + 1 still portrait")
    print(f"{'run':28s} {'run s':>8s} {'x real time':>12s} {'CPU s':>8s} {'peak RSS MB':>12s} {'1st frame s':>12s}"
          "  accuracy")
    for name, r in rows.items():
        acc, ff = r.get("accuracy"), r.get("first_frame_s")
        print(f"{name:28s} {r['run_s']:8.2f} {r['realtime_x']:12.2f} {r.get('cpu_s', float('nan')):8.2f} "
              f"{r['peak_rss_mb']:12.1f} {'' if ff is None else f'{ff:.2f}':>12s}  "
              f"{'' if acc is None else f'{acc:.3f}'}")
    for name, r in rows.items():
        if "threads_cpu_s" in r:
            print(f"  CPU s by thread name, {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["threads_cpu_s"].items()))
    verdicts = {}
    for scorer in args.scorers.split(","):
        for label in inputs:
            verdicts[f"{scorer}_{label}_realtime_x"] = rows[f"avflow {scorer} {label}"]["realtime_x"]
        if "short" in inputs:
            verdicts[f"{scorer}_first_frame_s"] = rows[f"avflow {scorer} short"]["first_frame_s"]
        if "short" in inputs and "long" in inputs:
            s, l_ = rows[f"avflow {scorer} short"], rows[f"avflow {scorer} long"]
            verdicts[f"{scorer}_rss_long_over_short"] = round(l_["peak_rss_mb"] / s["peak_rss_mb"], 3)
            verdicts[f"{scorer}_rss_long_mb"] = l_["peak_rss_mb"]
    if "baseline syncnet short" in rows and "avflow syncnet short" in rows:
        base, ours = rows["baseline syncnet short"], rows["avflow syncnet short"]
        verdicts["syncnet_vs_baseline_x"] = round(base["run_s"] / ours["run_s"], 2)
        # on a shared machine the wall clock follows the other jobs; CPU seconds less so
        verdicts["syncnet_vs_baseline_cpu_x"] = round(base["cpu_s"] / ours["cpu_s"], 2)
    print("targets: motion on the long input >= 4x real time; syncnet >= 3x the baseline; first frame <= 1 s; "
          "long/short RSS <= 1.15; long RSS < 1500 MB")
    for k, v in verdicts.items():
        print(f"  {k}: {v}")
    print(json.dumps({"machine": machine(), "rows": rows, "verdicts": verdicts}))
    if args.fixtures:
        import diarize_accuracy

        diarize_accuracy.run(args.fixtures, [], ["voices", "frame"], str(work / "fixtures"),
                             dict(kv.split("=", 1) for kv in args.sets))


if __name__ == "__main__":
    main()
