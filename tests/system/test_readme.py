"""Every Python snippet and every command in README.md runs (issue 14).

The snippets are read from README.md itself, so the README cannot drift from the code. Paths a
snippet takes as an example (``talk.mp4``, ``/data/hdtf_lmdb``, ``models/``) are replaced by small
real inputs; ``avflow run`` commands whose full run would take minutes are checked with
``avflow validate`` and the same ``--set`` values, ``avflow eval`` with its ``--help``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)


def _commands() -> list[str]:
    out = []
    for lang, body in BLOCKS:
        if lang:
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            if line.startswith(("avflow ", "scripts/")):
                out.append(line)
    return out


COMMANDS = _commands()
PYTHON = [body for lang, body in BLOCKS if lang == "python"]


def test_the_readme_has_what_these_tests_read():
    assert "scripts/demo.sh path/to/video.mp4" in COMMANDS and "scripts/test.sh" in COMMANDS
    assert len(COMMANDS) >= 20 and len(PYTHON) == 5


@pytest.fixture(scope="module")
def stage(tmp_path_factory, media_dir):
    """A folder holding the README's example names, pointing at small real inputs."""
    root = tmp_path_factory.mktemp("readme")
    links = {"talk.mp4": "talking1.mp4", "avatar.mp4": "talking3.mp4", "speech.wav": "eng.wav",
             "in.mp4": "talking3.mp4", "path/to/video.mp4": "talking3.mp4"}
    for name, target in links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(media_dir / target)
    for d in ("videos", "archive", "path/to/videos"):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "clip.mp4").symlink_to(media_dir / "talking3.mp4")
    (root / "list.txt").write_text(str(root / "talk.mp4") + "\n")
    (root / "graphs").symlink_to(REPO / "graphs", target_is_directory=True)
    (root / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(["avflow", "models", "scaffold", "models", "--random", "--tiny"], cwd=root, env=env, check=True,
                   capture_output=True)
    subprocess.run(["avflow", "models", "scaffold", "syncnet", "--random", "--name", "syncnet"], cwd=root, env=env,
                   check=True, capture_output=True)
    weights = next((root / "syncnet").rglob("*.pth"))
    (root / "lipsync_expert.pth").symlink_to(weights)
    return root, env


def _expand(cmd: str) -> list[str]:
    """``[--json]`` optional parts: the command without them and with them."""
    m = re.search(r"\s\[([^\]]+)\]", cmd)
    if not m:
        return [cmd]
    return _expand(cmd[:m.start()] + cmd[m.end():]) + _expand(cmd[:m.start()] + " " + m.group(1) + cmd[m.end():])


def _as_check(cmd: str) -> list[str]:
    """The command to run for a README command: runs become validations (same graph and --set)."""
    args = shlex.split(cmd)
    if args[:2] == ["avflow", "run"]:
        keep, it = ["avflow", "validate", args[2]], iter(args[3:])
        for a in it:
            if a == "--set":
                keep += ["--set", next(it)]
            elif a in ("-o", "--output-dir", "--inputs", "--workers", "--executor", "--ray-address",
                       "--cpus-per-task", "--gpus-per-task"):
                next(it)
        return keep
    if args[:2] == ["avflow", "eval"]:
        return ["avflow", "eval", "--help"]
    if args[:3] == ["avflow", "models", "--check"]:
        return ["avflow", "models", "--check", "models"]
    return args


CHECKED = sorted({c for cmd in COMMANDS if cmd.startswith("avflow ") for c in _expand(cmd)})


@pytest.mark.parametrize("cmd", CHECKED)
def test_readme_command(cmd, stage):
    root, env = stage
    args = _as_check(cmd)
    if args[:3] == ["avflow", "models", "scaffold"]:
        args[3] = "fresh-models"
    res = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{cmd}\n-> {' '.join(args)}\n{res.stdout}\n{res.stderr}"


def test_readme_graph_file_and_plugin_package_are_valid():
    import avflow

    yaml_block = next(body for lang, body in BLOCKS if lang == "yaml")
    plan = avflow.validate(avflow.load_graph(yaml_block), avflow.Registry.default(), require_all=False)
    assert plan.order == ["decode", "resize", "mux"]
    toml_block = next(body for lang, body in BLOCKS if lang == "toml")
    assert tomllib.loads(toml_block)["project"]["entry-points"]["avflow.plugins"] == {"hello": "avflow_hello"}


def _run_snippet(code: str, cwd: Path) -> None:
    script = cwd / "snippet.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{code}\n{res.stderr[-3000:]}"


def test_readme_dataset_snippet(tmp_path):
    from avflow_datasets.layout import META_KEY, LmdbWriter, SubjectData, subject_records
    from avflow_datasets.pickles import dumps
    from avflow_datasets.splits import coef_stats

    lmdb_dir = tmp_path / "hdtf_lmdb"
    rng = np.random.default_rng(0)
    writer = LmdbWriter(lmdb_dir)
    writer.put([(META_KEY, dumps({"seg_len": 100}))])
    keys = []
    for person in ("alice", "bob"):
        n = 260  # over 2 * n_motions = 200 frames
        data = SubjectData(coefs={"shape": rng.normal(size=(n, 100)).astype(np.float32),
                                  "exp": rng.normal(size=(n, 50)).astype(np.float32),
                                  "pose": rng.normal(size=(n, 6)).astype(np.float32)},
                           audio=(rng.normal(size=n * 640) * 1000).astype(np.int16))
        writer.put(subject_records(f"{person}/000", data, 100, 640))
        keys.append(f"{person}/000")
    stats = coef_stats(writer.env, keys)
    writer.close()
    (lmdb_dir / "train.txt").write_text("".join(k + "\n" for k in keys))
    np.savez(lmdb_dir / "stats_train.npz", **stats)
    code = next(b for b in PYTHON if "AVClipDataset" in b).replace("/data/hdtf_lmdb", str(lmdb_dir))
    _run_snippet(code, tmp_path)


def test_readme_plugin_snippet(tmp_path):
    code = next(b for b in PYTHON if "avflow_register_nodes" in b)
    _run_snippet(code + "\nassert avflow_register_nodes() == [Caption]\n", tmp_path)


@pytest.mark.slow
def test_readme_embedding_snippet(stage):
    root, _ = stage
    code = next(b for b in PYTHON if "avflow.Runner(" in b)
    # the snippet cancels after 10 s: a run of the 5 s clip may finish first, or be cancelled
    code = code.replace("result = runner.run()", "try:\n    result = runner.run()\nexcept avflow.Cancelled:\n    pass")
    _run_snippet(code, root)


@pytest.mark.slow
def test_readme_pyannote_lhotse_snippet(stage):
    root, _ = stage
    code = next(b for b in PYTHON if "to_supervision_set" in b)
    (root / "reference.rttm").write_text("SPEAKER talk 1 0.000 3.000 <NA> <NA> tile_0 <NA> <NA>\n")
    _run_snippet(code + "\nassert len(supervisions) >= 1\n", root)


@pytest.mark.slow
def test_readme_many_inputs_snippet(stage):
    root, _ = stage
    code = next(b for b in PYTHON if "run_many" in b)
    _run_snippet(code, root)


@pytest.mark.slow
def test_readme_demo_command(stage, tmp_path):
    root, env = stage
    assert "scripts/demo.sh path/to/video.mp4" in COMMANDS
    res = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh"), str(root / "path/to/video.mp4"),
                          str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {"diarization.json", "diarization.rttm", "sync_signals.png", "annotated.mp4"} <= {
        p.name for p in (tmp_path / "out").iterdir()}
