"""collect_inputs (folders, globs, list files) and output folder naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from avflow import InputError
from avflow.executors import collect_inputs
from avflow.executors.inputs import assign_names, output_name


def _touch(folder: Path, *names: str) -> None:
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_folder_gives_its_media_files_sorted(tmp_path):
    _touch(tmp_path, "b.mp4", "a.wav", "c.png", "notes.txt", ".hidden.mp4", "sub/d.mp4")
    assert collect_inputs(str(tmp_path)) == [tmp_path / "a.wav", tmp_path / "b.mp4", tmp_path / "c.png"]


def test_glob_matches_files_sorted_and_recursive(tmp_path):
    _touch(tmp_path, "x/2.mp4", "x/1.mp4", "x/deep/3.mp4", "x/skip.wav")
    assert collect_inputs(str(tmp_path / "x" / "*.mp4")) == [tmp_path / "x" / "1.mp4", tmp_path / "x" / "2.mp4"]
    assert collect_inputs(str(tmp_path / "x" / "**" / "*.mp4"))[-1] == tmp_path / "x" / "deep" / "3.mp4"


def test_list_file_skips_comments_and_resolves_relative_paths(tmp_path):
    _touch(tmp_path, "v/a.mp4", "v/b.mp4")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# my videos\n\nv/b.mp4\n  {tmp_path / 'v' / 'a.mp4'}  \n", encoding="utf-8")
    assert collect_inputs(str(listing)) == [tmp_path / "v" / "b.mp4", tmp_path / "v" / "a.mp4"]


def test_list_file_naming_missing_files_is_an_input_error(tmp_path):
    listing = tmp_path / "inputs.lst"
    listing.write_text("gone.mp4\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"inputs.lst:1: gone.mp4"):
        collect_inputs(str(listing))


def test_single_media_file(tmp_path):
    _touch(tmp_path, "one.mp4")
    assert collect_inputs(str(tmp_path / "one.mp4")) == [tmp_path / "one.mp4"]


@pytest.mark.parametrize("spec", ["nothing/*.mp4", "missing_folder"])
def test_nothing_matches_is_a_clear_input_error(tmp_path, spec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no inputs match"):
        collect_inputs(spec)
    with pytest.raises(InputError, match="empty"):
        collect_inputs(" ")


def test_empty_folder_is_an_input_error(tmp_path):
    _touch(tmp_path, "readme.txt")
    with pytest.raises(InputError, match="no media files"):
        collect_inputs(str(tmp_path))
    assert InputError.exit_code == 2


def test_output_name_is_a_safe_stem():
    assert output_name("/v/talk 1.mp4") == "talk_1"
    assert output_name("/v/.hidden.mp4") == "hidden"
    assert output_name("/v/frames/") == "frames"
    assert output_name("/v/manifest.jsonl.mp4") == "manifest.jsonl_"


def test_colliding_stems_are_numbered_in_sorted_order():
    names = assign_names(["/c/x.wav", "/a/x.mp4", "/b/x.mp4", "/a/y.mp4"], known={}, taken=set())
    assert names == {"/a/x.mp4": "x", "/b/x.mp4": "x-1", "/c/x.wav": "x-2", "/a/y.mp4": "y"}
    # the same inputs always get the same names
    assert assign_names(["/b/x.mp4", "/a/y.mp4", "/a/x.mp4", "/c/x.wav"], known={}, taken=set()) == names


def test_known_names_are_kept_and_existing_entries_avoided():
    names = assign_names(["/a/x.mp4", "/b/x.mp4"], known={"/b/x.mp4": "x"}, taken={"x", "x-1", "notes"})
    assert names == {"/b/x.mp4": "x", "/a/x.mp4": "x-2"}
