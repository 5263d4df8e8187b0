"""Diarization accuracy per fixture type, for the voices decision and the per-frame one.

Every case of :func:`avflow.testing.compose.diarization_suite` is composed (``--split tune``:
the set parameters were tuned on; ``test``: never tuned on; ``fresh``: only ever reported) and run through the real
``graphs/diarize.yaml``; frame accuracy (6-frame collar, faces mapped to tiles by position:
``avflow_sync.scoring``) and DER/JER (``avflow eval``'s ``evaluate``, 0.25 s collar) are
printed per case, with where each change of speaker was placed (seconds from the truth's:
``change_errors``), then the share placed within 0.1 s, then the voice side's cost (``voice.*`` nodes' CPU seconds per minute of audio).

    python bench/diarize_accuracy.py [--split test] [--cases swap,late] [--decisions voices,frame] [--set K=V]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="test", choices=["tune", "test", "fresh"],
                    help="fresh: a set only ever reported, never looked into")
    ap.add_argument("--cases", default="", help="comma-separated cases (default: all)")
    ap.add_argument("--decisions", default="voices,frame")
    ap.add_argument("--work", default=None, help="folder for fixtures and outputs (kept between runs)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="graph params for every run (as avflow run --set)")
    args = ap.parse_args()
    run(args.split, [c for c in args.cases.split(",") if c], args.decisions.split(","), args.work,
        dict(kv.split("=", 1) for kv in args.sets))


def run(split: str, cases: list[str], decisions: list[str], work: str | None = None,
        sets: dict[str, str] | None = None) -> list[dict]:
    """Compose and run every case (all when ``cases`` is empty) with the graph params ``sets``
    (strings, as ``avflow run --set``); print one JSON row per case, the means per decision and
    the voice side's cost; return the rows."""
    import avflow
    from avflow.evaluation import evaluate
    from avflow.testing.compose import ComposedVideo, compose_speakers, diarization_suite
    from avflow_sync.scoring import change_errors, frame_accuracy

    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="avflow-acc-"))
    suite = diarization_suite(MEDIA, work, split)
    cases = cases or list(suite)
    rows, voice_cpu, audio_s = [], 0.0, 0.0
    placed: dict[str, list[float]] = {d: [] for d in decisions}
    for case in cases:
        truth = work / f"{split}_{case}.json"
        if truth.exists():
            fx = ComposedVideo.load(truth)
        else:
            kw = dict(suite[case])
            fx = compose_speakers(kw.pop("sources"), kw.pop("turns"), out=work / f"{split}_{case}.mp4", **kw)
            fx.save(truth)
        fx.rttm(work / f"{split}_{case}.rttm")
        row = {"case": case, "seconds": round(fx.duration, 1)}
        for decision in decisions:
            out = work / f"out_{split}_{case}_{decision}"
            t0 = time.perf_counter()
            params = {"video": str(fx.path), "decision": decision, **(sets or {})}
            r = avflow.run(REPO / "graphs" / "diarize.yaml", params, output_dir=out, device="cpu", cli_strings=True)
            wall = time.perf_counter() - t0
            doc = r.outputs["diarization"].data
            acc = frame_accuracy(fx, doc)
            row[decision] = round(acc, 3)
            errors = change_errors(fx, doc)
            placed[decision] += errors
            row[f"{decision}_changes"] = [round(e, 2) for e in errors]
            try:
                ev = evaluate(work / f"{split}_{case}.rttm", out)
                row[f"{decision}_der"] = round(ev["der"], 3)
            except Exception as exc:  # noqa: BLE001 - an empty reference has no DER
                row[f"{decision}_der"] = None
            row[f"{decision}_wall_s"] = round(wall, 1)
            if decision == "voices":
                row["found"] = [(v["id"], v["speaker"], v["confidence"], v["offset"]) for v in doc.get("voices", [])]
                voice_cpu += sum(s.cpu_s for s in r.stats if s.node in ("vad", "embed", "embed_fine", "voices"))
                audio_s += fx.duration
        rows.append(row)
        print(json.dumps(row), flush=True)
    for decision in decisions:
        accs = [r[decision] for r in rows if r.get(decision) == r.get(decision)]
        print(f"{decision}: mean frame accuracy {sum(accs) / len(accs):.3f}, min {min(accs):.3f} over {len(accs)} cases")
        if placed[decision]:
            e = sorted(abs(x) for x in placed[decision])
            print(f"{decision}: {len(e)} changes of speaker placed, {sum(x <= 0.1 for x in e) / len(e):.0%} within "
                  f"0.1 s, median error {e[len(e) // 2]:.2f} s")
    if audio_s:
        print(f"voice side: {voice_cpu:.2f} CPU s for {audio_s:.0f} s of audio = {60 * voice_cpu / audio_s:.2f} CPU s "
              f"per minute ({100 * voice_cpu / audio_s:.1f} % of real time)")
    print(json.dumps({"machine": machine(), "split": split, "rows": rows}))
    return rows


if __name__ == "__main__":
    main()
