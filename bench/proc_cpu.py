"""Where a child process's CPU goes, per OS thread name, sampled from /proc (Linux).

Node threads carry their node's name in the OS (``avf:<node>``) and the threads their libraries
start inherit it (MediaPipe's, torch's OpenMP pool, x264's, FFmpeg's), so grouping every
thread's CPU time by name gives the CPU per node, library threads included, which the
scheduler's own ``cpu_s`` (the node thread alone) does not. A thread that ends between two
samples loses at most one interval of its time.

    python bench/proc_cpu.py -- avflow run graphs/diarize.yaml --set video=in.mp4 --quiet

Prints wall time, peak RSS, CPU per thread name and in total, as one JSON line at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_tasks(pid: int) -> dict[int, tuple[str, float]]:
    out = {}
    base = Path(f"/proc/{pid}/task")
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            raw = (base / tid / "stat").read_text()
        except OSError:
            continue
        lpar, rpar = raw.index("("), raw.rindex(")")
        comm = raw[lpar + 1:rpar]
        fields = raw[rpar + 2:].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def run_sampled(cmd: list[str], interval: float = 0.05, env: dict | None = None,
                cwd: str | None = None) -> dict:
    """Run ``cmd``; its wall time, peak RSS (MB), exit status, and CPU seconds per thread name."""
    t0 = time.perf_counter()
    start_wall = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    seen: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for tid, (comm, cpu) in _read_tasks(proc.pid).items():
                seen[tid] = (comm, cpu)
            stop.wait(interval)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda s=s, c=c: c.append(s.read()), daemon=True)
               for s, c in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    by_name: dict[str, float] = {}
    for comm, cpu in seen.values():
        name = comm if comm.startswith("avf:") else "other:" + comm.rstrip("0123456789-_.")
        by_name[name] = by_name.get(name, 0.0) + cpu
    return {"rc": proc.returncode, "wall_s": round(wall, 3), "start_time": start_wall,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "threads": {k: round(v, 3) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])},
            "stdout": b"".join(out_chunks).decode(errors="replace"),
            "stderr": b"".join(err_chunks).decode(errors="replace")}


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if not args:
        raise SystemExit(__doc__)
    if args[0] == "avflow":
        args[0] = str(Path(sys.executable).with_name("avflow"))
    r = run_sampled(args)
    sys.stderr.write(r.pop("stderr")[-3000:])
    r.pop("stdout")
    print(f"wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB, exit {r['rc']}")
    for name, cpu in r["threads"].items():
        print(f"  {name:24s} {cpu:7.2f}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
