"""Replay ``sync.assign`` on inputs recorded from the default diarize graph, to compare its params.

Experiment code, not product. ``record`` composes fixtures of named families (below), runs the
real ``graphs/diarize.yaml`` on each and keeps what ``sync.assign`` received (evidence, voices,
tracks, scores) in a pickle beside the fixture; ``replay`` feeds those inputs to a fresh
``sync.assign`` with other params in a second and prints each fixture's frame accuracy (6-frame
collar) and the mean. ``--merge`` first makes one voice of all of a fixture's voices (their finer
parts dropped): two similar voices the encoder cannot tell apart, on real lip evidence, which
``lip_split`` has to cut.

    python bench/assign_replay.py record --work DIR sib_921 four_3 tune-late_0 ...
    python bench/assign_replay.py replay --work DIR [--merge] [KEY=VALUE ...] [NAME ...]

Families (``kind_seed``): ``sim`` talking1 beside talking2, one 0.2-0.4 s late, 14-45 s;
``simlong`` the same, 45 s; ``sib`` talking2 beside talking1 0.25-0.4 s late and a portrait, 45 s
at 640x360 (the live test set's late fixture's kind, other seeds); ``sibr`` talking1 beside
talking2 late; ``four`` / ``three`` talkers and a portrait; ``off`` one talker and a wav;
``late`` two of talking1-3, one late; ``loff``, ``ltwo``, ``lthree``, ``llate``
bench/live_replay.py's 45 s families; ``tune-CASE`` the tuning split's case; ``lu-CASE`` the live
tune set's (bench/live.py). Sizes and frame rates vary with the seed. None of these is in the
held-out (``--split test``) or fresh sets of ``bench/diarize_accuracy.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import pickle
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def spec(name: str, work: Path) -> dict:
    """compose_speakers arguments of the fixture ``name`` (``kind_seed``)."""
    from avflow.testing.compose import diarization_suite, random_turns

    kind, seed = name.rsplit("_", 1)
    seed = int(seed)
    r = random.Random(seed)
    size, fps = r.choice([(640, 360), (960, 540), (800, 450)]), r.choice([25.0, 30.0])
    t1, t2, t3 = (MEDIA / f"talking{k}.mp4" for k in (1, 2, 3))
    still = MEDIA / "monalisa.png"

    def turns(speakers, seconds):
        return random_turns(speakers, seconds, gap_prob=0.2, seed=seed)

    if kind in ("sim", "simlong"):
        a, b = r.sample([t1, t2], 2)
        d = r.uniform(0.2, 0.4)
        seconds = r.choice([14.0, 30.0, 45.0]) if kind == "sim" else 45.0
        delay = [0.0, d] if r.random() < 0.5 else [d, 0.0]
        return dict(sources=[a, b], audio_delay=delay, fps=fps, size=size, turns=turns([0, 1], seconds), seed=seed)
    if kind in ("sib", "sibr"):
        d = r.uniform(0.25, 0.4)
        if kind == "sib":
            sources, fps, size = [t2, t1, MEDIA / "yongen.jpeg"], 25.0, (640, 360)
        else:
            sources = [t1, t2, MEDIA / "sit.jpeg"]
        return dict(sources=sources, audio_delay=[0.0, d, 0.0], fps=fps, size=size, turns=turns([0, 1], 45.0),
                    duration=45.0, keyint=25, seed=seed)
    if kind == "four":
        return dict(sources=[t1, t2, t3, t2, still], pitch=[0, 0, 0, 4.0, 0], fps=fps, size=size,
                    turns=turns([0, 1, 2, 3], 18.0), seed=seed)
    if kind == "three":
        return dict(sources=[t1, t2, t3, still], fps=fps, size=size, turns=turns([0, 1, 2], 16.0), seed=seed)
    if kind == "off":
        talker, wav = r.choice([t1, t2, t3]), r.choice([MEDIA / "eng.wav", MEDIA / "sun.wav"])
        return dict(sources=[talker, wav, still], fps=fps, size=size, turns=turns([0, 1], 14.0), seed=seed)
    if kind == "late":
        a, b = r.sample([t1, t2, t3], 2)
        return dict(sources=[a, b, still], audio_delay=[r.uniform(0.2, 0.4), 0, 0], fps=fps, size=size,
                    turns=turns([0, 1], 14.0), seed=seed)
    if kind.startswith("tune-"):
        return dict(diarization_suite(MEDIA, work, "tune")[kind[5:]])
    if kind in ("loff", "ltwo", "lthree", "llate") or kind.startswith("lu-"):  # 45 s, bench/live_replay.py's
        import live_replay

        return live_replay.spec(name)
    raise SystemExit(f"unknown fixture family {kind!r} in {name!r}")


def fixture(work: Path, name: str, make):
    """The fixture ``name`` in ``work``: its saved truth, or composed now from ``make()``'s
    compose_speakers arguments (and saved)."""
    from avflow.testing.compose import ComposedVideo, compose_speakers

    truth = work / f"{name}.json"
    if truth.exists():
        return ComposedVideo.load(truth)
    kw = make()
    fx = compose_speakers(kw.pop("sources"), kw.pop("turns"), out=work / f"{name}.mp4", **kw)
    fx.save(truth)
    return fx


def split_items(items: list[str]) -> tuple[list[str], dict]:
    """Command-line items: fixture names, and KEY=VALUE params (values parsed by ``_value``)."""
    names = [x for x in items if "=" not in x]
    params = {k: _value(v) for k, v in (x.split("=", 1) for x in items if "=" in x)}
    return names, params


def record(work: Path, names: list[str]) -> None:
    import avflow
    from avflow_sync.nodes import assign
    from avflow_sync.scoring import frame_accuracy

    original = assign.VoiceAssigner.finish
    current = {}

    def finish(self, ctx):  # keep the node's inputs, then decide as usual
        state = {k: v for k, v in self.__dict__.items() if k.startswith("_") and k != "_offset_of"}
        current["path"].write_bytes(pickle.dumps(state))
        return original(self, ctx)

    assign.VoiceAssigner.finish = finish
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        fx = fixture(work, name, lambda: spec(name, work))
        current["path"] = work / f"{name}.assign.pkl"
        out = work / f"out_{name}"
        r = avflow.run(REPO / "graphs" / "diarize.yaml", {"video": str(fx.path)}, output_dir=out, device="cpu")
        print(name, round(frame_accuracy(fx, r.outputs["diarization"].data), 3), flush=True)


def replay(work: Path, names: list[str], params: dict, merge: bool) -> float:
    import numpy as np

    from avflow.testing.compose import ComposedVideo
    from avflow_sync.nodes.assign import AssignConfig, VoiceAssigner
    from avflow_sync.scoring import frame_accuracy

    class Ctx:
        logger = logging.getLogger("replay")

    names = names or sorted(p.name[: -len(".assign.pkl")] for p in work.glob("*.assign.pkl"))
    accs = []
    for name in names:
        state = pickle.loads((work / f"{name}.assign.pkl").read_bytes())
        node = VoiceAssigner.__new__(VoiceAssigner)
        node.config = AssignConfig(**params)
        for k, v in state.items():
            setattr(node, k, copy.deepcopy(v) if k == "_voices" else v)
        node._offset_of = {}
        if merge:
            for t in node._voices.turns:
                t["voice"] = "voice_0"
                t.pop("part", None)
            node._voices.voices = [{"id": "voice_0"}]
        out = node.finish(Ctx())
        tracks = json.loads((work / f"out_{name}" / "diarization.json").read_text())["tracks"]
        acc = frame_accuracy(ComposedVideo.load(work / f"{name}.json"),
                             {"tracks": tracks, "active": [r.data["active"] for r in out["active"]]})
        accs.append(acc)
        print(f"{name:16s} {acc:.3f}", flush=True)
    mean = float(np.mean(accs)) if accs else float("nan")
    print(f"mean {mean:.4f} over {len(accs)} fixtures" + (" (voices merged)" if merge else ""))
    return mean


def _value(text: str):
    if text in ("null", "none"):
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["record", "replay"])
    ap.add_argument("--work", required=True, help="folder of fixtures, outputs and recorded inputs")
    ap.add_argument("--merge", action="store_true", help="replay: one voice for all of a fixture's voices")
    ap.add_argument("items", nargs="*", help="fixture names; replay also takes KEY=VALUE params of sync.assign")
    args = ap.parse_intermixed_args()
    work = Path(args.work)
    names, params = split_items(args.items)
    if args.mode == "record":
        record(work, names)
    else:
        replay(work, names, params, args.merge)


if __name__ == "__main__":
    main()
