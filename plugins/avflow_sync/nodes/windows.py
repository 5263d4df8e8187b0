"""``sync.windows``: pair 5 consecutive face crops of a track with 16 mel columns."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from avflow.errors import InputError
from avflow.node import Node, NodeContext, Port, param
from avflow.payloads import FaceCrop, Payload, Tensor

from ..mel import MEL_TIME_BASE, WAV2LIP
from ..payloads import SyncWindow
from ..windows import WindowAssembler


@dataclass(frozen=True)
class WindowsConfig:
    offset_search: int = param(0, "also cut mel windows shifted by -N..N frames, for sync.syncnet's "
                                  "audio-visual offset search (0: none)", min=0, max=30)
    channel_order: Literal["bgr", "rgb"] = param(
        "bgr", "colour order of the video part: bgr is what Wav2Lip's expert was trained on (OpenCV frames)",
        choices=("bgr", "rgb"))
    history_s: float = param(30.0, "seconds of mel kept behind the newest column for crops that arrive late",
                             min=1.0)
    every_n: int = param(1, "cut a track's windows at every N-th frame only (a window spans 5 frames: at "
                            "N <= 5 every frame is still seen)", min=1, max=25)
    speech_margin: float = param(0.6, "with speech connected: no windows centred farther than this (s) from "
                                      "any speech", min=0.0, max=10.0)


class SyncWindows(Node):
    """Audio-visual windows for SyncNet: 5 consecutive crops of a track against 16 mel columns.

    For each track and each frame ``i``: the crops of frames ``i .. i+4`` (consecutive frame
    indices of that track; a gap restarts the windows) with the 16 mel columns starting at
    ``int(80 * t_i)``, ``t_i`` frame ``i``'s time from the start of the audio, taken from the
    timestamps (any fps, variable frame rates too).

    Windows whose columns run past the end of the audio are dropped (audio shorter than video is
    normal), and so are frames before the audio starts. Crops are expected frame by frame (all
    tracks of a frame, frames in increasing order, as faces.crop emits them); buffering is
    bounded: 4 crops per track, the windows waiting for their audio and ``history_s`` of mel.

    Lip-sync evidence is only needed where someone speaks, and neighbouring windows share 4 of
    their 5 frames: ``every_n`` cuts a track's windows only at frames whose index is a multiple of
    N, and with ``speech`` connected (``voice.activity``) windows centred more than
    ``speech_margin`` from speech are not cut (they wait until the speech decisions reach that
    far). Both divide SyncNet's work, the graph's largest.

    Ports:
        crops (FaceCrop): 48x96 lower-half crops (``faces.crop size=96 region=lower_half``);
            96x96 full crops are accepted and halved.
        mel (Tensor): ``sync.mel``'s columns.
        speech (Payload, optional): speech activity (``voice.activity``'s SpeechActivity).
    Outputs:
        windows (SyncWindow): ``video`` uint8 (15, 48, 96), ``mel`` float32 (2N+1, 80, 16),
            ``mel_valid`` bool (2N+1,); ``track_id``, ``frame_index`` (first frame), ``pts`` of the
            centre frame (``frame_index + 2``), which the score describes.
    Params:
        offset_search: N, the audio offsets (frames) to cut besides 0.
        channel_order: ``bgr`` (default) or ``rgb``.
        history_s: mel kept for late crops.
        every_n: windows at every N-th frame.
        speech_margin: seconds around speech where windows are cut.

    .. code-block:: yaml

        windows:
          type: sync.windows
          inputs: {crops: crop.crops, mel: mel.mel}     # crop: faces.crop size=96 region=lower_half
    """

    type = "sync.windows"
    Config = WindowsConfig
    inputs = {"crops": Port(FaceCrop, "48x96 lower-half face crops of every track, frame by frame"),
              "mel": Port(Tensor, "sync.mel columns"),
              "speech": Port(Payload, "speech activity (voice.activity): no windows far from speech", optional=True)}
    outputs = {"windows": Port(SyncWindow, "5 frames x 16 mel columns per track and frame")}
    queue_size = 64

    def open(self, ctx: NodeContext) -> None:
        from avflow_faces import SpeechSpans

        c = self.config
        self._asm = WindowAssembler(c.offset_search, c.channel_order, c.history_s)
        self._speech = SpeechSpans() if "speech" in ctx.connected_inputs else None
        self._held: deque = deque()  # windows waiting for the speech decisions around them
        self.far_from_speech = 0

    def process(self, port: str, item, ctx: NodeContext):
        if port == "speech":
            self._speech.add(item)
            return self._gate([])
        if port == "mel":
            if item.time_base != MEL_TIME_BASE or item.data.ndim != 2 or item.data.shape[0] != WAV2LIP.n_mels:
                raise InputError(f"sync.windows.mel expects sync.mel's output (data (80, n), time_base 1/80 s), "
                                 f"got '{item.name}' of shape {tuple(item.data.shape)} with time_base {item.time_base}")
            start = Fraction(int(item.meta.get("audio_start_sample", 0)), WAV2LIP.sample_rate)
            out = self._asm.add_mel(item.data, int(item.pts), start)
        else:
            out = self._asm.add_crop(item.track_id, item.frame_index, item.pts, item.time_base, item.image)
        return self._gate(out)

    def end(self, port: str, ctx: NodeContext):
        if port == "speech" and self._speech is not None:
            self._speech.end()
            return self._gate([])
        return None

    def _gate(self, windows: list):
        n = int(self.config.every_n)
        self._held.extend(w for w in windows if w.frame_index % n == 0)
        out = []
        while self._held:
            w = self._held[0]
            near = True if self._speech is None else self._speech.near(w.time, float(self.config.speech_margin))
            if near is None:
                break
            self._held.popleft()
            if near:
                out.append(w)
            else:
                self.far_from_speech += 1
        return {"windows": out} if out else None

    def finish(self, ctx: NodeContext):
        if self._speech is not None:
            self._speech.end()
        out = self._gate(self._asm.finish())
        a = self._asm
        if a.dropped_before_audio or a.dropped_after_audio or a.dropped_late:
            ctx.logger.info("windows dropped: %d before the audio starts, %d past its end, %d late (mel already "
                            "discarded; raise history_s)", a.dropped_before_audio, a.dropped_after_audio,
                            a.dropped_late)
        if self.far_from_speech:
            ctx.logger.info("windows not cut: %d far from speech", self.far_from_speech)
        return out
