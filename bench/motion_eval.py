"""Scorer experiments on composed fixtures (:mod:`avflow.testing.compose`), for ``bench/motion_scorer.py``.

Experiment code, not product: landmarks are computed once per fixture and cached, so that a
parameter search over ``sync.motion`` re-runs in seconds. The accuracy of the shipped decision
is measured by running the real graph (``tests/system/test_motion_accuracy.py``,
``bench/diarize.py``).

- :func:`tile_tracks` runs MediaPipe face mesh on each tile of a composed video and yields
  :class:`~avflow.payloads.TrackedFaces` (track id ``tile<k>``, landmarks in frame pixels), a
  stand-in for ``faces.detect -> faces.track -> faces.landmarks`` with known track/tile identity;
- :func:`read_audio` yields the file's audio as :class:`~avflow.payloads.AudioChunk`\\ s;
- :func:`score_matrix` runs a scorer node and returns an ``(n_frames, n_tracks)`` array;
- :func:`mouth_motion_scores` is the baseline that must fail: variance of the mouth opening;
- :func:`graph_decision` runs ``sync.motion -> sync.smooth -> sync.speaker`` (the nodes of
  ``graphs/diarize.yaml``, fed in stream order) and returns the speaker of every frame;
- :func:`reference_decision`: moving average, argmax, threshold for "nobody" (used for the
  baseline, whose scale has no recommended decision);
- :func:`evaluate` puts it together: frame accuracy (``avflow.testing.compose.frame_accuracy``,
  6-frame collar) of the motion scorer, decided as the graph decides, and of the mouth-motion
  baseline on one fixture.

.. code-block:: python

    fx = compose_speakers([...])
    result = evaluate(fx)   # {"motion": 0.96, "baseline": 0.41, "ms_per_frame": 0.9, ...}
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from avflow.payloads import AudioChunk, Box, FaceTrack, TrackedFaces
from avflow_faces import mesh
from avflow_faces.mesh import mesh_points


def tile_tracks(fixture, *, refine: bool = False) -> Iterator[TrackedFaces]:
    """Face-mesh landmarks of every tile of ``fixture`` (a ``ComposedVideo``), frame by frame.

    One ``FaceMesh(static_image_mode=False)`` per tile; a tile where no face is found that frame
    is left out of the frame's ``faces``. Boxes are the landmarks' bounding box.
    """
    import av

    from avflow_faces.models import face_mesh

    meshes = [face_mesh(static=False, max_faces=1) for _ in fixture.tiles]
    try:
        with av.open(str(fixture.path)) as container:
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                img = frame.to_ndarray(format="rgb24")
                faces = []
                for tile, tile_mesh in zip(fixture.tiles, meshes):
                    x, y, w, h = tile.box
                    result = tile_mesh.process(np.ascontiguousarray(img[y:y + h, x:x + w]))
                    if not result.multi_face_landmarks:
                        continue
                    pts = mesh_points(result.multi_face_landmarks[0].landmark, w, h)
                    pts[:, 0] += x
                    pts[:, 1] += y
                    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
                    faces.append(FaceTrack(f"tile{tile.index}", Box(float(lo[0]), float(lo[1]),
                                                                    float(hi[0] - lo[0]), float(hi[1] - lo[1])),
                                           landmarks=pts))
                yield TrackedFaces(pts=int(frame.pts), time_base=Fraction(frame.time_base), frame_index=index,
                                   width=img.shape[1], height=img.shape[0], faces=faces)
    finally:
        for tile_mesh in meshes:
            tile_mesh.close()


def save_tracks(tracks: Sequence[TrackedFaces], path: str | Path) -> None:
    """Cache face-mesh output (slow to make) in an ``.npz``."""
    n_frames = len(tracks)
    ids = sorted({f.track_id for t in tracks for f in t.faces})
    lm = np.full((n_frames, len(ids), 468, 3), np.nan, np.float32)
    for i, t in enumerate(tracks):
        for f in t.faces:
            lm[i, ids.index(f.track_id)] = f.landmarks[:468]
    np.savez_compressed(path, landmarks=lm, ids=np.array(ids), pts=np.array([t.pts for t in tracks]),
                        tb=np.array([tracks[0].time_base.numerator, tracks[0].time_base.denominator]),
                        size=np.array([tracks[0].width, tracks[0].height]))


def load_tracks(path: str | Path) -> list[TrackedFaces]:
    with np.load(path) as data:
        landmarks, ids, all_pts = data["landmarks"], data["ids"], data["pts"]
        tb = Fraction(int(data["tb"][0]), int(data["tb"][1]))
        size = data["size"]
    out = []
    for i, pts in enumerate(all_pts):
        faces = []
        for k, tid in enumerate(ids):
            lm = landmarks[i, k].copy()
            if np.isnan(lm).any():
                continue
            lo, hi = lm[:, :2].min(0), lm[:, :2].max(0)
            faces.append(FaceTrack(str(tid), Box(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]),
                                                 float(hi[1] - lo[1])), landmarks=lm))
        out.append(TrackedFaces(pts=int(pts), time_base=tb, frame_index=i, width=int(size[0]),
                                height=int(size[1]), faces=faces))
    return out


def read_audio(path: str | Path, chunk: float = 0.2) -> Iterator[AudioChunk]:
    """The file's audio as it comes (native rate and channels), in ``chunk``-second pieces."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        buf: list[np.ndarray] = []
        start = None
        size = 0
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if data.ndim == 1 or frame.format.is_packed:
                data = data.reshape(-1, len(frame.layout.channels)).T
            if start is None:
                start = int(round(float(frame.pts * frame.time_base) * rate)) if frame.pts is not None else 0
            buf.append(data.astype(np.float32))
            size += data.shape[1]
            if size >= chunk * rate:
                samples = np.concatenate(buf, axis=1)
                yield AudioChunk(pts=start, time_base=Fraction(1, rate), samples=samples, sample_rate=rate)
                start += samples.shape[1]
                buf, size = [], 0
        if buf:
            yield AudioChunk(pts=start, time_base=Fraction(1, rate), samples=np.concatenate(buf, axis=1),
                             sample_rate=rate)


def interleave(tracks: Sequence[TrackedFaces], audio: Sequence[AudioChunk]) -> Iterator[tuple[str, object]]:
    """Both streams merged by time, as a scheduler would deliver them: ``(port, item)``."""
    i = j = 0
    while i < len(tracks) or j < len(audio):
        if j >= len(audio) or (i < len(tracks) and tracks[i].time <= audio[j].time):
            yield "tracks", tracks[i]
            i += 1
        else:
            yield "audio", audio[j]
            j += 1


def score_matrix(node_cls, tracks: Sequence[TrackedFaces], audio: Sequence[AudioChunk],
                 track_ids: Sequence[str], **params) -> np.ndarray:
    """Run a scorer node (ports tracks + audio -> scores) and return ``(n_frames, n_tracks)``
    values (NaN where it gave None)."""
    from avflow.testing import NodeRunner

    runner = NodeRunner(node_cls, **params)
    try:
        for port, item in interleave(tracks, audio):
            runner.feed(port, item)
        out = runner.finish()
    finally:
        runner.close()
    mat = np.full((len(tracks), len(track_ids)), np.nan)
    col = {t: k for k, t in enumerate(track_ids)}
    for s in out["scores"]:
        if s.track_id in col and s.value is not None:
            mat[s.frame_index, col[s.track_id]] = s.value
    return mat




def lip_gaps(tracks: Sequence[TrackedFaces], track_ids: Sequence[str]) -> np.ndarray:
    """Inner-lip gap over outer-eye-corner distance, ``(n_frames, n_tracks)``, NaN where missing."""
    out = np.full((len(tracks), len(track_ids)), np.nan)
    col = {t: k for k, t in enumerate(track_ids)}
    for i, t in enumerate(tracks):
        for f in t.faces:
            if f.track_id in col and f.landmarks is not None:
                lm = f.landmarks
                gap = np.linalg.norm(lm[mesh.INNER_LIP_TOP, :2] - lm[mesh.INNER_LIP_BOTTOM, :2])
                out[i, col[f.track_id]] = gap / max(mesh.inter_ocular(lm), 1e-6)
    return out


def mouth_motion_scores(opening: np.ndarray, window: int = 25) -> np.ndarray:
    """Baseline: standard deviation of the mouth opening over a centred window (no audio)."""
    n = opening.shape[0]
    out = np.full(opening.shape, np.nan)
    half = window // 2
    for i in range(n):
        seg = opening[max(0, i - half): i + half + 1]
        with np.errstate(all="ignore"):
            out[i] = np.nanstd(seg, axis=0)
    return out


def reference_decision(scores: np.ndarray, *, window: int = 13, threshold: float = 0.0) -> np.ndarray:
    """Moving average over ``window`` frames (NaN ignored), then per frame the argmax track, or -1
    where the best smoothed score is below ``threshold`` or no track has a score."""
    n, m = scores.shape
    valid = ~np.isnan(scores)
    filled = np.where(valid, scores, 0.0)
    kernel = np.ones(window)
    num = np.stack([np.convolve(filled[:, k], kernel, mode="same") for k in range(m)], axis=1)
    den = np.stack([np.convolve(valid[:, k].astype(float), kernel, mode="same") for k in range(m)], axis=1)
    with np.errstate(all="ignore"):
        smooth = np.where(den > 0, num / np.maximum(den, 1), -np.inf)
    best = np.argmax(smooth, axis=1)
    top = smooth[np.arange(n), best]
    return np.where(np.isfinite(top) & (top >= threshold), best, -1)


def graph_decision(tracks: Sequence[TrackedFaces], audio: Sequence[AudioChunk], *, smooth_window: int = 9,
                   scorer_params: dict | None = None, **speaker_params) -> dict:
    """The decision of ``graphs/diarize.yaml`` from given landmarks: ``sync.motion``, then
    ``sync.smooth`` (``smooth_window``), then ``sync.speaker`` (``speaker_params``; the graph sets
    ``min_turn`` 8), each fed in the order a scheduler would deliver the items.

    :returns: ``{"active": [track id or None per frame], "scores": [Score, ...] (raw),
        "scorer_s": seconds spent in sync.motion}``.
    """
    import time

    from avflow.testing import NodeRunner

    from avflow_sync.nodes.motion import MotionScorer
    from avflow_sync.nodes.smooth import ScoreSmoother
    from avflow_sync.nodes.speaker import SpeakerDecision

    scorer = NodeRunner(MotionScorer, **(scorer_params or {}))
    smoother = NodeRunner(ScoreSmoother, window=smooth_window)
    speaker = NodeRunner(SpeakerDecision, **speaker_params)
    spent = 0.0

    def score(feed) -> None:
        nonlocal spent
        n = len(scorer.outputs["scores"])
        start = time.perf_counter()
        feed()
        spent += time.perf_counter() - start
        for item in scorer.outputs["scores"][n:]:
            m = len(smoother.outputs["scores"])
            smoother.feed("scores", item)
            for smoothed in smoother.outputs["scores"][m:]:
                speaker.feed("scores", smoothed)

    try:
        for port, item in interleave(tracks, audio):
            speaker.feed(port, item)  # tracks and audio reach sync.speaker directly
            score(lambda: scorer.feed(port, item))
        score(scorer.finish)
        m = len(smoother.outputs["scores"])
        smoother.finish()
        for smoothed in smoother.outputs["scores"][m:]:
            speaker.feed("scores", smoothed)
        records = speaker.finish()["active"]
    finally:
        for runner in (scorer, smoother, speaker):
            runner.close()
    active: list = [None] * len(tracks)
    for r in records:
        if 0 <= r.data["frame_index"] < len(active):
            active[r.data["frame_index"]] = r.data["active"]
    return {"active": active, "scores": scorer.outputs["scores"], "scorer_s": spent}


def evaluate(fixture, tracks: Sequence[TrackedFaces] | None = None, *, window: int = 9, min_turn: int = 8,
             baseline_thresholds: Sequence[float] = (0.0, 0.005, 0.01, 0.02), collar: int = 6,
             speaker_params: dict | None = None, **params) -> dict:
    """Frame accuracy of ``sync.motion`` (decided as the graph decides) and of the mouth-motion
    baseline on a composed fixture.

    :param fixture: a :class:`avflow.testing.compose.ComposedVideo`.
    :param tracks: its landmarks (default: :func:`tile_tracks`, MediaPipe on each tile).
    :param window: ``sync.smooth``'s window (frames), also the baseline's moving average.
    :param min_turn: ``sync.speaker``'s minimum turn (``graphs/diarize.yaml``: 8).
    :param speaker_params: other ``sync.speaker`` parameters (default: its defaults).
    :param baseline_thresholds: the baseline gets the best of these (its scale is different).
    :param params: ``sync.motion`` parameters.
    :returns: ``{"motion", "baseline", "ms_per_frame", "decision", "scores"}``: ``decision`` the
        tile index per frame (-1: nobody), ``scores`` the raw ``(n_frames, n_tiles)`` scores.
    """
    from avflow_sync.scoring import frame_accuracy

    tracks = list(tracks) if tracks is not None else list(tile_tracks(fixture))
    ids = [f"tile{t.index}" for t in fixture.tiles]
    audio = list(read_audio(fixture.path))
    run = graph_decision(tracks, audio, smooth_window=window, scorer_params=params, min_turn=min_turn,
                         **(speaker_params or {}))
    col = {t: k for k, t in enumerate(ids)}
    decision = np.array([-1 if a is None else col.get(a, -1) for a in run["active"]])
    scores = np.full((len(tracks), len(ids)), np.nan)
    for s in run["scores"]:
        if s.track_id in col and s.value is not None:
            scores[s.frame_index, col[s.track_id]] = s.value
    motion = frame_accuracy(fixture, list(decision), collar=collar)
    base = mouth_motion_scores(lip_gaps(tracks, ids))
    baseline = max(frame_accuracy(fixture, list(reference_decision(base, window=window, threshold=th)),
                                  collar=collar) for th in baseline_thresholds)
    return {"motion": motion, "baseline": baseline, "ms_per_frame": 1000 * run["scorer_s"] / max(1, len(tracks)),
            "decision": decision, "scores": scores}
