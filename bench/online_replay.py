"""Replay ``voice.online`` on inputs recorded from the voice side of the live graph.

Experiment code, not product. ``record`` composes fixtures of bench/live_replay.py's families,
runs the voice side of ``graphs/diarize_live.yaml`` (its ``vad``, ``embed`` and ``voices`` nodes
with their params, the audio decoded from the file) and keeps every item ``voice.online``
received, in order; ``replay`` feeds them to a fresh node with other params and counts, per
fixture, the windows of one talker (80 % of their voiced frames one tile's) whose voice is not
that talker's own (the voice most of its windows got, unless another talker's got more of it:
two voices merged), and the voices found. Windows across a change of
talker are left out: this measures voices merged or split, not where a change is placed.

    python bench/online_replay.py record --work DIR loff_1 ltwo_2 ...
    python bench/online_replay.py replay --work DIR [KEY=VALUE ...] [NAME ...]
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assign_replay import fixture, split_items  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def voice_graph() -> dict:
    """The live graph's voice side, fed by a file's decoded audio."""
    live = yaml.safe_load((REPO / "graphs" / "diarize_live.yaml").read_text())
    nodes = {"decode": {"type": "media.decode",
                        "params": {"path": "${video}", "audio_rate": 16000, "audio_channels": 1}}}
    for name in ("vad", "embed", "voices"):
        node = dict(live["nodes"][name])
        node["inputs"] = {k: v.replace("live.", "decode.") for k, v in node["inputs"].items()}
        nodes[name] = node
    return {"name": "voice_side", "params": {"video": {"type": "str", "required": True},
                                             "threshold": live["params"]["threshold"]}, "nodes": nodes}


def record(work: Path, names: list[str]) -> None:
    import avflow
    import live_replay
    from avflow_voice.nodes import online

    items: list = []
    original = online.OnlineVoiceClusterer.process

    def process(self, port, item, ctx):  # keep the node's inputs, then decide as usual
        items.append((port, item))
        return original(self, port, item, ctx)

    online.OnlineVoiceClusterer.process = process
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "voice_side.yaml"
        graph.write_text(yaml.safe_dump(voice_graph()))
        for name in names:
            fx = fixture(work, name, lambda: live_replay.spec(name))
            items.clear()
            avflow.run(graph, {"video": str(fx.path)}, output_dir=Path(tmp) / "out", device="cpu")
            (work / f"{name}.online.pkl").write_bytes(pickle.dumps(items))
            print(name, len(items), "items", flush=True)


def replay(work: Path, names: list[str], params: dict) -> float:
    from avflow.testing.compose import ComposedVideo
    from avflow_voice.nodes.online import OnlineClusterConfig, OnlineVoiceClusterer

    class Ctx:
        logger = logging.getLogger("replay")

    live = yaml.safe_load((REPO / "graphs" / "diarize_live.yaml").read_text())
    base = dict(live["nodes"]["voices"]["params"])
    base["threshold"] = live["params"]["threshold"]["default"]
    base.update(params)
    names = names or sorted(p.name[: -len(".online.pkl")] for p in work.glob("*.online.pkl"))
    wrong = total = 0
    for name in names:
        fx = ComposedVideo.load(work / f"{name}.json")
        node = OnlineVoiceClusterer.__new__(OnlineVoiceClusterer)
        node.config = OnlineClusterConfig(**base)
        node.open(Ctx())
        labels = []
        for port, item in pickle.loads((work / f"{name}.online.pkl").read_bytes()):
            labels += (node.process(port, item, Ctx()) or {}).get("labels", [])
        labels += (node.finish(Ctx()) or {}).get("labels", [])
        voiced = np.array([-1 if v is None else v for v in fx.voiced])
        rows = []
        for lab in labels:
            seg = voiced[int(lab.start * fx.fps): int(np.ceil(lab.end * fx.fps))]
            heard = seg[seg >= 0]
            if len(heard) < 0.6 * max(len(seg), 1):
                continue
            tile, n = Counter(heard.tolist()).most_common(1)[0]
            if n >= 0.8 * len(heard):
                rows.append((lab.voice, tile))
        voice_of = {tile: Counter(v for v, t in rows if t == tile).most_common(1)[0][0] for _, tile in rows}
        owner = {v: Counter(t for w, t in rows if w == v).most_common(1)[0][0] for v, _ in rows}
        # right: the talker's own voice, and a voice no other talker's windows hold more of (a merge)
        bad = sum(1 for v, tile in rows if v is None or v != voice_of[tile] or owner[v] != tile)
        found = len({v for v, _ in rows if v is not None})
        wrong, total = wrong + bad, total + len(rows)
        print(f"{name:16s} {bad:4d} of {len(rows):4d} windows off their talker's voice; {found} voices "
              f"for {len(voice_of)} talkers", flush=True)
    rate = wrong / max(total, 1)
    print(f"all: {wrong} of {total} windows ({rate:.4f})")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["record", "replay"])
    ap.add_argument("--work", required=True, help="folder of fixtures and recorded inputs")
    ap.add_argument("items", nargs="*", help="fixture names; replay also takes KEY=VALUE params of voice.online")
    args = ap.parse_intermixed_args()
    names, params = split_items(args.items)
    if args.mode == "record":
        record(Path(args.work), names)
    else:
        replay(Path(args.work), names, params)


if __name__ == "__main__":
    main()
