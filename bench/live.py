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

    python bench/live.py [--seconds 120] [--loops 1] [--latency 2] [--work DIR]
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
    args = ap.parse_args()
    from avflow.testing.compose import ComposedVideo, compose_benchmark
    from avflow.testing.live import JsonlFollower, StreamSender, free_port
    from avflow_sync.scoring import frame_accuracy

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="avflow-bench-live-"))
    work.mkdir(parents=True, exist_ok=True)
    path, truth_path = work / f"bench_{int(args.seconds)}.mp4", work / f"bench_{int(args.seconds)}.truth.json"
    if not (path.exists() and truth_path.exists()):
        compose_benchmark(MEDIA, duration=args.seconds, out=path).save(truth_path)
    truth = ComposedVideo.load(truth_path)
    out = work / "out_live"
    shutil.rmtree(out, ignore_errors=True)

    port = free_port()
    sender = StreamSender(path, f"tcp://127.0.0.1:{port}?listen=1", loops=args.loops)
    cmd = [sys.executable, "-m", "avflow", "run", str(REPO / "graphs" / "diarize_live.yaml"), "--set",
           f"source=tcp://127.0.0.1:{port}", "--set", f"latency={args.latency}", "--set", "stall_timeout=3",
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
    if not args.no_offline:  # the baseline: graphs/diarize.yaml on the same input, after the live run
        import avflow

        r = avflow.run(REPO / "graphs" / "diarize.yaml", {"video": str(path), "outputs": ["json"]},
                       output_dir=work / "out_offline", device="cpu")
        offline = frame_accuracy(truth, r.outputs["diarization"].data)
    s = np.array(samples)
    busy = s[:, 0] > 5  # past the start-up
    cores = (s[busy, 2][-1] - s[busy, 2][0]) / max(s[busy, 0][-1] - s[busy, 0][0], 1e-9)
    rss_at = {f"{m} min": round(float(s[np.argmin(np.abs(s[:, 0] - 60 * m)), 1]), 1)
              for m in (1, 2, 5, 10) if s[-1, 0] >= 60 * m - 1}
    result = {
        "machine": machine(), "input": f"{truth.width}x{truth.height} {truth.fps:g} fps, {args.seconds:g} s x "
                                        f"{args.loops}, 3 talking faces + 1 still portrait",
        "latency": args.latency, "decisions": len(lines), "frames": len(doc["active"]),
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
    (work / "bench_live.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
