"""``datasets.build``: the whole dataset (the per-video graph over every video, then the LMDB)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal

from avflow import File, Node, Port, Record, param

from ..layout import check_fps


@dataclass(frozen=True)
class BuildConfig:
    videos: str = param(doc="folder of videos (searched recursively) or a glob pattern")
    output: Path = param("lmdb", "dataset folder to write (relative: inside the run's output directory)")
    seg_len: int = param(100, "frames per LMDB clip", min=1)
    fps: float = param(25.0, "coefficient frame rate; 16000/fps audio samples per frame must be whole", min=1e-3)
    coef_dir: Path | None = param(None, "folder of precomputed <relative video path>.npz coefficients "
                                        "(shape/exp/pose); None: built-in MediaPipe coefficients")
    video_graph: Path | None = param(None, "custom per-video graph (YAML) writing shard.npz; None: built in")
    splits: list[float] = param([0.8, 0.1, 0.1], "fractions of persons in train, val, test")
    seed: int = param(0, "seed of the person split (and of stats_frames sampling)")
    stats_frames: int | None = param(None, "compute stats_train.npz from this many randomly sampled train "
                                           "frames (None: every train frame)", min=1)
    max_missing_faces: float = param(0.2, "largest fraction of frames without a face in a video",
                                     min=0.0, max=1.0)
    executor: Literal["local", "ray", "sequential"] = param("local", "how videos run: local process pool, "
                                                                     "Ray, or one after another")
    workers: int | None = param(None, "parallel videos (None: the executor's default)", min=1)
    resume: bool = param(True, "keep subjects already written by an earlier (interrupted) build of this "
                               "output, and reuse finished per-video shards")
    keep_shards: bool = param(False, "keep the per-video shards (.<output>.build/shards) after success")

    def __post_init__(self) -> None:
        from ..splits import check_ratios

        check_fps(self.fps)
        check_ratios(self.splits)


class BuildDataset(Node):
    """Build a DiffPoseTalk-layout (HDTF_TFHP) audio-visual LMDB from a folder of videos.

    Runs the per-video graph (decode, coefficients, shard) over every video with
    ``avflow.executors.run_many``, then writes the LMDB from the shards (single writer; the map
    grows as needed), then ``keys.txt``, ``train.txt``/``val.txt``/``test.txt`` (split by person)
    and ``stats_train.npz``. The build happens in ``.<output>.build/`` beside ``output`` and is
    renamed into place at the end; with ``resume`` an interrupted build continues where it
    stopped. Videos that fail (no face, no audio, ...) are reported and skipped. Subject keys
    and the layout: :mod:`avflow_datasets.naming`, :mod:`avflow_datasets.layout`.

    Ports:
      - out ``dataset`` (File): the dataset folder.
      - out ``report`` (Record): subjects written, skipped and failed (also ``build_report.json``).

    Example::

        build:
          type: datasets.build
          params: {videos: "${videos}", output: "${output}", seg_len: 100, fps: 25}
    """

    type = "datasets.build"
    Config = BuildConfig
    outputs = {"dataset": Port(File, "the LMDB dataset folder"),
               "report": Port(Record, "what was written, skipped and failed")}

    def generate(self, ctx) -> Iterator[dict[str, Any]]:
        from ..build import build_dataset

        c = self.config
        report = build_dataset(
            c.videos, ctx.output_path(c.output), seg_len=c.seg_len, fps=c.fps, coef_dir=c.coef_dir,
            video_graph=c.video_graph, splits=tuple(c.splits), seed=c.seed, stats_frames=c.stats_frames,
            executor=c.executor, workers=c.workers, resume=c.resume, keep_shards=c.keep_shards,
            max_missing_faces=c.max_missing_faces, device=ctx.device, progress=ctx.progress,
            logger=ctx.logger, cancel_event=ctx.cancel_event)
        yield {"dataset": File(pts=0, time_base=Fraction(1), path=report.output, kind="application/x-lmdb"),
               "report": Record(pts=0, time_base=Fraction(1), data=report.as_dict())}
