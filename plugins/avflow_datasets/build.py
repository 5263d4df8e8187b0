"""Building a dataset: per-video shards over many inputs, then one LMDB writer.

.. code-block:: python

    from avflow_datasets import build_dataset

    report = build_dataset("videos/", "data/lmdb", seg_len=100, fps=25)
    print(report.written, report.failed)

Steps: find the videos and name their subjects (:mod:`.naming`); run the per-video graph
(the shipped graph ``dataset_video``, or ``dataset_video_npz`` with ``coef_dir``) over the videos not yet in the dataset with ``avflow.executors.run_many``, each
writing ``shard.npz`` into its own folder; write each successful shard as one LMDB transaction
(:mod:`.layout`); then ``keys.txt``, the person splits and ``stats_train.npz`` (:mod:`.splits`).

Atomic and resumable: everything happens in ``<parent>/.<name>.build/`` (``lmdb/`` and
``shards/``); only a complete dataset is renamed to ``<parent>/<name>``. A build that fails or
is interrupted leaves the previous dataset (if any) untouched; run it again with ``resume`` to
skip the subjects already written (an existing complete dataset is extended the same way).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avflow import Cancelled, InputError, atomic_path, write_text_atomic

from .layout import META_KEY, READERS, LmdbWriter, audio_unit, subject_records
from .naming import VideoEntry, assign_keys, find_videos
from .pickles import dumps
from .shard import SHARD_NAME, read_shard
from .splits import SPLIT_NAMES, check_ratios, coef_stats, split_by_person

_LOG = logging.getLogger("avflow.datasets")
REPORT_NAME = "build_report.json"


@dataclass
class BuildReport:
    """What a build did. ``failed`` items are ``{"key", "video", "error"}``."""

    output: Path
    subjects: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    splits: dict[str, list[str]] = field(default_factory=dict)
    video_seconds: float = 0.0
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)  # also logged: what will bite at training time

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output"] = str(self.output)
        d["schema"] = "avflow.dataset_build/1"
        return d


def _work_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.build"


class _ProgressCounter:
    """Turns ``run_many``'s :class:`~avflow.executors.ManyProgress` into "videos done" on an avflow
    progress handle (the CLI's progress line)."""

    def __init__(self, progress: Any, total: int):
        self.progress = progress
        if progress is not None:
            progress.set_total(total, "videos")

    def __call__(self, snapshot: Any) -> None:
        if self.progress is None:
            return
        finished = snapshot.done + snapshot.failed + snapshot.skipped
        if finished > self.progress.done:
            self.progress.advance(finished - self.progress.done)


def _graph_and_params(coef_dir: Path | None, video_graph: Path | None, root: Path, fps: float,
                      max_missing_faces: float) -> tuple[Path, dict[str, Any]]:
    from avflow import load_graph

    values: dict[str, Any] = {"fps": float(fps), "max_missing_faces": float(max_missing_faces),
                              "videos_root": str(root)}
    if coef_dir is not None:
        if not Path(coef_dir).is_dir():
            raise InputError(f"coef_dir {coef_dir} is not a folder (expected <relative video path>.npz files)")
        values["coef_dir"] = str(Path(coef_dir).resolve())
    graph = video_graph if video_graph is not None else _shipped_graph(
        "dataset_video_npz" if coef_dir is not None else "dataset_video")
    declared = load_graph(graph).params
    return graph, {k: v for k, v in values.items() if k in declared}


def _shipped_graph(name: str) -> Path:
    """A per-video graph shipped by a plugin (``avflow_workloads``: ``dataset_video.yaml``)."""
    from avflow import Registry

    registry = Registry.default()
    path = registry.find_graph(name)
    if path is None:
        raise InputError(f"no shipped graph '{name}' (from the avflow_workloads plugin; registered graph "
                         f"folders: {', '.join(map(str, registry.graph_dirs)) or 'none'}); pass video_graph")
    return path


#: ``n_motions`` of the usual trainings (DiffPoseTalk's default: items of 2 * 100 frames); a build
#: warns when sequences are too short for them.
COMMON_N_MOTIONS = (100,)


def build_warnings(env: Any, subjects: Sequence[str], split: dict[str, list[str]], ratios: Sequence[float],
                   fps: float) -> list[str]:
    """What a training on this dataset would trip over: sequences shorter than the common crop
    lengths (``AVClipDataset`` refuses them) and splits that came out empty."""
    from .layout import subject_meta_key
    from .pickles import safe_loads
    from .splits import SPLIT_NAMES

    out: list[str] = []
    with env.begin() as txn:
        lengths = {s: int(safe_loads(txn.get(subject_meta_key(s)), f"LMDB key '{s}/metadata'")["n_frames"])
                   for s in subjects}
    for n_motions in COMMON_N_MOTIONS:
        need = 2 * n_motions
        short = sorted(s for s, n in lengths.items() if n < need)
        if short:
            shortest = min(lengths.values())
            out.append(f"{len(short)} of {len(subjects)} sequences are shorter than {need} frames "
                       f"({need / fps:g} s, the 2 * n_motions crop of n_motions={n_motions}): "
                       f"AVClipDataset(..., n_motions={n_motions}) refuses them ({', '.join(short[:5])}"
                       f"{', ...' if len(short) > 5 else ''}); the shortest has {shortest} frames, so "
                       f"n_motions <= {shortest // 2} works for all")
    for name, ratio in zip(SPLIT_NAMES, ratios):
        if ratio > 0 and not split.get(name):
            persons = len({s.split("/")[0] for s in subjects})
            out.append(f"split '{name}' is empty: {persons} person(s) cannot fill it at ratio {ratio:g} "
                       f"(splits are by person); {name}.txt has no entry")
    return out


def build_dataset(videos: str | Path, output: str | Path, *, seg_len: int = 100, fps: float = 25.0,
                  coef_dir: str | Path | None = None, video_graph: str | Path | None = None,
                  splits: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, stats_frames: int | None = None,
                  executor: str = "local", workers: int | None = None, resume: bool = True,
                  keep_shards: bool = False, max_missing_faces: float = 0.2, device: str = "cpu",
                  progress: Any = None, logger: logging.Logger | None = None,
                  cancel_event: threading.Event | None = None) -> BuildReport:
    """Build (or extend, with ``resume``) a dataset; see the module docstring and ``datasets.build``.

    :param progress: an :class:`avflow.node.Progress` (``set_total``/``advance``), counts videos.
    :param cancel_event: set it to stop; what finished is kept for a resumed build.
    :raises InputError: bad arguments, no video found, or no video usable at all.
    :raises Cancelled: ``cancel_event`` was set (run again with ``resume`` to go on).
    """
    log = logger or _LOG
    t_start = time.perf_counter()
    unit = audio_unit(fps)
    check_ratios(splits)
    if seg_len < 1:
        raise InputError(f"seg_len must be >= 1, got {seg_len}")
    output = Path(output).resolve()
    work = _work_dir(output)
    previous = work / "previous"
    if previous.is_dir() and not output.exists():
        # An earlier build stopped between its two final renames: put the old dataset back.
        os.replace(previous, output)
    if output.exists() and not (output / "data.mdb").is_file():
        raise InputError(f"output {output} exists and is not an LMDB dataset (no data.mdb); choose another "
                         "folder or remove it")
    root, paths = find_videos(videos)
    entries = assign_keys(root, paths)
    graph, params = _graph_and_params(Path(coef_dir) if coef_dir else None,
                                      Path(video_graph) if video_graph else None, root, fps, max_missing_faces)

    if not resume and work.exists():
        shutil.rmtree(work)
    tmp_db = work / "lmdb"
    if resume and not (tmp_db / "data.mdb").is_file() and output.exists():
        log.info("extending the existing dataset %s", output)
        tmp_db.mkdir(parents=True, exist_ok=True)
        READERS.get(output).copy(str(tmp_db))
    report = BuildReport(output=output)
    writer = LmdbWriter(tmp_db)
    try:
        meta = writer.get(META_KEY)
        if meta is None:
            writer.put([(META_KEY, dumps({"seg_len": int(seg_len)}))])
        elif int(meta.get("seg_len", -1)) != seg_len:
            raise InputError(f"resume: the dataset being built in {tmp_db} has seg_len={meta.get('seg_len')}, "
                             f"not {seg_len}; use the same seg_len or build again with resume=false")
        existing = writer.subjects()
        todo: list[VideoEntry] = []
        for e in entries:
            if e.key not in existing:
                todo.append(e)
                continue
            if existing[e.key] not in (None, e.rel):
                raise InputError(f"resume: subject '{e.key}' was written from {existing[e.key]} but now names "
                                 f"{e.rel} (the videos changed); build again with resume=false")
            report.skipped.append(e.key)
        if report.skipped:
            log.info("resume: %d subject(s) already written, %d to do", len(report.skipped), len(todo))

        results: dict[str, Any] = {}
        interrupted = False
        if todo:
            from avflow import run_many

            many = run_many(graph, [str(e.path) for e in todo], input_param="video", params=params,
                            output_root=work / "shards", executor=executor, workers=workers, resume=resume,
                            device=device, progress=_ProgressCounter(progress, len(todo)),
                            cancel_event=cancel_event)
            results = {os.path.abspath(str(r.input)): r for r in many.results}
            interrupted = many.interrupted

        for e in todo:
            r = results.get(os.path.abspath(str(e.path)))
            error = None
            if r is None:
                error = "the many-inputs runner returned no result for it"
            elif r.status == "interrupted":
                continue  # not run: a resumed build does it
            elif r.status == "failed":
                error = str(r.error)
            else:
                try:
                    data, info = read_shard(Path(r.output_dir) / SHARD_NAME, fps)
                    writer.put(subject_records(e.key, data, seg_len, unit, source=e.rel))
                    report.written.append(e.key)
                    report.video_seconds += info["seconds"]
                except InputError as exc:
                    error = str(exc)
            if error is not None:
                log.warning("skipped %s (%s): %s", e.rel, e.key, error)
                report.failed.append({"key": e.key, "video": e.rel, "error": error})

        if interrupted:
            raise Cancelled(f"the build of {output} was interrupted; {len(report.written)} subject(s) were kept "
                            f"in {work}: run it again with resume to go on")
        report.subjects = sorted(writer.subjects())
        if not report.subjects:
            raise InputError("no video could be used; " + "; ".join(f"{f['video']}: {f['error']}"
                                                                     for f in report.failed[:10]))
        report.splits = split_by_person(report.subjects, splits, seed)
        report.warnings = build_warnings(writer.env, report.subjects, report.splits, splits, fps)
        for w in report.warnings:
            log.warning("%s", w)
        stats = coef_stats(writer.env, report.splits["train"], max_frames=stats_frames, seed=seed)
    finally:
        writer.close()

    write_text_atomic(tmp_db / "keys.txt", "".join(f"{k}\n" for k in report.subjects))
    for name in SPLIT_NAMES:
        write_text_atomic(tmp_db / f"{name}.txt", "".join(f"{k}\n" for k in report.splits[name]))
    with atomic_path(tmp_db / "stats_train.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **stats)
    report.wall_s = time.perf_counter() - t_start
    write_text_atomic(tmp_db / REPORT_NAME, json.dumps(report.as_dict(), indent=2))
    for name in (*(f"{n}.txt" for n in ("keys", *SPLIT_NAMES)), "stats_train.npz", REPORT_NAME):
        os.chmod(tmp_db / name, 0o644)  # temp files are created private; a dataset is meant to be shared

    if previous.exists():
        shutil.rmtree(previous)
    if output.exists():
        os.replace(output, previous)
    os.replace(tmp_db, output)
    if previous.exists():
        shutil.rmtree(previous)
    if not keep_shards:
        shutil.rmtree(work, ignore_errors=True)
    log.info("dataset %s: %d subjects (%d written, %d already there, %d failed)", output,
             len(report.subjects), len(report.written), len(report.skipped), len(report.failed))
    return report
