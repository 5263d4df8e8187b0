"""Replay ``sync.live_assign`` on inputs recorded from real-time runs of the live graph.

Experiment code, not product. ``record`` composes fixtures of named families (below), runs the
real ``graphs/diarize_live.yaml`` in this process on each, the file read at its own pace
(``realtime=true``), and keeps every item ``sync.live_assign`` received with the wall-clock time
it came; ``replay`` feeds them to a fresh node with other params, its clock set to the recorded
times, and prints each fixture's frame accuracy (6-frame collar) and the mean. The arrivals are
real-time ones (so the deadlines and what had come by then are as live); only what the node
decides differs.

    python bench/live_replay.py record --work DIR loff_1 lu-offscreen_0 ...
    python bench/live_replay.py replay --work DIR [KEY=VALUE ...] [NAME ...]

Families (``kind_seed``, 45 s): ``loff`` one talker (talking1-3) and an off-screen voice (eng,
sun or yongen.wav) and a portrait, either heard first (by the seed); ``ltwo`` two talkers (one pitch-shifted)
and a portrait; ``lthree`` three talkers and a portrait;
``llate`` two talkers, one 0.25-0.4 s late; ``lu-CASE_0`` bench/live.py's tune set. Sizes and frame
rates vary with the seed. None is in bench/live.py's test set.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA  # noqa: E402
from assign_replay import fixture, split_items  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STILLS = ("monalisa.png", "sit.jpeg", "yongen.jpeg", "video1.png", "musk.png")


def spec(name: str) -> dict:
    """compose_speakers arguments of the fixture ``name`` (``kind_seed``)."""
    from avflow.testing.compose import random_turns

    kind, seed = name.rsplit("_", 1)
    seed = int(seed)
    r = random.Random(seed)
    size, fps = r.choice([(640, 360), (960, 540), (800, 450), (1280, 720)]), r.choice([25.0, 30.0])
    talking = [MEDIA / f"talking{k}.mp4" for k in (1, 2, 3)]
    still = MEDIA / r.choice(STILLS)
    common = dict(fps=fps, size=size, duration=45.0, keyint=25, seed=seed)
    if kind == "loff":
        wav = MEDIA / r.choice(["eng.wav", "sun.wav", "yongen.wav"])
        order = [1, 0] if r.random() < 0.5 else [0, 1]  # which is heard first, with the seed's turns
        return dict(sources=[r.choice(talking), wav, still],
                    turns=random_turns(order, 45.0, gap_prob=0.2, seed=seed), **common)
    if kind == "ltwo":
        return dict(sources=r.sample(talking, 2) + [still], pitch=[0.0, r.choice([-2.0, 2.0, 3.0]), 0.0],
                    turns=random_turns([0, 1], 45.0, gap_prob=0.2, seed=seed), **common)
    if kind == "lthree":
        return dict(sources=r.sample(talking, 3) + [still],
                    turns=random_turns([0, 1, 2], 45.0, gap_prob=0.2, seed=seed), **common)
    if kind == "llate":
        a, b = r.sample(talking, 2)
        return dict(sources=[a, b, still], audio_delay=[r.uniform(0.25, 0.4), 0.0, 0.0],
                    turns=random_turns([0, 1], 45.0, gap_prob=0.2, seed=seed), **common)
    if kind.startswith("lu-"):
        import live

        sp = live.LIVE_SETS["tune"][kind[3:]]
        kw = {k: v for k, v in sp.items() if k not in ("sources", "speakers", "seed")}
        return dict(sources=[MEDIA / s for s in sp["sources"]],
                    turns=random_turns(sp["speakers"], 45.0, gap_prob=0.2, seed=sp["seed"]),
                    duration=45.0, keyint=25, seed=sp["seed"], **kw)
    raise SystemExit(f"unknown fixture family {kind!r} in {name!r}")


def record(work: Path, names: list[str]) -> None:
    import avflow
    from avflow_sync.nodes import live_assign
    from avflow_sync.scoring import frame_accuracy

    cls = live_assign.LiveVoiceAssigner
    original_process, original_finish = cls.process, cls.finish
    log: list = []

    def process(self, port, item, ctx):
        log.append((port, item, time.monotonic()))
        return original_process(self, port, item, ctx)

    def finish(self, ctx):
        log.append((None, None, time.monotonic()))
        return original_finish(self, ctx)

    cls.process, cls.finish = process, finish
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        fx = fixture(work, name, lambda: spec(name))
        log.clear()
        out = work / f"out_{name}"
        avflow.run(REPO / "graphs" / "diarize_live.yaml", {"source": str(fx.path), "realtime": True},
                   output_dir=out, device="cpu")
        (work / f"{name}.live.pkl").write_bytes(pickle.dumps(log))
        doc = json.loads((out / "diarization.json").read_text())
        print(name, round(frame_accuracy(fx, doc), 3), flush=True)


def replay(work: Path, names: list[str], params: dict) -> float:
    import numpy as np

    from avflow.testing.compose import ComposedVideo
    from avflow_sync.nodes import live_assign
    from avflow_sync.scoring import frame_accuracy

    class Ctx:
        import logging
        logger = logging.getLogger("replay")

    names = names or sorted(p.name[: -len(".live.pkl")] for p in work.glob("*.live.pkl"))
    clock = {"now": 0.0}
    live_assign.time = types.SimpleNamespace(monotonic=lambda: clock["now"])  # that module's clock only
    accs = []
    try:
        for name in names:
            log = pickle.loads((work / f"{name}.live.pkl").read_bytes())
            node = live_assign.LiveVoiceAssigner.__new__(live_assign.LiveVoiceAssigner)
            node.config = live_assign.LiveAssignConfig(**params)
            node.open(Ctx())
            active = []
            for port, item, now in log:
                clock["now"] = now
                out = node.process(port, item, Ctx()) if port is not None else node.finish(Ctx())
                if out and "active" in out:
                    active += [r.data["active"] for r in out["active"]]
            tracks = json.loads((work / f"out_{name}" / "diarization.json").read_text())["tracks"]
            acc = frame_accuracy(ComposedVideo.load(work / f"{name}.json"), {"tracks": tracks, "active": active})
            accs.append(acc)
            print(f"{name:16s} {acc:.3f}", flush=True)
    finally:
        live_assign.time = time
    mean = float(np.mean(accs)) if accs else float("nan")
    print(f"mean {mean:.4f} over {len(accs)} fixtures")
    return mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["record", "replay"])
    ap.add_argument("--work", required=True, help="folder of fixtures, outputs and recorded inputs")
    ap.add_argument("items", nargs="*", help="fixture names; replay also takes KEY=VALUE params of sync.live_assign")
    args = ap.parse_intermixed_args()
    work = Path(args.work)
    names, params = split_items(args.items)
    if args.mode == "record":
        record(work, names)
    else:
        replay(work, names, params)


if __name__ == "__main__":
    main()
