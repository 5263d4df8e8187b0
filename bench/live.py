"""Live diarization over loopback TCP: decision delay, CPU use and RSS over time (issue 12).

Composes the 720p benchmark input (three talking faces and a still portrait, random 2-4 s turns;
``avflow.testing.compose.compose_benchmark``), streams it as MPEG-TS at real-time pace from a
sender process (``avflow.testing.live``; ``--loops N`` sends it N times as one stream, for long
runs), runs ``avflow run graphs/diarize_live.yaml`` on it as a subprocess and measures, by this
script's own clock:

- the delay of every decision: the time its line appears in live.jsonl, less the time the
  sender sent that moment (median, p95, max; and p95 over the first and the last minute: a
  growing backlog shows as a rising delay);
- the CPU time of the graph's process (all threads; in cores) and its RSS, sampled every second;
- frame accuracy on the first loop against the input's exact ground truth, and the offline
  graph's (``graphs/diarize.yaml``) on the same input, run after the live one (``--no-offline``
  skips it).

``--suite tune|test`` runs instead a live set (``LIVE_SETS``): four 45 s fixtures (two talkers,
three, one beside an off-screen voice, one whose audio is 0.3-0.35 s late; pairings, portraits,
sizes, frame rates and seeds of their own), each live and offline, and prints the gap per
fixture and over all their frames. ``tune`` has been used for a choice; ``test`` only reported.

    python bench/live.py [--seconds 120] [--loops 1] [--latency 2] [--work DIR] [--suite tune|test]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: the live sets (``--suite tune|test``): compose_speakers arguments, 45 s each. ``tune`` was
#: composed for this comparison and then used to choose sync.live_assign's ``search_after``;
#: ``test`` was fixed after that choice and is only ever reported.
LIVE_SETS = {
    "tune": {
        "two": {"sources": ["talking3.mp4", "talking2.mp4", "sit.jpeg"], "pitch": [0.0, 2.0, 0.0],
                "size": (800, 450), "fps": 30.0, "speakers": [0, 1], "seed": 900},
        "three": {"sources": ["talking1.mp4", "talking2.mp4", "talking3.mp4", "yongen.jpeg"],
                  "size": (1280, 720), "fps": 25.0, "speakers": [0, 1, 2], "seed": 901},
        "offscreen": {"sources": ["talking2.mp4", "sun.wav", "musk.png"], "size": (640, 360), "fps": 25.0,
                      "speakers": [0, 1], "seed": 902},
        "late": {"sources": ["talking1.mp4", "talking3.mp4", "video1.png"], "audio_delay": [0.3, 0.0, 0.0],
                 "size": (960, 540), "fps": 30.0, "speakers": [0, 1], "seed": 903},
    },
    "test": {
        "two": {"sources": ["talking1.mp4", "talking3.mp4", "monalisa.png"], "pitch": [0.0, -2.0, 0.0],
                "size": (960, 540), "fps": 25.0, "speakers": [0, 1], "seed": 910},
        "three": {"sources": ["talking3.mp4", "talking1.mp4", "talking2.mp4", "sit.jpeg"], "pitch": [0.0, 0.0, 3.0, 0.0],
                  "size": (800, 450), "fps": 30.0, "speakers": [0, 1, 2], "seed": 911},
        "offscreen": {"sources": ["talking3.mp4", "yongen.wav", "video1.png"], "size": (1280, 720), "fps": 25.0,
                      "speakers": [0, 1], "seed": 912},
        "late": {"sources": ["talking2.mp4", "talking1.mp4", "yongen.jpeg"], "audio_delay": [0.0, 0.35, 0.0],
                 "size": (640, 360), "fps": 25.0, "speakers": [0, 1], "seed": 913},
    },
}


def _proc_sample(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / tick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="length of the composed input")
    ap.add_argument("--loops", type=int, default=1, help="send the input this many times as one stream")
    ap.add_argument("--latency", type=float, default=2.0)
    ap.add_argument("--work", default=None, help="folder for the composed input (kept between runs)")
    ap.add_argument("--no-offline", action="store_true", help="skip the offline graph's run on the same input "
                                                               "(the accuracy baseline)")
    ap.add_argument("--suite", choices=["tune", "test"], default=None,
                    help="a live set of 45 s fixtures instead (test: never used for a choice)")
    args = ap.parse_args()
    from avflow.testing.compose import ComposedVideo, compose_benchmark

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="avflow-bench-live-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.suite:
        return run_suite(args.suite, work, args.latency)
    path, truth_path = work / f"bench_{int(args.seconds)}.mp4", work / f"bench_{int(args.seconds)}.truth.json"
    if not (path.exists() and truth_path.exists()):
        compose_benchmark(MEDIA, duration=args.seconds, out=path).save(truth_path)
    truth = ComposedVideo.load(truth_path)
    result = run_live(path, truth, work, args.latency, args.loops, not args.no_offline)
    result["input"] = (f"{truth.width}x{truth.height} {truth.fps:g} fps, {args.seconds:g} s x {args.loops}, "
                       f"3 talking faces + 1 still portrait")
    (work / "bench_live.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def run_suite(which: str, work: Path, latency: float) -> None:
    """Every fixture of ``LIVE_SETS[which]`` live and offline; the gap per fixture and over all frames."""
    from avflow.testing.compose import ComposedVideo, compose_speakers, random_turns

    rows, hits = {}, {"live": 0.0, "offline": 0.0, "frames": 0}
    for name, spec in LIVE_SETS[which].items():
        path, truth_path = work / f"live_{which}_{name}.mp4", work / f"live_{which}_{name}.truth.json"
        if not (path.exists() and truth_path.exists()):
            kw = {k: v for k, v in spec.items() if k not in ("sources", "speakers", "seed")}
            turns = random_turns(spec["speakers"], 45.0, gap_prob=0.2, seed=spec["seed"])
            compose_speakers([MEDIA / src for src in spec["sources"]], turns, duration=45.0, out=path,
                             keyint=25, seed=spec["seed"], **kw).save(truth_path)
        truth = ComposedVideo.load(truth_path)
        r = run_live(path, truth, work / f"{which}_{name}", latency, 1, True)
        rows[name] = {k: r[k] for k in ("frame_accuracy_first_loop", "offline_frame_accuracy", "accuracy_gap_points",
                                        "delay_s", "voices")}
        n = len(truth.active)
        hits["live"] += r["frame_accuracy_first_loop"] * n
        hits["offline"] += r["offline_frame_accuracy"] * n
        hits["frames"] += n
        print(json.dumps({name: rows[name]}), flush=True)
    live, offline = hits["live"] / hits["frames"], hits["offline"] / hits["frames"]
    result = {"machine": machine(), "set": which, "latency": latency, "fixtures": rows, "all_frames": {
        "live": round(live, 4), "offline": round(offline, 4), "gap_points": round(100 * (offline - live), 1)}}
    (work / f"bench_live_{which}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["all_frames"]))


def run_live(path: Path, truth, work: Path, latency: float, loops: int, offline_too: bool) -> dict:
    """Stream ``path`` at real-time pace into the live graph; delays, CPU, RSS and frame accuracy
    (and the offline graph's on the same input, ``offline_too``)."""
    from avflow.testing.live import JsonlFollower, StreamSender, free_port
    from avflow_sync.scoring import frame_accuracy

    work.mkdir(parents=True, exist_ok=True)
    out = work / "out_live"
    shutil.rmtree(out, ignore_errors=True)

    port = free_port()
    sender = StreamSender(path, f"tcp://127.0.0.1:{port}?listen=1", loops=loops)
    cmd = [sys.executable, "-m", "avflow", "run", str(REPO / "graphs" / "diarize_live.yaml"), "--set",
           f"source=tcp://127.0.0.1:{port}", "--set", f"latency={latency}", "--set", "stall_timeout=3",
           "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, float]] = []  # (time since the stream started, RSS MB, CPU s)
    follower = JsonlFollower(out / "live.jsonl", proc)
    lines = follower.lines  # (time.time() when the line was seen, the decision)
    started = sender.wait_started(120)
    while proc.poll() is None:
        try:
            rss, cpu = _proc_sample(proc.pid)
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            break
        samples.append((time.time() - started, rss, cpu))
        time.sleep(1.0)
    _, err = proc.communicate()
    follower.join(5)
    sender.stop()
    if proc.returncode != 0:
        raise SystemExit(f"the live graph failed ({proc.returncode}): {err[-3000:]}")

    t = np.array([d["t"] for _, d in lines])
    delay = np.array([seen - (started + d["t"]) for seen, d in lines])
    reported = np.array([d["delay"] for _, d in lines if d.get("delay") is not None])
    first, last = delay[t < 60], delay[t >= t.max() - 60]
    doc = json.loads((out / "diarization.json").read_text())
    n = len(truth.active)
    first_loop = {**doc, "active": doc["active"][:n]}
    acc = frame_accuracy(truth, first_loop)
    offline = None
    if offline_too:  # the baseline: graphs/diarize.yaml on the same input, after the live run
        import avflow

        r = avflow.run(REPO / "graphs" / "diarize.yaml", {"video": str(path), "outputs": ["json"]},
                       output_dir=work / "out_offline", device="cpu")
        offline = frame_accuracy(truth, r.outputs["diarization"].data)
    s = np.array(samples)
    busy = s[:, 0] > 5  # past the start-up
    cores = (s[busy, 2][-1] - s[busy, 2][0]) / max(s[busy, 0][-1] - s[busy, 0][0], 1e-9)
    rss_at = {f"{m} min": round(float(s[np.argmin(np.abs(s[:, 0] - 60 * m)), 1]), 1)
              for m in (1, 2, 5, 10) if s[-1, 0] >= 60 * m - 1}
    return {
        "machine": machine(), "latency": latency, "decisions": len(lines), "frames": len(doc["active"]),
        "delay_s": {"median": round(float(np.median(delay)), 3), "p95": round(float(np.percentile(delay, 95)), 3),
                    "max": round(float(delay.max()), 3),
                    "p95_first_minute": round(float(np.percentile(first, 95)), 3),
                    "p95_last_minute": round(float(np.percentile(last, 95)), 3)},
        "reported_delay_median_s": round(float(np.median(reported)), 3) if reported.size else None,
        "cpu_cores": round(float(cores), 2), "rss_mb": {"peak": round(float(s[:, 1].max()), 1), **rss_at},
        "frame_accuracy_first_loop": round(acc, 4),
        "offline_frame_accuracy": round(offline, 4) if offline is not None else None,
        "accuracy_gap_points": round(100 * (offline - acc), 1) if offline is not None else None,
        "voices": [(v["id"], v["speaker"], v["speech"]) for v in doc["voices"]],
    }


if __name__ == "__main__":
    main()
