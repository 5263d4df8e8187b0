"""``musetalk.audio_prompts``: put each frame on the audio's timeline and give it its audio prompt."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from avflow import InputError, MediaInfo, Node, Port, Tensor, param

from ..payloads import EncodedFrame, PromptFrame, advance
from ..slicer import FeatureWindow, prompt_window
from .whisper import SAMPLE_RATE

_RAM_PENDING = 32  # frames waiting for audio beyond this many wait on disk instead


def pingpong(k: int, n: int) -> int:
    """Source frame of output frame ``k`` when ``n`` frames play forward, backward, forward..."""
    j = k % (2 * n)
    return j if j < n else 2 * n - 1 - j


@dataclass(frozen=True)
class AudioPromptsConfig:
    left: int = param(2, "video frames (2 feature frames each) of audio context before the frame", min=0)
    right: int = param(2, "video frames (2 feature frames each) of audio context after the frame", min=0)
    max_avatar_frames: int = param(9000, "frames kept (on disk, in the cache folder) to play the video "
                                         "backward and forward again when the audio is longer; a longer "
                                         "video with a longer audio is an error", min=1)


class AudioPrompts(Node):
    """Place the video's frames on the driving audio's timeline, each with its audio prompt.

    The output lasts as long as the audio: output frame ``k`` is shown at ``t_k`` seconds (the
    video's own timestamps, re-based to start at 0), and only frames shown entirely within the
    audio are kept (``t_k`` + the frame's duration at most the audio's duration: MuseTalk's
    ``floor(duration x fps)`` frames at a constant rate). When the audio is longer than the
    video, the video plays backward, then forward again (MuseTalk's cycle), continuing at the
    video's frame interval. Each frame's prompt is cut by the Whisper slicer at ``t_k`` (see
    :mod:`avflow_musetalk.slicer`): ``2 (left + right + 1)`` feature frames x layers rows of
    ``d_model``, ``50 x 384`` for whisper-tiny, zeros outside the audio (v1 and v1.5 alike, as
    current MuseTalk).

    Streaming: features are kept only from the oldest window still needed. Frames are kept
    for the backward pass in a temporary file under ``<cache dir>/musetalk/frames/`` (not in
    memory), only while the audio may outlast the video (not at all once the video's known
    duration covers the audio), at most ``max_avatar_frames``.

    Ports:
      - in ``frames`` (EncodedFrame): frames with their UNet input latents.
      - in ``features`` (Tensor): Whisper features (``musetalk.whisper_features``).
      - in ``video_info`` (MediaInfo, optional): the video's frame rate and duration, as hints.
      - out ``frames`` (PromptFrame): output frames, timestamps from 0, with ``prompt``.

    Example::

        prompts:
          type: musetalk.audio_prompts
          inputs: {frames: encode.frames, features: whisper.features, video_info: video.info}
          params: {left: 2, right: 2}
    """

    type = "musetalk.audio_prompts"
    Config = AudioPromptsConfig
    inputs = {
        "frames": Port(EncodedFrame, "frames with UNet input latents"),
        "features": Port(Tensor, "Whisper features of the driving audio"),
        "video_info": Port(MediaInfo, "the video's frame rate and duration (hints)", optional=True),
    }
    outputs = {"frames": Port(PromptFrame, "frames on the audio's timeline with their audio prompt")}
    queue_size = 16

    def open(self, ctx) -> None:
        self._win = FeatureWindow()
        self._n_samples = 0
        self._audio_end: Fraction | None = None  # seconds, once the audio has ended
        self._t0: Fraction | None = None
        self._tb: Fraction | None = None
        self._dt: Fraction | None = None  # the video's frame interval
        self._video_duration: float | None = None  # from the decoder's MediaInfo (an estimate)
        self._times: list[Fraction] = []  # output time of each source frame
        self._kept: list[tuple[int | None, tuple | None, Fraction | None]] = []  # (store slot, box, duration)
        self._store = None
        self._n_kept = 0
        self._cycle_ok = True  # False once the video had more frames than max_avatar_frames
        self._pending: deque = deque()  # (k, source index, time, payload or None)
        self._src_done = False
        self._next_k = 0
        self._stopped = False
        self._emitted = 0
        self._cycled = 0

    # -- inputs ----------------------------------------------------------------------------
    def process(self, port, item, ctx):
        if port == "video_info":
            if item.fps and self._dt is None:
                self._dt = Fraction(item.fps).limit_denominator(1001) ** -1
            # The frame count reflects a decoder's max_duration; the container duration does not.
            known = [d for d in (item.duration, item.n_frames / item.fps if item.fps else 0.0) if d > 0]
            self._video_duration = min(known) if known else None
            return None
        if port == "features":
            self._win.append(item.pts, item.data)
            self._n_samples = int(item.meta.get("n_samples", self._n_samples))
            return self._flush(ctx)
        return self._add_frame(item, ctx)

    def end(self, port, ctx):
        if port == "frames":
            self._src_done = True
            if not self._times:
                raise InputError("the video gave no frames")
            self._next_k = len(self._times)
            if self._dt is None:
                self._dt = (self._times[-1] - self._times[-2]) if len(self._times) > 1 else Fraction(1, 25)
                self._set_total(ctx)
        elif port == "features":
            self._win.close()
            if not self._n_samples:
                raise InputError("the driving audio holds no samples")
            self._audio_end = Fraction(self._n_samples, SAMPLE_RATE)
            self._set_total(ctx)
        else:
            return None
        return self._flush(ctx)

    def _set_total(self, ctx) -> None:
        if self._dt and self._audio_end is not None:
            ctx.progress.set_total(math.floor(self._audio_end / self._dt), "frames")

    def finish(self, ctx):
        out = self._flush(ctx)
        if self._pending:  # cannot happen once both streams have ended
            raise RuntimeError(f"{len(self._pending)} frames left without audio")
        if not self._emitted and self._audio_end is not None and self._times:
            raise InputError(f"the driving audio ({float(self._audio_end):.3f} s) is shorter than one video frame "
                             f"({float(self._dt):.3f} s): there is no frame to generate")
        ctx.logger.info("%d output frames (%d from the backward/forward cycle) for %.2f s of audio",
                        self._emitted, self._cycled, float(self._audio_end or 0))
        return out

    def close(self, ctx) -> None:
        self._release_store(force=True)

    # -- frames ----------------------------------------------------------------------------
    def _add_frame(self, item: EncodedFrame, ctx):
        t = item.pts * item.time_base
        if self._t0 is None:
            self._t0, self._tb = t, item.time_base
        tau = t - self._t0
        if item.duration and not self._dt:
            self._dt = Fraction(item.duration)
        i = len(self._times)
        self._times.append(tau)
        if self._stopped or (self._audio_end is not None and tau >= self._audio_end):
            # The video outlasts the audio: nothing from here on is shown, and no cycle comes.
            self._stopped = True
            self._kept.append((None, None, None))
            return self._flush(ctx)
        slot = self._keep_for_cycle(item, ctx) if self._may_cycle() else None
        in_memory = len(self._pending) < _RAM_PENDING
        if not in_memory and slot is None:
            slot = self._put(item, ctx)  # waiting for audio: wait on disk, not in memory
        self._kept.append((slot, item.box, item.duration))
        self._pending.append((i, i, tau, item if in_memory else None))
        return self._flush(ctx)

    def _may_cycle(self) -> bool:
        """Whether the audio may still outlast the video (so its frames are needed again)."""
        if not self._cycle_ok or self._stopped:
            return False
        if self._audio_end is not None and self._video_duration is not None:
            # An estimate from the container: only trusted with a margin.
            return self._video_duration < float(self._audio_end) + 0.25
        return True

    def _keep_for_cycle(self, item: EncodedFrame, ctx) -> int | None:
        if self._n_kept >= self.config.max_avatar_frames:
            ctx.logger.info("the video has more than max_avatar_frames=%d frames: they are not kept for "
                            "a backward pass", self.config.max_avatar_frames)
            self._cycle_ok = False
            return None
        self._n_kept += 1
        return self._put(item, ctx)

    def _put(self, item: EncodedFrame, ctx) -> int:
        from ..store import FrameStore

        if self._store is None:
            self._store = FrameStore(ctx.cache_dir / "musetalk" / "frames")
        return self._store.put({"image": item.image, "latents": item.latents, "landmarks": item.landmarks})

    def _release_store(self, force: bool = False) -> None:
        """Delete the frame file once no waiting frame and no possible cycle needs it."""
        if self._store is None:
            return
        if not force and (self._may_cycle() or any(p[3] is None for p in self._pending)):
            return
        self._store.close()
        self._store = None
        self._kept = [(None, box, d) for _, box, d in self._kept]

    def _load(self, src: int) -> EncodedFrame:
        slot, box, duration = self._kept[src]
        if slot is None or self._store is None:
            raise InputError(
                f"the audio ({float(self._audio_end or 0):.2f} s) is longer than the video "
                f"({len(self._times)} frames), so the video must play backward, but its frames were not "
                f"kept: it has more than max_avatar_frames={self.config.max_avatar_frames} frames, or its "
                "container declared a longer duration than it has; raise max_avatar_frames, or use a "
                "video at least as long as the audio")
        arrays = self._store.get(slot)
        return EncodedFrame(pts=0, time_base=self._tb, image=arrays["image"], index=src, duration=duration,
                            box=box, landmarks=arrays.get("landmarks"), latents=arrays["latents"])

    # -- output ----------------------------------------------------------------------------
    def _interval(self, k: int, src: int) -> Fraction | None:
        """How long output frame ``k`` is shown: a source frame its own duration (or until the
        next frame), a frame of the cycle the video's frame interval; None: not known yet."""
        if k == src:
            duration = self._kept[src][2]
            if duration:
                return Fraction(duration)
            if src + 1 < len(self._times):
                return self._times[src + 1] - self._times[src]
        return self._dt

    def _shown(self, tau: Fraction, interval: Fraction | None) -> bool | None:
        """Whether a frame shown from ``tau`` for ``interval`` lies within the audio (None: not known yet)."""
        if interval is None:
            return None if self._audio_end is None or tau < self._audio_end else False
        end = tau + interval
        if self._audio_end is not None:
            return end <= self._audio_end
        return True if end <= Fraction(self._n_samples, SAMPLE_RATE) else None

    def _schedule_cycle(self) -> None:
        """Queue output frames past the video's end: backward, forward, ... until the audio ends."""
        n = len(self._times)
        while self._src_done and not self._stopped and len(self._pending) < 4:
            k = self._next_k
            tau = self._times[-1] + (k - n + 1) * self._dt
            shown = self._shown(tau, self._dt)
            if shown is False:
                self._stopped = True
                break
            if shown is None:
                break  # not known yet whether the audio lasts that long
            self._pending.append((k, pingpong(k, n), tau, None))
            self._next_k += 1

    def _flush(self, ctx):
        c = self.config
        out = []
        self._schedule_cycle()
        while self._pending:
            k, src, tau, payload = self._pending[0]
            shown = self._shown(tau, self._interval(k, src))
            if shown is False:  # this frame would outlast the audio, so would every later one
                self._pending.clear()
                self._stopped = True
                break
            start, stop = prompt_window(tau, c.left, c.right)
            if shown is None or not self._win.ready(stop):
                break
            prompt = self._win.cut(start, stop)
            self._pending.popleft()
            if payload is None:
                payload = self._load(src)
            if k != src:
                self._cycled += 1
            n_out = math.floor(self._audio_end / self._dt) if self._audio_end is not None and self._dt else None
            out.append(advance(payload, PromptFrame, pts=round(tau / self._tb), time_base=self._tb, out_index=k,
                               duration=self._dt if payload.duration is None else payload.duration,
                               prompt=prompt, n_out=n_out))
            self._emitted += 1
            self._win.drop_before(start)
            self._schedule_cycle()
        if out:
            ctx.progress.advance(len(out))
        self._release_store()
        return {"frames": out} if out else None
