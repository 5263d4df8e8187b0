"""Compose multi-speaker test videos with exact ground truth ("who speaks when").

Several single-speaker clips (a person talking to camera, audio in sync) and optionally still
portraits are tiled into one frame. A turn schedule says whose audio is heard when; the person
whose audio is heard shows the part of their clip that belongs to that audio, the others either
keep talking *out of sync* (they show another, time-shifted part of their own clip, whose audio is
not heard) or freeze. Silence gaps (nobody heard) can be scheduled too. The result is an mp4
(h264 + aac, written with PyAV) and a :class:`ComposedVideo` describing exactly what was made:
tile boxes, turns, and per output frame whose audio is heard and who is actually speaking.

.. code-block:: python

    from avflow.testing.compose import compose_speakers, random_turns

    fx = compose_speakers(
        [media / "talking1.mp4", media / "talking2.mp4", media / "talking3.mp4", media / "monalisa.png"],
        turns=random_turns([0, 1, 2], duration=15.0, min_turn=2.0, max_turn=4.0, seed=1),
        size=(1280, 720), fps=25.0)
    fx.path            # .../composed.mp4
    fx.active[100]     # tile index speaking at frame 100, or None
    fx.tile_at(x, y)   # which tile a detected face centre belongs to
    fx.save("truth.json"); ComposedVideo.load("truth.json")

    fx.rttm("reference.rttm")   # then: avflow eval reference.rttm out/   (DER, JER, frame accuracy)

    # a long input for benchmarks: 3 talking tiles + a portrait, 720p, clips looped
    compose_benchmark(media, duration=120.0, out="long.mp4")

Public API: :func:`compose_speakers`, :func:`random_turns`, :func:`compose_benchmark`,
:func:`default_sources`, :class:`ComposedVideo` (``save``/``load``), :class:`Tile`,
:class:`Turn` and :func:`speech_mask`. Scoring a diarization against a fixture lives with the
diarization (``avflow eval`` with :meth:`ComposedVideo.rttm`, or ``avflow_sync.scoring``).

How it works. Every talking tile ``j`` has a *source clock* ``c_j(t)``: the time in its own
clip that it shows at output time ``t``, looping over the clip (``c_j(t) mod D_j``). With
``others="shifted"`` the clock always runs (``c_j(t) = offset_j + t``): every talking tile moves
its lips all the time, and only the heard one is in sync with the audio. With ``others="still"``
the clock only runs while the tile is heard: the others freeze. The audio at time ``t`` is the
heard tile's clip audio at ``c_j(t)``, so the heard tile is exactly in sync (up to the source
clip's own A/V alignment, which is kept: source video and audio timestamps are used as they are).
Video frames are resampled by timestamps: output frame ``i`` (at ``i / fps``) shows, for each
tile, the last source frame whose timestamp is ``<=`` its source position.

Ground truth. ``heard[i]`` is the tile whose audio is heard at frame ``i`` (None in a gap);
``active[i]`` is ``heard[i]`` where the heard audio is speech, None in the speaker's own pauses:
the clips have pauses of up to 1.5 s, and nobody speaks during them. Speech is found on the
source audio by an energy detector (10 ms hops, threshold ``vad_db`` below the clip's loud level,
pauses shorter than ``min_pause`` bridged), so it is exact with respect to what was composed.

Memory: the output is streamed frame by frame (each source clip is decoded sequentially and
re-opened when it loops), so a long benchmark input costs no more memory than a short one; only
the source clips' audio (seconds) and per-frame ground-truth lists are held.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a"}
BACKGROUND = (24, 24, 24)


@dataclass(frozen=True)
class Tile:
    """One picture in the composed frame.

    :param index: position in the ``sources`` list (the "speaker id" of the ground truth).
    :param source: clip or image it shows.
    :param kind: ``"talking"`` (a clip with audio), ``"still"`` (an image, never heard) or
        ``"offscreen"`` (audio only: a voice heard whose face is not in the picture; box empty).
    :param box: ``(x, y, w, h)`` of the picture in output pixels.
    :param offset: source-clock offset in seconds (where in its clip the tile starts).
    :param duration: loop length of the source clip in seconds (0 for a still).
    :param audio_delay: seconds the tile's heard audio comes after its lips (0: in sync).
    :param pitch: semitones the tile's audio is shifted by (another voice, the same timing).
    :param speech: whether the tile's audio is speech (False: music or noise, never a speaker).
    """

    index: int
    source: str
    kind: Literal["talking", "still", "offscreen"]
    box: tuple[int, int, int, int]
    offset: float = 0.0
    duration: float = 0.0
    audio_delay: float = 0.0
    pitch: float = 0.0
    speech: bool = True

    def contains(self, x: float, y: float) -> bool:
        bx, by, bw, bh = self.box
        return bx <= x < bx + bw and by <= y < by + bh


@dataclass(frozen=True)
class Turn:
    """Whose audio is heard from ``start`` to ``end`` seconds (``tile=None``: silence)."""

    start: float
    end: float
    tile: int | None


@dataclass
class ComposedVideo:
    """A composed fixture: the file and its exact ground truth.

    ``heard`` and ``active`` have one entry per output frame (frame ``i`` is at ``i / fps``
    seconds): the tile index or None. See the module docstring for their meaning. ``voiced``
    is ``active`` with off-screen voices too: the source whose speech is heard, visible or not.
    """

    path: Path
    fps: float
    n_frames: int
    width: int
    height: int
    sample_rate: int
    duration: float
    tiles: list[Tile]
    turns: list[Turn]
    heard: list[int | None] = field(repr=False)
    active: list[int | None] = field(repr=False)
    voiced: list[int | None] = field(default_factory=list, repr=False)
    overlaps: list[Turn] = field(default_factory=list)

    def frame_time(self, index: int) -> float:
        return index / self.fps

    def tile_at(self, x: float, y: float) -> int | None:
        """Index of the tile whose picture contains the point (a face box centre), or None."""
        for tile in self.tiles:
            if tile.contains(x, y):
                return tile.index
        return None

    def segments(self, which: Literal["active", "heard", "voiced"] = "active") -> list[dict]:
        """Runs of the same speaker as ``[{"speaker": tile, "start": s, "end": s}]`` (None omitted)."""
        labels = {"active": self.active, "heard": self.heard, "voiced": self.voiced}[which]
        out: list[dict] = []
        start = 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start]:
                if labels[start] is not None:
                    out.append({"speaker": labels[start], "start": start / self.fps, "end": i / self.fps})
                start = i
        return out

    def rttm(self, path: str | Path, file_id: str | None = None) -> Path:
        """Write the reference as RTTM: one line per run of speech of a source (visible or off
        screen), speaker ``tile_<index>``; the reference ``avflow eval`` compares a run with."""
        from ..io import write_text_atomic

        fid = file_id or self.path.stem
        lines = [f"SPEAKER {fid} 1 {s['start']:.3f} {s['end'] - s['start']:.3f} <NA> <NA> tile_{s['speaker']} <NA> <NA>"
                 for s in self.segments("voiced")]
        return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        data["schema"] = "avflow.composed/1"
        return data

    def save(self, path: str | Path) -> Path:
        """Write the ground truth as JSON (atomically); :meth:`load` reads it back."""
        from ..io import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "ComposedVideo":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data.pop("schema", None)
        data["path"] = Path(data["path"])
        data["tiles"] = [Tile(**{**t, "box": tuple(t["box"])}) for t in data["tiles"]]
        data["turns"] = [Turn(**t) for t in data["turns"]]
        data["overlaps"] = [Turn(**t) for t in data.get("overlaps", [])]
        return cls(**data)


# -- turn schedules ------------------------------------------------------------------------------

def random_turns(speakers: Sequence[int], duration: float, *, min_turn: float = 2.0, max_turn: float = 4.0,
                 gap_prob: float = 0.0, gap: tuple[float, float] = (0.6, 1.2), seed: int = 0) -> list[Turn]:
    """A random schedule covering ``[0, duration)``: turns of ``min_turn..max_turn`` seconds.

    Consecutive turns always change speaker; after each turn a silence gap of ``gap`` seconds
    (uniform) follows with probability ``gap_prob``.
    """
    if not speakers:
        raise ValueError("random_turns needs at least one speaker")
    rng = random.Random(seed)
    turns: list[Turn] = []
    t, last = 0.0, None
    while t < duration - 1e-9:
        choices = [s for s in speakers if s != last] or list(speakers)
        who = rng.choice(choices)
        end = min(duration, t + rng.uniform(min_turn, max_turn))
        if duration - end < min_turn / 2:  # no stub turn at the end
            end = duration
        turns.append(Turn(t, end, who))
        t, last = end, who
        if t < duration and rng.random() < gap_prob:
            end = t + rng.uniform(*gap)
            if duration - end >= min_turn:  # a gap is always followed by a whole turn
                turns.append(Turn(t, end, None))
                t = end
    return turns


def _normalise_turns(turns: Sequence[Turn | tuple], tiles: list[Tile],
                     duration: float | None) -> tuple[list[Turn], float]:
    out = [t if isinstance(t, Turn) else Turn(float(t[0]), float(t[1]), None if t[2] is None else int(t[2]))
           for t in turns]
    if not out:
        raise ValueError("the turn schedule is empty")
    out.sort(key=lambda t: t.start)
    for prev, nxt in zip(out, out[1:]):
        if nxt.start < prev.end - 1e-9:
            raise ValueError(f"turns overlap: {prev} and {nxt}")
    for t in out:
        if t.end <= t.start:
            raise ValueError(f"turn ends before it starts: {t}")
        if t.tile is not None:
            if not 0 <= t.tile < len(tiles):
                raise ValueError(f"turn {t} names tile {t.tile}; tiles are 0..{len(tiles) - 1}")
            if tiles[t.tile].kind == "still":
                raise ValueError(f"turn {t} names tile {t.tile} ({tiles[t.tile].source}), a still image without audio")
    total = float(duration) if duration is not None else out[-1].end
    return out, total


# -- sources --------------------------------------------------------------------------------------

def _fit(src_w: int, src_h: int, cell: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The largest even-sized box of the source's aspect ratio centred in ``cell``."""
    cx, cy, cw, ch = cell
    scale = min(cw / src_w, ch / src_h)
    w = max(2, int(src_w * scale) // 2 * 2)
    h = max(2, int(src_h * scale) // 2 * 2)
    return cx + (cw - w) // 2, cy + (ch - h) // 2, w, h


def _layout(sizes: list[tuple[int, int]], width: int, height: int,
            grid: tuple[int, int] | None) -> list[tuple[int, int, int, int]]:
    n = len(sizes)
    if n == 0:
        return []
    if grid is None:  # the grid that shows the sources biggest
        best = None
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            cw, ch = width // cols, height // rows
            area = sum(_fit(w, h, (0, 0, cw, ch))[2] * _fit(w, h, (0, 0, cw, ch))[3] for w, h in sizes)
            if best is None or area > best[0]:
                best = (area, rows, cols)
        grid = (best[1], best[2])
    rows, cols = grid
    if rows * cols < n:
        raise ValueError(f"grid {rows}x{cols} has no room for {n} tiles")
    cw, ch = width // cols, height // rows
    return [_fit(w, h, ((k % cols) * cw, (k // cols) * ch, cw, ch)) for k, (w, h) in enumerate(sizes)]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def _probe_clip(path: Path) -> tuple[int, int, float, bool]:
    """(width, height, loop duration in seconds, has audio) of a clip."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path}: no video stream")
        vs = c.streams.video[0]
        width, height = vs.codec_context.width, vs.codec_context.height
        has_audio = bool(c.streams.audio)
        last, step = None, None
        for packet in c.demux(vs):  # packet timestamps only: no decoding
            if packet.pts is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * vs.time_base)
            if last is None or end > last:
                last = end
            if packet.duration:
                step = float(packet.duration * vs.time_base)
        if last is None:
            raise ValueError(f"{path}: no video frames")
        if step is None and vs.average_rate:
            last += 1.0 / float(vs.average_rate)
    return width, height, last, has_audio


def _load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """The clip's audio as float32 mono at ``sample_rate``, from t=0 of the media timeline."""
    import av
    from av.audio.resampler import AudioResampler

    resampler = AudioResampler(format="fltp", layout="mono", rate=sample_rate)
    parts: list[np.ndarray] = []
    first: float | None = None
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        for frame in c.decode(stream):
            if first is None and frame.pts is not None:
                first = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray()[0])
        for out in resampler.resample(None):
            parts.append(out.to_ndarray()[0])
    audio = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    lead = int(round(max(0.0, first or 0.0) * sample_rate))  # audio that starts late keeps its place
    return np.concatenate([np.zeros(lead, np.float32), audio])


def speech_mask(audio: np.ndarray, sample_rate: int, *, hop: float = 0.01, vad_db: float = 25.0,
                min_pause: float = 0.3, min_speech: float = 0.1) -> np.ndarray:
    """Energy speech detector: one bool per ``hop`` seconds of ``audio`` (mono float).

    A hop is speech when its RMS level is within ``vad_db`` dB of the clip's loud level (95th
    percentile of hop levels) and above -60 dBFS; pauses shorter than ``min_pause`` are bridged
    and speech bursts shorter than ``min_speech`` dropped.
    """
    n = max(1, int(round(hop * sample_rate)))
    m = len(audio) // n
    if m == 0:
        return np.zeros(0, bool)
    frames = audio[: m * n].reshape(m, n).astype(np.float64)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = np.percentile(level, 95)
    mask = (level > loud - vad_db) & (level > -60.0)

    def runs(values: np.ndarray, value: bool) -> Iterator[tuple[int, int]]:
        i = 0
        while i < len(values):
            if values[i] == value:
                j = i
                while j < len(values) and values[j] == value:
                    j += 1
                yield i, j
                i = j
            else:
                i += 1

    for a, b in list(runs(mask, False)):
        if 0 < a and b < len(mask) and (b - a) * hop < min_pause:
            mask[a:b] = True
    for a, b in list(runs(mask, True)):
        if (b - a) * hop < min_speech:
            mask[a:b] = False
    return mask


class _ClipVideo:
    """Sequential reader of a looping clip: frames at non-decreasing source times, tile-sized."""

    def __init__(self, path: Path, size: tuple[int, int], duration: float):
        self.path, self.size, self.duration = path, size, duration
        self._container = None
        self._frames: Iterator | None = None
        self._loop = -1
        self._pos = -1.0
        self._current: tuple[float, np.ndarray] | None = None  # (time, tile image)
        self._next: tuple[float, object] | None = None  # (time, av frame) not yet shown

    def _open(self, loop: int) -> None:
        import av

        self.close()
        self._container = av.open(str(self.path))
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self._loop, self._pos, self._current, self._next = loop, -1.0, None, None

    def _pull(self) -> tuple[float, object] | None:
        for frame in self._frames:
            if frame.pts is not None:
                return float(frame.pts * frame.time_base), frame
        return None

    def frame_at(self, clock: float) -> np.ndarray:
        loop, pos = divmod(clock, self.duration)
        if int(loop) != self._loop or pos < self._pos:
            self._open(int(loop))
        self._pos = pos
        if self._next is None:
            self._next = self._pull()
        # Show the last frame whose time is <= pos (the first frame if none is yet).
        while self._next is not None and (self._current is None or self._next[0] <= pos):
            t, frame = self._next
            self._next = self._pull()
            if self._next is None or self._next[0] > pos:
                self._current = (t, _resize(frame.to_ndarray(format="rgb24"), *self.size))
                break
        if self._current is None:
            raise ValueError(f"{self.path}: no decodable video frame")
        return self._current[1]

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


@dataclass
class _Source:
    tile: Tile
    audio: np.ndarray | None = None  # mono at the output rate, loop length
    speech: np.ndarray | None = None  # bool per 10 ms of ``audio``
    video: _ClipVideo | None = None
    still: np.ndarray | None = None


def _active_time_before(turns: list[Turn], tile: int, t: np.ndarray) -> np.ndarray:
    """Seconds that ``tile`` has been heard before each time in ``t``."""
    out = np.zeros_like(t, dtype=np.float64)
    for turn in turns:
        if turn.tile == tile:
            out += np.clip(t - turn.start, 0.0, turn.end - turn.start)
    return out


# -- the composer ---------------------------------------------------------------------------------

def compose_speakers(
    sources: Sequence[str | Path],
    turns: Sequence[Turn | tuple] | None = None,
    *,
    duration: float | None = None,
    out: str | Path | None = None,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25.0,
    sample_rate: int = 16000,
    others: Literal["shifted", "still"] = "shifted",
    offsets: Sequence[float] | None = None,
    audio_delay: Sequence[float] | None = None,
    pitch: Sequence[float] | None = None,
    nonspeech: Sequence[int] = (),
    overlaps: Sequence[Turn | tuple] = (),
    overlap_gain: float = 0.5,
    grid: tuple[int, int] | None = None,
    fade: float = 0.005,
    vad_db: float = 25.0,
    min_pause: float = 0.3,
    crf: int = 20,
    preset: str = "veryfast",
    keyint: int | None = None,
    seed: int = 0,
) -> ComposedVideo:
    """Tile talking clips (and still images) into one video with a known turn schedule.

    :param sources: clips with audio (talking tiles, which can be heard), images (still tiles:
        ``.png``, ``.jpg``...) or audio files (off-screen voices: ``.wav``, ``.flac``...: heard,
        never seen). The tile index is the position in this list.
    :param turns: ``Turn(start, end, tile)`` or ``(start, end, tile)`` tuples; ``tile=None`` is a
        silence gap; uncovered time is silent too. Default: :func:`random_turns` over the talking
        tiles, 2-4 s turns, 15 s (or ``duration``).
    :param duration: output length in seconds (default: the end of the last turn). Clips loop.
    :param out: output mp4 path (default: ``composed.mp4`` in a new temporary folder).
    :param size: output ``(width, height)``, made even.
    :param fps: output frame rate (sources are resampled by their timestamps).
    :param sample_rate: output audio rate (mono AAC).
    :param others: what talking tiles do while not heard: ``"shifted"`` keep playing their own
        clip (lips move, out of sync with what is heard), ``"still"`` freeze.
    :param offsets: source-clock offset per tile in seconds (default: tile ``k`` of ``n``
        starts at ``k / n`` of its clip, so two tiles showing the same clip differ).
    :param audio_delay: per source, seconds its heard audio comes after its lips (a real
        recording's A/V offset); the ground truth follows the audio.
    :param pitch: per source, semitones its audio is shifted by (librosa), so that two tiles of
        one clip are two voices with the same timing.
    :param nonspeech: indices of sources whose audio is not speech (music, noise): heard, never
        a speaker nor a voice in the ground truth.
    :param overlaps: extra turns heard *on top of* the schedule (overlapping speech), at
        ``overlap_gain``; the ground truth keeps the schedule's speaker (the louder one) and the
        overlapping source is listed in ``ComposedVideo.overlaps``. Needs ``others="shifted"`` (a
        tile's lips then always follow its own audio).
    :param grid: ``(rows, cols)`` of the visible tiles; default: the grid that shows them biggest.
    :param fade: seconds of linear fade at every turn change (avoids clicks).
    :param vad_db: speech detector threshold, dB below the clip's loud level (see :func:`speech_mask`).
    :param min_pause: pauses shorter than this (seconds) count as speech in ``active``.
    :param crf: x264 quality (lower is better).
    :param preset: x264 speed preset.
    :param keyint: most frames between key frames (None: x264's 250); live streams use 1-2 s, and
        an HLS segment or a receiver joining late starts at one.
    :param seed: seed of the default random schedule.
    :returns: the :class:`ComposedVideo` (path and ground truth).
    """
    import av

    from ..io import atomic_path

    if not sources:
        raise ValueError("compose_speakers needs at least one source")
    if others not in ("shifted", "still"):
        raise ValueError(f"others must be 'shifted' or 'still', got {others!r}")
    if fps <= 0 or size[0] < 2 or size[1] < 2:
        raise ValueError(f"bad fps {fps} or size {size}")
    width, height = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2
    paths = [Path(s) for s in sources]
    probes: list[tuple[str, int, int, float]] = []  # kind, w, h, duration
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"compose_speakers: no such source {p}")
        if p.suffix.lower() in AUDIO_SUFFIXES:
            import soundfile

            probes.append(("offscreen", 0, 0, float(soundfile.info(str(p)).duration)))
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            import cv2

            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"compose_speakers: cannot read image {p}")
            probes.append(("still", img.shape[1], img.shape[0], 0.0))
        else:
            w, h, d, has_audio = _probe_clip(p)
            if not has_audio:
                raise ValueError(f"compose_speakers: {p} has no audio stream; a talking tile needs one")
            probes.append(("talking", w, h, d))
    visible = [k for k, pr in enumerate(probes) if pr[0] != "offscreen"]
    placed = dict(zip(visible, _layout([probes[k][1:3] for k in visible], width, height, grid)))
    boxes = [placed.get(k, (0, 0, 0, 0)) for k in range(len(paths))]
    n = len(paths)
    if offsets is None:
        offsets = [k / n * probes[k][3] for k in range(n)]
    delays = list(audio_delay) if audio_delay is not None else [0.0] * n
    pitches = list(pitch) if pitch is not None else [0.0] * n
    for name, values in (("offsets", offsets), ("audio_delay", delays), ("pitch", pitches)):
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values for {n} sources")
    tiles = [Tile(k, str(p), probes[k][0], boxes[k], float(offsets[k]), probes[k][3],  # type: ignore[arg-type]
                  float(delays[k]), float(pitches[k]), k not in set(nonspeech))
             for k, p in enumerate(paths)]
    if turns is None:
        talking = [t.index for t in tiles if t.kind != "still"]
        turns = random_turns(talking, duration if duration is not None else 15.0, seed=seed)
    turn_list, total = _normalise_turns(turns, tiles, duration)
    extra = [t if isinstance(t, Turn) else Turn(float(t[0]), float(t[1]), int(t[2])) for t in overlaps]
    if extra and others != "shifted":
        raise ValueError("overlaps need others='shifted' (lips that follow their own audio all the time)")
    for t in extra:
        if t.tile is None or not 0 <= t.tile < len(tiles) or tiles[t.tile].kind == "still":
            raise ValueError(f"overlap {t} must name a tile with audio")

    sources_: list[_Source] = []
    for tile in tiles:
        src = _Source(tile)
        if tile.kind == "still":
            import cv2

            img = cv2.cvtColor(cv2.imread(tile.source, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            src.still = _resize(img, tile.box[2], tile.box[3])
        else:
            audio = _load_audio(Path(tile.source), sample_rate)
            loop = int(round(tile.duration * sample_rate))
            audio = np.pad(audio, (0, max(0, loop - len(audio))))[:loop]
            if tile.pitch:
                import librosa

                audio = librosa.effects.pitch_shift(audio, sr=sample_rate, n_steps=tile.pitch).astype(np.float32)
            src.audio = audio
            src.speech = speech_mask(audio, sample_rate, vad_db=vad_db, min_pause=min_pause)
            if not tile.speech:
                src.speech[:] = False
            if tile.kind == "talking":
                src.video = _ClipVideo(Path(tile.source), (tile.box[2], tile.box[3]), tile.duration)
        sources_.append(src)

    def owner_at(times: np.ndarray) -> np.ndarray:
        own = np.full(times.shape, -1, np.int64)
        for turn in turn_list:
            if turn.tile is not None:
                own[(times >= turn.start) & (times < turn.end)] = turn.tile
        return own

    def clock(tile: Tile, times: np.ndarray) -> np.ndarray:
        if others == "shifted":
            return tile.offset + times
        return tile.offset + _active_time_before(turn_list, tile.index, times)

    # Gain envelope: short fades around every change of the heard tile.
    changes = sorted({t.start for t in turn_list} | {t.end for t in turn_list})

    def gain_at(times: np.ndarray) -> np.ndarray:
        g = np.ones(times.shape, np.float32)
        if fade > 0:
            for c in changes:
                g = np.minimum(g, np.clip(np.abs(times - c) / fade, 0.0, 1.0).astype(np.float32))
        return g

    def audio_block(s0: int, s1: int) -> np.ndarray:
        times = np.arange(s0, s1) / sample_rate
        own = owner_at(times)
        block = np.zeros(s1 - s0, np.float32)
        for src in sources_:
            sel = own == src.tile.index
            if src.audio is None or not sel.any():
                continue
            heard_at = clock(src.tile, times[sel] - src.tile.audio_delay)
            idx = np.floor(heard_at * sample_rate).astype(np.int64) % len(src.audio)
            block[sel] = src.audio[idx]
        block *= gain_at(times)
        for t in extra:
            sel = (times >= t.start) & (times < t.end)
            src = sources_[t.tile]
            if sel.any():
                idx = np.floor(clock(src.tile, times[sel] - src.tile.audio_delay) * sample_rate).astype(np.int64)
                ramp = np.clip(np.minimum(times[sel] - t.start, t.end - times[sel]) / max(fade, 1e-6), 0, 1)
                block[sel] += overlap_gain * src.audio[idx % len(src.audio)] * ramp.astype(np.float32)
        return block

    n_frames = int(math.ceil(total * fps - 1e-9))
    frame_times = np.arange(n_frames) / fps
    owners = owner_at(frame_times)
    heard: list[int | None] = [None if o < 0 else int(o) for o in owners]
    voiced: list[int | None] = []
    for i, o in enumerate(owners):
        if o < 0:
            voiced.append(None)
            continue
        src = sources_[o]
        pos = float(clock(src.tile, frame_times[i:i + 1] - src.tile.audio_delay)[0]) % src.tile.duration
        k = min(int(pos / 0.01), len(src.speech) - 1)
        voiced.append(int(o) if k >= 0 and src.speech[k] else None)
    active = [v if v is not None and tiles[v].kind == "talking" else None for v in voiced]

    if out is None:
        out = Path(tempfile.mkdtemp(prefix="avflow-compose-")) / "composed.mp4"
    out = Path(out)
    rate = Fraction(fps).limit_denominator(1001)
    canvas = np.empty((height, width, 3), np.uint8)
    try:
        with atomic_path(out) as tmp, av.open(str(tmp), "w") as container:
            x264 = {"crf": str(crf), "preset": preset, **({"g": str(int(keyint))} if keyint else {})}
            vs = container.add_stream("libx264", rate=rate, options=x264)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.thread_type = "AUTO"
            aus = container.add_stream("aac", rate=sample_rate, layout="mono")
            aac_size = 1024
            pending = np.zeros(0, np.float32)
            written = 0  # samples handed to the encoder
            produced = 0  # samples computed
            for i in range(n_frames):
                canvas[:] = BACKGROUND
                for src in sources_:
                    x, y, w, h = src.tile.box
                    if src.still is not None:
                        canvas[y:y + h, x:x + w] = src.still
                    elif src.video is not None:
                        c = float(clock(src.tile, frame_times[i:i + 1])[0])
                        canvas[y:y + h, x:x + w] = src.video.frame_at(c)
                frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                for packet in vs.encode(frame):
                    container.mux(packet)
                # Audio up to the end of this frame, interleaved with the video.
                upto = int(round((i + 1) / fps * sample_rate)) if i + 1 < n_frames else int(round(total * sample_rate))
                if upto > produced:
                    pending = np.concatenate([pending, audio_block(produced, upto)])
                    produced = upto
                while len(pending) >= aac_size or (i + 1 == n_frames and len(pending)):
                    part, pending = pending[:aac_size], pending[aac_size:]
                    af = av.AudioFrame.from_ndarray(part[None, :].copy(), format="fltp", layout="mono")
                    af.sample_rate, af.pts, af.time_base = sample_rate, written, Fraction(1, sample_rate)
                    written += len(part)
                    for packet in aus.encode(af):
                        container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
            for packet in aus.encode():
                container.mux(packet)
    finally:
        for src in sources_:
            if src.video is not None:
                src.video.close()
    return ComposedVideo(path=out, fps=float(fps), n_frames=n_frames, width=width, height=height,
                         sample_rate=sample_rate, duration=total, tiles=tiles, turns=turn_list,
                         heard=heard, active=active, voiced=voiced, overlaps=extra)


def default_sources(media_dir: str | Path, n_talking: int = 3, still: str | None = "monalisa.png") -> list[Path]:
    """``talking1..n.mp4`` (looped if ``n_talking > 3``) plus a still portrait from the shared media folder."""
    media_dir = Path(media_dir)
    out = [media_dir / f"talking{k % 3 + 1}.mp4" for k in range(n_talking)]
    if still:
        out.append(media_dir / still)
    return out


def compose_benchmark(media_dir: str | Path, duration: float = 120.0, *, out: str | Path | None = None,
                      size: tuple[int, int] = (1280, 720), fps: float = 25.0, gap_prob: float = 0.15,
                      seed: int = 0, **kwargs) -> ComposedVideo:
    """A long diarization input for benchmarks: three talking tiles and a still portrait, 720p by
    default, random 2-4 s turns with occasional silence gaps, clips looped to ``duration``."""
    sources = default_sources(media_dir)
    turns = random_turns([0, 1, 2], duration, gap_prob=gap_prob, seed=seed)
    return compose_speakers(sources, turns, duration=duration, out=out, size=size, fps=fps, **kwargs)


# -- a suite of diarization fixtures --------------------------------------------------------------

def music_wav(path: str | Path, seconds: float = 8.0, sample_rate: int = 16000, seed: int = 0) -> Path:
    """A synthetic music-and-noise track (chords of harmonic tones, a beat, hiss): audio that is
    not speech, for fixtures where nobody may be found speaking."""
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for k, start in enumerate(np.arange(0, seconds, 0.5)):
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        sel = (t >= start) & (t < start + 0.5)
        for ratio in (1.0, 1.25, 1.5):
            for h in range(1, 5):
                out[sel] += np.sin(2 * np.pi * root * ratio * h * t[sel]) / (h * 3)
        out[sel] *= np.exp(-(t[sel] - start) * 3)
    out += 0.05 * rng.normal(size=t.size)
    out = (0.3 * out / np.max(np.abs(out))).astype(np.float32)
    path = Path(path)
    soundfile.write(str(path), out, sample_rate)
    return path


def diarization_suite(media_dir: str | Path, work: str | Path,
                      split: Literal["tune", "test", "fresh"] = "test") -> dict[str, dict]:
    """Keyword arguments of :func:`compose_speakers` for one fixture of every diarization case.

    ``split="tune"`` is the set parameters may be tuned on (talking1-3, eng.wav / sun.wav, 25 fps,
    960x540, audio 0.3 s late); ``"test"`` differs in every way that matters (other pairings, a
    pitch-shifted voice, yongen.wav, 30 fps, 640x360 so faces are ~90-160 px wide, delays of 0.25
    and 0.4 s, other seeds) and is never tuned on; ``"fresh"`` differs again (talking2/talking3
    pairings, +2 semitones, sun.wav, 25 fps at 800x450, delays of 0.2 and 0.35 s, other seeds)
    and is only ever reported: its errors are not looked into, so that it keeps measuring
    something when the test split has been looked at for too long. Cases: ``swap`` (two talkers whose lips always
    move, the heard audio swapped halfway), ``late`` (one talker's audio late against the lips,
    beside one in sync), ``three`` and ``four`` talkers in turns with a still portrait,
    ``offscreen`` (one visible talker and a voice no face speaks), ``noface`` (voices only),
    ``silence`` (one face, no sound), ``music`` (music, no speech), ``short`` (under 2 s),
    ``overlap`` (two voices at once for 1.5 s), ``gap`` (the same voice after a 6 s silence).
    """
    m, work = Path(media_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    t1, t2, t3 = (m / f"talking{k}.mp4" for k in (1, 2, 3))
    if split == "tune":
        a, b, wav, wav2, still = t1, t2, m / "eng.wav", m / "sun.wav", m / "monalisa.png"
        common = {"fps": 25.0, "size": (960, 540)}
        pitch_b, delays, seed = 0.0, (0.3, 0.3), 0
    elif split == "test":
        a, b, wav, wav2, still = t3, t1, m / "yongen.wav", m / "eng.wav", m / "sit.jpeg"
        common = {"fps": 30.0, "size": (640, 360)}
        pitch_b, delays, seed = -3.0, (0.25, 0.4), 100
    elif split == "fresh":
        a, b, wav, wav2, still = t2, t3, m / "sun.wav", m / "yongen.wav", m / "musk.png"
        common = {"fps": 25.0, "size": (800, 450)}
        pitch_b, delays, seed = 2.0, (0.2, 0.35), 500
    else:
        raise ValueError(f"split {split!r}: expected 'tune', 'test' or 'fresh'")
    music = music_wav(work / f"music_{split}.wav", 6.0, seed=seed)
    p2 = [0.0, pitch_b]
    return {
        "swap": {**common, "sources": [a, b], "pitch": p2, "turns": [(0.0, 6.0, 0), (6.0, 12.0, 1)]},
        "late": {**common, "sources": [a, b, still], "pitch": p2 + [0.0], "audio_delay": [delays[0], 0.0, 0.0],
                 "turns": random_turns([0, 1], 14.0, gap_prob=0.2, seed=seed + 1)},
        "late2": {**common, "sources": [b, a], "pitch": [pitch_b, 0.0], "audio_delay": [delays[1], 0.0],
                  "turns": random_turns([0, 1], 14.0, gap_prob=0.2, seed=seed + 2)},
        "three": {**common, "sources": [t1, t2, t3, still],
                  "turns": random_turns([0, 1, 2], 16.0, gap_prob=0.2, seed=seed + 3)},
        "four": {**common, "sources": [t1, t2, t3, t2, still], "pitch": [0.0, 0.0, 0.0, 4.0, 0.0],
                 "turns": random_turns([0, 1, 2, 3], 18.0, gap_prob=0.2, seed=seed + 4)},
        "offscreen": {**common, "sources": [a, wav, still],
                      "turns": random_turns([0, 1], 14.0, gap_prob=0.2, seed=seed + 5)},
        "noface": {**common, "sources": [wav, wav2], "turns": random_turns([0, 1], 12.0, seed=seed + 6)},
        "silence": {**common, "sources": [a], "turns": [(0.0, 8.0, None)], "duration": 8.0},
        "music": {**common, "sources": [a, music], "nonspeech": [1],
                  "turns": [(0.0, 3.0, 0), (3.0, 7.0, 1), (7.0, 10.0, 0)]},
        "short": {**common, "sources": [a, b], "pitch": p2, "turns": [(0.0, 0.9, 0), (0.9, 1.8, 1)]},
        "overlap": {**common, "sources": [a, b], "pitch": p2, "turns": [(0.0, 5.0, 0), (5.0, 10.0, 1)],
                    "overlaps": [(3.0, 4.5, 1)]},
        "gap": {**common, "sources": [a, b], "pitch": p2,
                "turns": [(0.0, 3.0, 0), (3.0, 6.0, 1), (6.0, 12.0, None), (12.0, 15.0, 0)]},
    }
