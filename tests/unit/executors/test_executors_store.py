"""Output root pieces: the manifest, complete folders, the lock, the resource cache."""

from __future__ import annotations

import json
import threading
import time

import pytest

from avflow import InputError
from avflow.executors import ResourceCache
from avflow.executors.store import MARKER, Manifest, OutputRoot, publish


def test_manifest_appends_whole_lines_and_skips_a_torn_one(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.append({"input": "/a", "status": "failed"})
    with open(m.path, "a", encoding="utf-8") as f:
        f.write('{"input": "/b", "sta')  # a crash in the middle of a line
    m.append({"input": "/a", "status": "ok"})
    lines = m.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[-1]) == {"input": "/a", "status": "ok"}
    assert m.latest() == {"/a": {"input": "/a", "status": "ok"}}
    assert [e["status"] for e in m.entries()] == ["failed", "ok"]


def test_publish_renames_a_complete_folder_into_place(tmp_path):
    root = OutputRoot(tmp_path / "out")
    root.clean_tmp()
    tmp = root.temp_dir("clip")
    (tmp / "sub").mkdir(parents=True)
    (tmp / "a.txt").write_text("aaa")
    (tmp / "sub" / "b.txt").write_text("b")
    files = publish(tmp, root.root / "clip", {"input": "/in/clip.mp4", "graph": "g", "fingerprint": "f"})
    assert files == {"a.txt": 3, "sub/b.txt": 1}
    assert not tmp.exists()
    marker = root.complete("clip", "/in/clip.mp4")
    assert marker is not None and marker["files"] == files
    assert root.complete("clip", "/in/other.mp4") is None
    assert root.markers()["/in/clip.mp4"]["name"] == "clip"
    # a changed file makes the folder incomplete
    (root.root / "clip" / "a.txt").write_text("a")
    assert root.complete("clip", "/in/clip.mp4") is None


def test_publish_replaces_an_earlier_folder_only_when_the_new_one_is_complete(tmp_path):
    root = OutputRoot(tmp_path)
    root.clean_tmp()
    for text in ("old", "new"):
        tmp = root.temp_dir("clip")
        tmp.mkdir()
        (tmp / "a.txt").write_text(text)
        publish(tmp, root.root / "clip", {"input": "/x"})
    assert (root.root / "clip" / "a.txt").read_text() == "new"
    assert sorted(p.name for p in (root.root / "clip").iterdir()) == [MARKER, "a.txt"]
    assert list(root.tmp.iterdir()) == []


def test_folder_without_marker_is_not_complete(tmp_path):
    root = OutputRoot(tmp_path)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "a.txt").write_text("x")
    assert root.complete("clip", "/x") is None
    assert root.markers() == {}


def test_clean_tmp_removes_leftovers(tmp_path):
    root = OutputRoot(tmp_path)
    (root.tmp / "clip.1234" / "sub").mkdir(parents=True)
    (root.tmp / "clip.1234" / "sub" / "half.mp4").write_bytes(b"\0" * 10)
    root.clean_tmp()
    assert root.tmp.is_dir() and list(root.tmp.iterdir()) == []


def test_a_second_run_on_the_same_root_is_refused(tmp_path):
    root = OutputRoot(tmp_path)
    with root.lock():
        with pytest.raises(InputError, match="in use by another avflow run"):
            with OutputRoot(tmp_path).lock():
                pass
    with root.lock():  # released
        pass


def test_resource_cache_loads_each_key_once_across_threads():
    cache = ResourceCache()
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)
        return object()

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(("m", 1), load))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    assert cache.loads == 1 and cache.hits == 3 and ("m", 1) in cache
    cache.get(("m", 2), lambda: 2)
    assert len(cache) == 2


def test_resource_cache_failed_load_is_retried_and_clear_closes():
    cache = ResourceCache()

    def boom():
        raise OSError("no weights")

    with pytest.raises(OSError):
        cache.get("k", boom)
    assert "k" not in cache

    class Model:
        closed = False

        def close(self):
            self.closed = True

    m = cache.get("k", Model)
    cache.clear()
    assert m.closed and len(cache) == 0
