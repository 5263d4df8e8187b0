"""Audio-visual windows: 5 consecutive lower-face crops of a track against 16 mel columns.

Wav2Lip's expert pairs frames ``i .. i+4`` with mel columns ``[s, s + 16)``, where
``s = int(80 * t_i)`` and ``t_i`` is frame ``i``'s time from the start of the audio (Wav2Lip
writes ``t_i = i / fps``; we take it from the timestamps, so any frame rate, including a
variable one, pairs correctly). 16 columns are 0.2 s, five frames at 25 fps.

:class:`WindowAssembler` does this on streams: crops arrive per frame (all tracks of a frame,
frames in increasing order), mel arrives in blocks of columns; it keeps at most 4 crops per
track, the windows still waiting for their audio, and a bounded tail of the mel.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from avflow.errors import InputError

from .mel import COLUMNS_PER_SECOND
from .payloads import SyncWindow

#: Frames per window and mel columns per window (Wav2Lip's syncnet_T and syncnet_mel_step_size).
SYNCNET_T = 5
MEL_STEPS = 16
CROP_H, CROP_W = 48, 96
CHANNEL_ORDERS = ("bgr", "rgb")
#: How far (frames) crops of different tracks may arrive out of frame order before a track whose
#: crops stopped is considered broken off.
REORDER_FRAMES = 8


def mel_start_column(frame_time: Fraction, audio_start: Fraction = Fraction(0)) -> int:
    """First mel column paired with a frame shown at ``frame_time`` seconds (Wav2Lip's ``int(80 t)``).

    ``t = frame_time - audio_start``; computed exactly on fractions and floored, so a frame before
    the audio starts gets a negative column.
    """
    return math.floor(COLUMNS_PER_SECOND * (Fraction(frame_time) - Fraction(audio_start)))


def offset_starts(times: list[Fraction], audio_start: Fraction, offset_search: int) -> list[int]:
    """Mel start columns of a window for audio offsets ``-N .. N`` frames.

    ``times`` are the window's frame times; an offset of ``o`` frames shifts the audio by ``o``
    times the window's mean frame duration (exactly ``o / fps`` for a constant rate).
    """
    t0 = Fraction(times[0]) - Fraction(audio_start)
    d = (Fraction(times[-1]) - Fraction(times[0])) / (len(times) - 1) if len(times) > 1 else Fraction(0)
    return [math.floor(COLUMNS_PER_SECOND * (t0 + o * d)) for o in range(-offset_search, offset_search + 1)]


def prepare_crop(image: Any, channel_order: str = "bgr", *, track_id: str = "?", frame_index: int = -1) -> np.ndarray:
    """A crop as SyncNet sees one frame: uint8 (3, 48, 96), the lower half of the face.

    Accepts 48x96 lower-half crops (``faces.crop size=96 region=lower_half``) or 96x96 full
    crops (the lower half is taken, as Wav2Lip does), HxWx3 uint8 RGB.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"face crop of track {track_id!r} frame {frame_index}: expected an HxWx3 uint8 RGB "
                         f"image, got {a.dtype} array of shape {a.shape}")
    if a.shape[:2] == (2 * CROP_H, CROP_W):
        a = a[CROP_H:]
    elif a.shape[:2] != (CROP_H, CROP_W):
        raise InputError(f"face crop of track {track_id!r} frame {frame_index} is {a.shape[0]}x{a.shape[1]} "
                         f"(HxW); SyncNet needs the 48x96 lower half of a 96x96 face crop: set faces.crop "
                         f"size=96 region=lower_half (or region=full for 96x96 crops)")
    if channel_order == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a.transpose(2, 0, 1))


@dataclass
class _Frame:
    frame_index: int
    pts: int
    time_base: Fraction
    time: Fraction
    image: np.ndarray  # (3, 48, 96) uint8


@dataclass
class _Candidate:
    track_id: str
    frames: list[_Frame]
    starts: list[int] | None = None  # mel start column per offset, once the audio start is known


class WindowAssembler:
    """Streaming pairing of crops and mel columns into :class:`SyncWindow` payloads.

    :param offset_search: also cut mel windows shifted by ``-N .. N`` frames.
    :param channel_order: colour order of the video part (``bgr``: Wav2Lip's training data).
    :param history_s: seconds of mel kept behind the newest column for crops that are late.

    Windows are emitted in the order their 5th crop arrived, as soon as their mel columns are
    in (all offsets). A window whose offset-0 columns run past the end of the audio (known at
    :meth:`finish`) or start before it is dropped; other offsets out of range are marked
    invalid. A gap in a track's frame indices restarts its windows.
    """

    def __init__(self, offset_search: int = 0, channel_order: str = "bgr", history_s: float = 30.0):
        if offset_search < 0:
            raise ValueError(f"offset_search must be >= 0, got {offset_search}")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {channel_order!r}")
        self.offset_search = offset_search
        self.channel_order = channel_order
        self.history_cols = max(MEL_STEPS, int(history_s * COLUMNS_PER_SECOND))
        self.audio_start: Fraction | None = None
        self._mel = np.zeros((0, 0), np.float32)
        self._mel_first = 0  # column index of self._mel[:, 0]
        self.mel_end = 0     # one past the last column received
        self.mel_done = False
        self._tracks: dict[str, deque[_Frame]] = {}
        self._pending: deque[_Candidate] = deque()
        self._max_frame = -1
        self.dropped_before_audio = 0
        self.dropped_after_audio = 0
        self.dropped_late = 0

    # -- inputs ----------------------------------------------------------------------------
    def add_mel(self, block: np.ndarray, first_column: int, audio_start: Fraction) -> list[SyncWindow]:
        """Append mel columns ``first_column ..`` (float32 (80, k)); return the windows now complete."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2:
            raise InputError(f"mel block must be 2-D (80, n), got shape {block.shape}")
        if self.audio_start is None:
            self.audio_start = Fraction(audio_start)
            self._mel = np.zeros((block.shape[0], 0), np.float32)
            self._mel_first = self.mel_end = first_column
        elif Fraction(audio_start) != self.audio_start:
            raise InputError(f"mel blocks disagree on the audio start ({float(audio_start)} s after "
                             f"{float(self.audio_start)} s): feed one audio stream")
        if first_column > self.mel_end:
            raise InputError(f"mel columns {self.mel_end}..{first_column - 1} are missing: mel blocks "
                             f"must be consecutive (sync.mel emits them so)")
        skip = self.mel_end - first_column  # overlap with what we have
        if skip < block.shape[1]:
            self._mel = np.concatenate([self._mel, block[:, skip:]], axis=1)
            self.mel_end = first_column + block.shape[1]
        return self._release()

    def add_crop(self, track_id: str, frame_index: int, pts: int, time_base: Fraction, image: Any) -> list[SyncWindow]:
        """Add one face crop; return the windows now complete."""
        img = prepare_crop(image, self.channel_order, track_id=track_id, frame_index=frame_index)
        fr = _Frame(frame_index, pts, Fraction(time_base), Fraction(pts) * Fraction(time_base), img)
        self._max_frame = max(self._max_frame, frame_index)
        dq = self._tracks.get(track_id)
        if dq is None:
            dq = self._tracks[track_id] = deque(maxlen=SYNCNET_T)
        elif dq and (dq[-1].frame_index != frame_index - 1 or fr.time <= dq[-1].time):
            dq.clear()  # a gap (or a repeated/backward frame) breaks the run of consecutive frames
        dq.append(fr)
        if len(dq) == SYNCNET_T:
            self._pending.append(_Candidate(track_id, list(dq)))
            dq.popleft()
        for tid in [t for t, q in self._tracks.items() if q and q[-1].frame_index < self._max_frame - REORDER_FRAMES]:
            del self._tracks[tid]
        return self._release()

    def finish(self) -> list[SyncWindow]:
        """Every input has ended: resolve the windows still waiting (the audio is complete now)."""
        self.mel_done = True
        out = self._release()
        # Without any audio, no window can be formed.
        self.dropped_after_audio += len(self._pending)
        self._pending.clear()
        self._tracks.clear()
        return out

    @property
    def buffered_columns(self) -> int:
        return int(self._mel.shape[1]) if self._mel.size else 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- internals -------------------------------------------------------------------------
    def _release(self) -> list[SyncWindow]:
        out: list[SyncWindow] = []
        if self.audio_start is None:
            return out
        while self._pending:
            c = self._pending[0]
            if c.starts is None:
                c.starts = offset_starts([f.time for f in c.frames], self.audio_start, self.offset_search)
            s0 = c.starts[self.offset_search]
            if s0 < 0:
                self.dropped_before_audio += 1
            elif s0 < self._mel_first:
                self.dropped_late += 1
            elif not self.mel_done and max(c.starts) + MEL_STEPS > self.mel_end:
                break  # wait for more audio
            elif s0 + MEL_STEPS > self.mel_end:
                self.dropped_after_audio += 1
            else:
                out.append(self._build(c))
            self._pending.popleft()
        self._trim()
        return out

    def _build(self, c: _Candidate) -> SyncWindow:
        starts = c.starts or []  # set by _release before any window is built
        k = len(starts)
        mel = np.zeros((k, self._mel.shape[0], MEL_STEPS), np.float32)
        valid = np.zeros(k, bool)
        for j, s in enumerate(starts):
            if s >= self._mel_first and s + MEL_STEPS <= self.mel_end:
                lo = s - self._mel_first
                mel[j] = self._mel[:, lo:lo + MEL_STEPS]
                valid[j] = True
        centre = c.frames[SYNCNET_T // 2]
        # seconds per frame, from the window's own timestamps: an offset in frames becomes seconds
        frame_s = float(c.frames[-1].time - c.frames[0].time) / max(1, len(c.frames) - 1)
        return SyncWindow(
            pts=centre.pts, time_base=centre.time_base, track_id=c.track_id,
            frame_index=c.frames[0].frame_index,
            video=np.concatenate([f.image for f in c.frames], axis=0),
            mel=mel, mel_valid=valid, mel_start=starts[self.offset_search],
            meta={"mel_starts": list(starts), "offsets": list(range(-self.offset_search, self.offset_search + 1)),
                  "frame_s": frame_s})

    def _trim(self) -> None:
        """Drop mel columns no buffered or future window can need."""
        if self.audio_start is None or not self._mel.size:
            return
        floor = self.mel_end - self.history_cols
        margin = MEL_STEPS * (self.offset_search + 1)
        for c in self._pending:
            if c.starts is not None:
                floor = min(floor, max(0, min(c.starts)))
        for q in self._tracks.values():
            if q:
                floor = min(floor, mel_start_column(q[0].time, self.audio_start) - margin)
        if floor > self._mel_first:
            cut = min(floor, self.mel_end) - self._mel_first
            self._mel = self._mel[:, cut:].copy()
            self._mel_first += cut
