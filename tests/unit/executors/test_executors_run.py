"""run_many with a tiny text-copying node: isolation, manifest, resume, cancellation, workers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from executor_nodes import GRAPH, make_inputs, registry

from avflow import GraphValidationError, InputError
from avflow.executors import ManyProgress, run_many
from avflow.executors.store import MARKER


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _run(inputs, out, **kw):
    kw.setdefault("executor", "sequential")
    return run_many(GRAPH, inputs, output_root=out, registry=registry(), **kw)


def test_failures_are_isolated_and_recorded(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "hello", "b.txt": "fail", "c.txt": "world", "d.txt": "half"})
    out = tmp_path / "out"
    result = _run(inputs, out, params={"suffix": "!"})
    assert [r.status for r in result.results] == ["ok", "failed", "ok", "failed"]
    assert not result.all_ok
    assert (out / "a" / "copy.txt").read_text() == "hello!"
    assert result.results[0].outputs == [out / "a" / "copy.txt", out / "a" / "model.txt"]
    assert "this input is bad" in result.results[1].error
    # nothing of a failed input is left, not even what it wrote before failing
    assert _folders(out) == ["a", "c"]
    # and nothing but outputs: no temp space, no lock file once the run is over
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "manifest.jsonl"]
    entries = _manifest(out)
    assert [(Path(e["input"]).name, e["status"]) for e in entries] == [
        ("a.txt", "ok"), ("b.txt", "failed"), ("c.txt", "ok"), ("d.txt", "failed")]
    assert entries[0]["outputs"] == ["a/copy.txt", "a/model.txt"] and entries[0]["error"] is None
    assert "this input is bad" in entries[1]["error"] and entries[1]["time"] and entries[1]["seconds"] >= 0
    summary = result.summary()
    assert "4 inputs: 2 ok, 2 failed" in summary and "b.txt" in summary and "this input is bad" in summary


def test_graph_is_validated_once_before_any_input_runs(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "x"})
    with pytest.raises(GraphValidationError, match="no graph parameter 'sufix'"):
        _run(inputs, tmp_path / "out", params={"sufix": "!"})
    with pytest.raises(GraphValidationError, match="conflicts with --inputs"):
        _run(inputs, tmp_path / "out", params={"src": "y.txt"})
    with pytest.raises(GraphValidationError, match="--input-param nope"):
        _run(inputs, tmp_path / "out", input_param="nope")
    no_path = {**GRAPH, "params": {"src": {"type": "str", "required": True}}}
    with pytest.raises(GraphValidationError, match="no required parameter of type path"):
        run_many(no_path, inputs, output_root=tmp_path / "out", registry=registry(), executor="sequential")
    assert not (tmp_path / "out").exists()


def test_bad_device_stops_the_run_as_an_input_error(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "x"})
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        _run(inputs, tmp_path / "out", device="tpu")
    with pytest.raises(InputError, match="unknown executor"):
        _run(inputs, tmp_path / "out", executor="threads")


def test_resume_skips_complete_folders_and_retries_the_rest(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A", "b.txt": "fail", "c.txt": "C"})
    out = tmp_path / "out"
    _run(inputs, out)
    (tmp_path / "in" / "b.txt").write_text("B")  # the bad input is fixed
    (out / "c" / "copy.txt").write_text("truncat")  # and a folder is damaged
    result = _run(inputs, out, resume=True)
    assert [r.status for r in result.results] == ["skipped", "ok", "ok"]
    assert result.all_ok and result.results[0].outputs == [out / "a" / "copy.txt", out / "a" / "model.txt"]
    assert (out / "b" / "copy.txt").read_text() == "B" and (out / "c" / "copy.txt").read_text() == "C"
    entries = _manifest(out)
    assert [(Path(e["input"]).name, e["status"]) for e in entries[3:]] == [("b.txt", "ok"), ("c.txt", "ok")]
    assert _folders(out) == ["a", "b", "c"]
    # everything complete: nothing runs
    again = _run(inputs, out, resume=True)
    assert [r.status for r in again.results] == ["skipped"] * 3 and len(_manifest(out)) == 5


def test_resume_trusts_a_complete_folder_whose_manifest_line_was_lost(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A", "b.txt": "B"})
    out = tmp_path / "out"
    _run(inputs, out)
    (out / "manifest.jsonl").unlink()  # killed between the rename and the manifest line
    result = _run(inputs, out, resume=True)
    assert [r.status for r in result.results] == ["skipped", "skipped"]
    entries = _manifest(out)
    assert [e["status"] for e in entries] == ["ok", "ok"] and "recovered" in entries[0]["note"]


def test_a_rerun_never_replaces_a_good_folder_with_a_failed_one(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A"})
    out = tmp_path / "out"
    _run(inputs, out)
    (tmp_path / "in" / "a.txt").write_text("fail")
    result = _run(inputs, out)
    assert result.results[0].status == "failed"
    assert (out / "a" / "copy.txt").read_text() == "A" and (out / "a" / MARKER).is_file()


def test_inputs_with_the_same_stem_get_their_own_folders(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"x/clip.txt": "1", "y/clip.txt": "2", "clip.md": "3"})
    out = tmp_path / "out"
    result = _run(inputs, out)
    # sorted: in/clip.md, in/x/clip.txt, in/y/clip.txt
    assert [r.output_dir.name for r in result.results] == ["clip-1", "clip-2", "clip"]
    assert (out / "clip-2" / "copy.txt").read_text() == "2"
    # resuming with one more input keeps the names already given
    more = inputs + make_inputs(tmp_path / "in", {"a/clip.txt": "0"})
    again = _run(more, out, resume=True)
    assert [r.output_dir.name for r in again.results] == ["clip-1", "clip-2", "clip", "clip-3"]


def test_cancel_event_interrupts_without_leaving_anything_half_written(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A", "b.txt": "sleep 30", "c.txt": "C"})
    out = tmp_path / "out"
    cancel = threading.Event()
    snapshots: list[ManyProgress] = []

    def progress(p: ManyProgress) -> None:
        snapshots.append(p)
        if p.done == 1 and p.running == 1:
            threading.Timer(0.3, cancel.set).start()  # while b sleeps

    result = _run(inputs, out, cancel_event=cancel, progress=progress)
    assert result.interrupted and not result.all_ok
    assert [r.status for r in result.results] == ["ok", "interrupted", "interrupted"]
    assert _folders(out) == ["a"] and not (out / ".avflow-tmp").exists()
    assert [e["status"] for e in _manifest(out)] == ["ok", "interrupted"]  # c never started
    assert snapshots[0].total == 3 and snapshots[0].remaining == 3
    finished = [s for s in snapshots if s.last is not None]
    assert finished[0].done == 1 and finished[0].rate is not None and finished[0].eta_s is not None
    assert "1 interrupted" in result.summary() or "2 interrupted" in result.summary()


def test_local_workers_match_sequential_and_survive_a_dying_worker(tmp_path):
    texts = {"a.txt": "A", "b.txt": "fail", "c.txt": "die", "d.txt": "D", "e.txt": "E", "f.txt": "F"}
    inputs = make_inputs(tmp_path / "in", texts)
    result = _run(inputs, tmp_path / "local", executor="local", workers=2)
    assert result.workers == 2 and result.executor == "local"
    assert [r.status for r in result.results] == ["ok", "failed", "failed", "ok", "ok", "ok"]
    assert "worker process died" in result.results[2].error
    _run([p for p in inputs if p.name != "c.txt"], tmp_path / "seq")
    for name in ("a", "d", "e", "f"):
        local, seq_copy = tmp_path / "local" / name / "copy.txt", tmp_path / "seq" / name / "copy.txt"
        assert local.read_bytes() == seq_copy.read_bytes()
    # the "model" was loaded once per worker process, not once per input
    loads = [(tmp_path / "local" / n / "model.txt").read_text().split() for n in ("a", "d", "e", "f")]
    assert all(n == "1" for _pid, n in loads) and len({pid for pid, _ in loads}) <= 3
    statuses = {Path(e["input"]).name: e["status"] for e in _manifest(tmp_path / "local")}
    assert statuses == {"a.txt": "ok", "b.txt": "failed", "c.txt": "failed", "d.txt": "ok", "e.txt": "ok",
                        "f.txt": "ok"}


def test_local_cancel_interrupts_running_workers(tmp_path):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A", "b.txt": "sleep 30", "c.txt": "sleep 30", "d.txt": "D"})
    out = tmp_path / "out"
    cancel = threading.Event()

    def progress(p: ManyProgress) -> None:
        if p.last is not None and p.last.status == "ok":
            threading.Timer(0.5, cancel.set).start()

    result = _run(inputs, out, executor="local", workers=2, cancel_event=cancel, progress=progress)
    assert result.interrupted
    statuses = [r.status for r in result.results]
    assert statuses[0] == "ok" and statuses[1:3] == ["interrupted", "interrupted"]
    assert _folders(out) == ["a"] + (["d"] if statuses[3] == "ok" else [])
    assert not (out / ".avflow-tmp").exists()
    # the sleepers that had started are recorded as interrupted (one may not have started yet)
    sleepers = [e["status"] for e in _manifest(out) if "sleep" in Path(e["input"]).read_text()]
    assert sleepers and set(sleepers) == {"interrupted"}


def test_progress_bar_on_stderr_counts_inputs_and_failures(tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in", {"a.txt": "A", "b.txt": "fail"})
    _run(inputs, tmp_path / "out", progress="bar")
    err = capsys.readouterr().err
    assert "inputs" in err and "2/2" in err and "failed=1" in err
    assert "failed: " in err and "b.txt" in err  # each failure is reported as it happens
