"""Peak memory and speed of graphs/transcode.yaml on a 10-second and a 2-minute input.

Streaming with bounded queues means peak memory must not grow with the input's length: the
two peaks should be nearly equal. Each run is a fresh process, so the peaks are independent.

    python bench/transcode.py [--long 120] [--short 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, PEAK_RSS_SNIPPET, loop_clip, machine, run_child  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def measure(video: Path, out: Path) -> dict:
    code = PEAK_RSS_SNIPPET + (
        "import time, avflow\n"
        "t = time.perf_counter()\n"
        f"r = avflow.run({str(REPO / 'graphs' / 'transcode.yaml')!r}, {{'video': {str(video)!r}}}, "
        f"output_dir={str(out)!r}, device='cpu')\n"
        "print(json.dumps({'run_s': round(time.perf_counter() - t, 2), 'peak_rss_mb': round(peak_mb(), 1)}))\n")
    return run_child([code])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=float, default=10.0)
    ap.add_argument("--long", type=float, default=120.0)
    ap.add_argument("--clip", default=str(MEDIA / "talking1.mp4"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = {}
        for label, seconds in (("short", args.short), ("long", args.long)):
            video = loop_clip(Path(args.clip), tmp / f"{label}.mp4", seconds)
            r = measure(video, tmp / f"out_{label}")
            r["input_s"] = seconds
            r["realtime_x"] = round(seconds / r["run_s"], 2)
            rows[label] = r
        ratio = rows["long"]["peak_rss_mb"] / rows["short"]["peak_rss_mb"]
        print(f"machine: {machine()}")
        for label, r in rows.items():
            print(f"{label:5s} {r['input_s']:6.0f} s input: peak RSS {r['peak_rss_mb']:7.1f} MB, "
                  f"run {r['run_s']:6.2f} s ({r['realtime_x']}x real time)")
        print(f"peak RSS long/short: {ratio:.3f} (streaming target: close to 1.0)")
        print(json.dumps({"machine": machine(), "rows": rows, "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
