"""Nodes of the datasets plugin: coefficient sources, the shard writer and the dataset builder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from avflow import AudioChunk, File, InputError, Node, Port, Record, VideoFrame, param

from .coefs import EXP_DIM, POSE_DIM, SHAPE_DIM
from .layout import COEF_KEYS, SAMPLE_RATE, audio_unit, to_pcm16
from .payloads import FaceCoefficients


def _check_fps(fps: float) -> None:
    try:
        audio_unit(fps)
    except InputError as exc:
        raise ValueError(str(exc)) from None


# -- MediaPipe coefficients ---------------------------------------------------------------------
@dataclass(frozen=True)
class FaceCoefsConfig:
    max_missing: float = param(0.2, "largest fraction of frames without a detected face; those frames are "
                                    "interpolated from their neighbours, more is an input error", min=0.0, max=1.0)
    min_detection_confidence: float = param(0.5, "MediaPipe face detection threshold", min=0.0, max=1.0)
    min_tracking_confidence: float = param(0.5, "MediaPipe landmark tracking threshold", min=0.0, max=1.0)


class FaceCoefs(Node):
    """Per-frame face coefficients from MediaPipe face mesh (built in, no downloads).

    ``shape`` (100: the subject's neutral geometry), ``exp`` (50: landmark displacements from it)
    and ``pose`` (6: head rotation axis-angle, jaw rotation axis-angle); the vectors are documented
    in :mod:`avflow_datasets.coefs`. The neutral geometry is a statistic of the whole video, so
    the coefficients are emitted when the frames end. Frames without a face are interpolated;
    a video with no face, or with more than ``max_missing`` of its frames without one, is an
    :class:`~avflow.InputError`.

    Ports:
      - in ``frames`` (VideoFrame): RGB frames at a constant rate (``media.decode`` with ``fps``).
      - out ``coefs`` (FaceCoefficients): one per frame, with the frame's pts.

    Example::

        coefs:
          type: datasets.face_coefs
          inputs: {frames: decode.video}
          params: {max_missing: 0.2}
    """

    type = "datasets.face_coefs"
    Config = FaceCoefsConfig
    inputs = {"frames": Port(VideoFrame, "RGB frames at the dataset's frame rate")}
    outputs = {"coefs": Port(FaceCoefficients, "per-frame shape/exp/pose")}

    def open(self, ctx) -> None:
        from avflow_faces.models import face_mesh

        self._mesh = face_mesh(static=False, max_faces=1,
                               min_detection_confidence=self.config.min_detection_confidence,
                               min_tracking_confidence=self.config.min_tracking_confidence)
        self._frames: list[tuple[int, Fraction, int]] = []
        self._geometry: list[Any] = []

    def process(self, port: str, item: VideoFrame, ctx) -> None:
        from avflow_faces.mesh import mesh_points

        from .coefs import frame_geometry

        result = self._mesh.process(np.ascontiguousarray(item.image))
        points = None
        if result.multi_face_landmarks:
            points = mesh_points(result.multi_face_landmarks[0], item.width, item.height, dtype=np.float64)
        geometry = None if points is None else frame_geometry(points)
        self._frames.append((item.pts, item.time_base, item.index))
        self._geometry.append(geometry)
        ctx.progress.advance()

    def finish(self, ctx) -> dict[str, list[FaceCoefficients]]:
        from .coefs import TRACKED, coefficients, fill_missing

        n = len(self._frames)
        if n == 0:
            raise InputError("no video frame reached datasets.face_coefs")
        found = np.array([g is not None for g in self._geometry])
        n_found = int(found.sum())
        if n_found == 0:
            raise InputError(f"no face found in any of the {n} frames")
        if (n - n_found) / n > self.config.max_missing:
            raise InputError(f"no face in {n - n_found} of {n} frames ({(n - n_found) / n:.0%}), more than "
                             f"max_missing={self.config.max_missing:g}")
        rot = np.zeros((n, 3))
        pts = np.zeros((n, len(TRACKED), 3))
        for i, g in enumerate(self._geometry):
            if g is not None:
                rot[i], pts[i] = g.rotation, g.points
        if n_found < n:
            ctx.logger.info("no face in %d of %d frames; interpolated", n - n_found, n)
            rot, pts = fill_missing(rot, found), fill_missing(pts, found)
        coefs = coefficients(rot, pts)
        out = [FaceCoefficients(pts=p, time_base=tb, frame_index=idx, shape=coefs["shape"][i],
                                exp=coefs["exp"][i], pose=coefs["pose"][i], face_found=bool(found[i]))
               for i, (p, tb, idx) in enumerate(self._frames)]
        return {"coefs": out}

    def close(self, ctx) -> None:
        mesh = getattr(self, "_mesh", None)
        if mesh is not None:
            mesh.close()
            self._mesh = None


# -- precomputed coefficients -------------------------------------------------------------------
@dataclass(frozen=True)
class NpzCoefsConfig:
    path: Path = param(doc="the video whose coefficients are read")
    coef_dir: Path = param(doc="folder of <video path relative to videos_root, suffix .npz> files with "
                               "shape, exp, pose arrays (n, d); shape may be a single row (d,)")
    videos_root: Path | None = param(None, "folder the video's relative path is taken from "
                                           "(None: the video's own folder, i.e. <coef_dir>/<name>.npz)")
    fps: float = param(25.0, "rate of the coefficient frames", min=1e-3)


class NpzCoefs(Node):
    """Precomputed per-frame coefficients (SPECTRE, MICA, ... fitters) read from a .npz file.

    The file for ``<videos_root>/<person>/<n>.mp4`` is ``<coef_dir>/<person>/<n>.npz``, with
    ``shape``, ``exp`` and ``pose`` arrays of one row per frame (a one-row ``shape`` is repeated).
    Loaded with ``allow_pickle=False``.

    Ports:
      - out ``coefs`` (FaceCoefficients): one per row, pts = row, time base 1/fps.

    Example::

        coefs:
          type: datasets.npz_coefs
          params: {path: "${video}", coef_dir: coefs/, videos_root: videos/, fps: 25}
    """

    type = "datasets.npz_coefs"
    Config = NpzCoefsConfig
    outputs = {"coefs": Port(FaceCoefficients, "per-frame shape/exp/pose")}

    def coef_file(self) -> Path:
        video = Path(self.config.path)
        root = Path(self.config.videos_root) if self.config.videos_root is not None else video.parent
        try:
            rel = Path(os.path.abspath(video)).relative_to(os.path.abspath(root))
        except ValueError:
            rel = Path(video.name)
        return Path(self.config.coef_dir) / rel.with_suffix(".npz")

    def generate(self, ctx) -> Iterator[dict[str, list[FaceCoefficients]]]:
        f = self.coef_file()
        if not f.is_file():
            raise InputError(f"no coefficient file for {self.config.path}: expected {f} (coef_dir + the video's "
                             "path relative to videos_root, suffix .npz)")
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k], np.float32) for k in COEF_KEYS if k in z.files}
                have = list(z.files)
        except (OSError, ValueError) as exc:
            raise InputError(f"{f}: cannot read as .npz without pickles ({exc})") from None
        missing = [k for k in COEF_KEYS if k not in arrays]
        if missing:
            raise InputError(f"{f}: lacks {', '.join(missing)} (has {', '.join(have) or 'nothing'}); "
                             "needs shape, exp and pose arrays of one row per frame")
        if arrays["shape"].ndim == 1:
            arrays["shape"] = arrays["shape"][None, :]
        bad = [f"{k} {arrays[k].shape}" for k in COEF_KEYS if arrays[k].ndim != 2]
        if bad:
            raise InputError(f"{f}: arrays must be 2-D (frames, dims): {', '.join(bad)}")
        n = len(arrays["exp"])
        if len(arrays["shape"]) == 1:
            arrays["shape"] = np.repeat(arrays["shape"], n, axis=0)
        if n == 0 or len(arrays["pose"]) != n or len(arrays["shape"]) != n:
            raise InputError(f"{f}: frame counts differ or are zero: "
                             + ", ".join(f"{k} {arrays[k].shape[0]}" for k in COEF_KEYS))
        tb = Fraction(self.config.fps).limit_denominator(1_000_000) ** -1
        ctx.progress.set_total(n, "frames")
        step = 256
        for a in range(0, n, step):
            yield {"coefs": [FaceCoefficients(pts=i, time_base=tb, frame_index=i, shape=arrays["shape"][i],
                                               exp=arrays["exp"][i], pose=arrays["pose"][i])
                             for i in range(a, min(a + step, n))]}
            ctx.progress.advance(min(step, n - a))


# -- shard writer -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardWriterConfig:
    path: str = param("shard.npz", "file written in the output directory (atomically)")
    fps: float = param(25.0, "coefficient frame rate; 16000/fps must be whole", min=1e-3)

    def __post_init__(self) -> None:
        _check_fps(self.fps)


class ShardWriter(Node):
    """Write one video's coefficients and 16 kHz mono audio as a shard for ``datasets.build``.

    Audio is placed on the coefficients' timeline by timestamps: sample 0 of the shard is the
    time of the first coefficient frame (earlier audio is dropped, missing audio is silence).
    Samples are stored as 16-bit PCM, as the LMDB's FLAC will hold them. ``n_frames`` is
    ``min(coefficient frames, samples // (16000 / fps))``. Shard contents:
    :mod:`avflow_datasets.shard`.

    Ports:
      - in ``coefs`` (FaceCoefficients): per-frame coefficients.
      - in ``audio`` (AudioChunk): 16 kHz audio (``media.decode`` with ``audio_rate: 16000``).
      - out ``shard`` (File): the written shard.

    Example::

        shard:
          type: datasets.shard_writer
          inputs: {coefs: coefs.coefs, audio: decode.audio}
          params: {path: shard.npz, fps: 25}
    """

    type = "datasets.shard_writer"
    Config = ShardWriterConfig
    inputs = {"coefs": Port(FaceCoefficients, "per-frame coefficients"),
              "audio": Port(AudioChunk, "16 kHz audio")}
    outputs = {"shard": Port(File, "shard.npz with coefficients and audio")}
    queue_size = 256

    def open(self, ctx) -> None:
        self._coefs: list[FaceCoefficients] = []
        self._audio: list[AudioChunk] = []

    def process(self, port: str, item: Any, ctx) -> None:
        if port == "coefs":
            self._coefs.append(item)
            return
        if item.sample_rate != SAMPLE_RATE:
            raise InputError(f"audio is {item.sample_rate} Hz; the dataset needs {SAMPLE_RATE} Hz "
                             "(set media.decode audio_rate: 16000)")
        self._audio.append(item)

    def _audio_from(self, t0: Fraction) -> np.ndarray:
        """Mono samples starting at time ``t0``, placed by each chunk's timestamp."""
        if not self._audio:
            return np.zeros(0, np.float32)
        starts = [int(round((c.pts * c.time_base - t0) * SAMPLE_RATE)) for c in self._audio]
        end = max(s + c.n_samples for s, c in zip(starts, self._audio))
        out = np.zeros(max(end, 0), np.float32)
        for s, c in zip(starts, self._audio):
            mono = c.samples.mean(axis=0) if c.channels > 1 else c.samples[0]
            a, b = max(s, 0), s + c.n_samples
            if b > a:
                out[a:b] = mono[a - s:]
        return out

    def finish(self, ctx) -> dict[str, File]:
        from .shard import write_shard

        if not self._coefs:
            raise InputError("no coefficient frame reached datasets.shard_writer")
        if not self._audio or sum(c.n_samples for c in self._audio) == 0:
            raise InputError("no audio: the video has no audio samples")
        coefs = sorted(self._coefs, key=lambda c: c.frame_index)
        t0 = Fraction(coefs[0].pts) * coefs[0].time_base
        arrays = {k: np.stack([getattr(c, k) for c in coefs]).astype(np.float32) for k in COEF_KEYS}
        found = np.array([c.face_found for c in coefs])
        pcm = to_pcm16(self._audio_from(t0))
        path = ctx.output_path(self.config.path)
        write_shard(path, arrays, found, pcm, self.config.fps)
        return {"shard": File(pts=coefs[0].pts, time_base=coefs[0].time_base, path=path,
                              kind="application/x-npz")}


# -- the dataset builder -------------------------------------------------------------------------
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
        from .splits import check_ratios

        _check_fps(self.fps)
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
        from .build import build_dataset

        c = self.config
        report = build_dataset(
            c.videos, ctx.output_path(c.output), seg_len=c.seg_len, fps=c.fps, coef_dir=c.coef_dir,
            video_graph=c.video_graph, splits=tuple(c.splits), seed=c.seed, stats_frames=c.stats_frames,
            executor=c.executor, workers=c.workers, resume=c.resume, keep_shards=c.keep_shards,
            max_missing_faces=c.max_missing_faces, device=ctx.device, progress=ctx.progress,
            logger=ctx.logger, cancel_event=ctx.cancel_event)
        yield {"dataset": File(pts=0, time_base=Fraction(1), path=report.output, kind="application/x-lmdb"),
               "report": Record(pts=0, time_base=Fraction(1), data=report.as_dict())}


NODES = [FaceCoefs, NpzCoefs, ShardWriter, BuildDataset]
DIMS = {"shape": SHAPE_DIM, "exp": EXP_DIM, "pose": POSE_DIM}
__all__ = ["BuildDataset", "DIMS", "FaceCoefs", "NODES", "NpzCoefs", "ShardWriter"]
