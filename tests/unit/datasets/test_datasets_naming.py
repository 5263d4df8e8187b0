"""Subject keys <person>/<NNN> and video discovery."""

from __future__ import annotations

import pytest

from avflow import InputError
from avflow_datasets.naming import assign_keys, find_videos


def _touch(root, *names):
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    return root


def _keys(root):
    r, paths = find_videos(root)
    return {e.rel: e.key for e in assign_keys(r, paths)}


def test_person_folders_and_numbers(tmp_path):
    _touch(tmp_path, "obama/3.mp4", "obama/12.mp4", "may/0.mov", "may/notes.txt", ".hidden.mp4")
    assert _keys(tmp_path) == {"obama/3.mp4": "obama/003", "obama/12.mp4": "obama/012", "may/0.mov": "may/000"}


def test_flat_names(tmp_path):
    _touch(tmp_path, "obama_3.mp4", "obama_1002.mp4", "talking1.mp4", "talking2.mp4", "big_talk.mp4")
    assert _keys(tmp_path) == {"obama_3.mp4": "obama/003", "obama_1002.mp4": "obama/1002",
                               "talking1.mp4": "talking1/000", "talking2.mp4": "talking2/000",
                               "big_talk.mp4": "big_talk/000"}


def test_unnumbered_or_duplicate_numbers_fall_back_to_order(tmp_path):
    _touch(tmp_path, "ann/b.mp4", "ann/a.mp4", "ann/7.mp4", "bo/1.mp4", "x/bo/1.mp4", "my person/1.mp4")
    assert _keys(tmp_path) == {"ann/7.mp4": "ann/000", "ann/a.mp4": "ann/001", "ann/b.mp4": "ann/002",
                               "bo/1.mp4": "bo/000", "x/bo/1.mp4": "bo/001", "my person/1.mp4": "my_person/001"}


def test_globs_and_errors(tmp_path):
    _touch(tmp_path, "v/a_1.mp4", "v/a_2.mkv", "v/b.mp4")
    root, paths = find_videos(str(tmp_path / "v" / "*_?.*"))
    assert root == (tmp_path / "v").resolve() and [p.name for p in paths] == ["a_1.mp4", "a_2.mkv"]
    with pytest.raises(InputError, match="no file matches"):
        find_videos(str(tmp_path / "*.avi"))
    with pytest.raises(InputError, match="neither a folder"):
        find_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video file"):
        find_videos(tmp_path / "empty")
