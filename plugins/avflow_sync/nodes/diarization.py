"""``sync.diarization``: write diarization.json, diarization.rttm and sync_signals.png."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from avflow import File, MediaInfo, Node, Port, Record, TrackedFaces, atomic_path, param, write_text_atomic

from ..report import FrameResult, document, dumps, plot, rttm


@dataclass(frozen=True)
class DiarizationConfig:
    video: str = param("", "the input's path as written into the JSON")
    json: Path = param(Path("diarization.json"), "JSON output, relative to the output directory")
    rttm: Path = param(Path("diarization.rttm"), "RTTM output, relative to the output directory")
    plot: Path | None = param(Path("sync_signals.png"), "score plot (PNG); null: no plot")
    threshold: float | None = param(None, "drawn as a dotted line on the plot (the speaker threshold)")


class DiarizationWriter(Node):
    """Collect per-frame decisions and write the diarization files at the end of the run.

    The JSON follows ``avflow.diarization/1`` (docs/formats.md): ``tracks`` with every box in
    input-video pixels, ``scores`` (the plotted per-track curves, one value or null per frame),
    ``active`` (one track id or null per frame) and ``segments`` (speech turns in seconds on the
    input's timeline). With ``voices`` connected (``sync.assign``) it is ``avflow.diarization/2``:
    segments are the voices' turns, each with ``voice`` and ``speaker`` (the voice's face, or null
    for an off-screen voice), and ``voices`` lists each voice with its speech, its face and the
    evidence. The RTTM has one SPEAKER line per turn (the face's track id, or the voice id of an
    off-screen voice); the plot one curve per track, the turns shaded, and with voices a band per
    voice under the curves. All three are written atomically. Holds a few numbers per frame and track.

    Ports:
      - in ``info`` (MediaInfo): fps and size of the input.
      - in ``tracks`` (TrackedFaces): boxes of every track in every frame.
      - in ``active`` (Record): the decision per frame (``sync.speaker`` or ``sync.assign``).
      - in ``voices`` (Record, optional): ``sync.assign``'s voices.
      - out ``json``, ``rttm``, ``plot`` (File); out ``result`` (Record): the JSON document.

    Example::

        report:
          type: sync.diarization
          inputs: {info: decode.info, tracks: track.tracks, active: speaker.active}
          params: {video: "${video}"}
    """

    type = "sync.diarization"
    Config = DiarizationConfig
    inputs = {
        "info": Port(MediaInfo, "the decoder's description of the input"),
        "tracks": Port(TrackedFaces, "tracked faces per frame"),
        "active": Port(Record, "speaker decision per frame"),
        "voices": Port(Record, "the voices and their faces (sync.assign); schema /2", optional=True),
    }
    outputs = {
        "json": Port(File, "diarization.json"), "rttm": Port(File, "diarization.rttm"),
        "plot": Port(File, "sync_signals.png"), "result": Port(Record, "the JSON document as a dict"),
    }

    def open(self, ctx):
        self._info: MediaInfo | None = None
        self._boxes: dict[int, dict[str, list[float]]] = {}
        self._frames: list[FrameResult] = []
        self._size = (0, 0)
        self._last_time = 0.0
        self._voices: dict | None = None

    def process(self, port, item, ctx):
        if port == "info":
            self._info = item
        elif port == "voices":
            self._voices = item.data
        elif port == "tracks":
            self._size = (item.width, item.height)
            self._boxes[item.frame_index] = {f.track_id: f.box.as_xywh() for f in item.faces}
        else:
            d = item.data
            idx = int(d["frame_index"])
            self._frames.append(FrameResult(
                index=idx, time=float(d.get("time", item.time)), active=d.get("active"),
                scores=dict(d.get("scores") or {}), boxes=self._boxes.pop(idx, {}), voice=d.get("voice")))
        return None

    def finish(self, ctx):
        info = self._info
        frames = sorted(self._frames, key=lambda f: f.index)
        fps = info.fps if info and info.fps else 0.0
        width = info.width if info and info.width else self._size[0]
        height = info.height if info and info.height else self._size[1]
        end = frames[-1].time + (1.0 / fps if fps else 0.0) if frames else None
        doc = document(self.config.video or (info.path if info else ""), fps, width, height, frames, end,
                       voices=self._voices)
        out = {}
        jpath = write_text_atomic(ctx.output_path(self.config.json), dumps(doc))
        out["json"] = File(pts=0, time_base=Fraction(1), path=jpath, kind="application/json")
        file_id = Path(doc["video"]).stem or "video"
        rpath = write_text_atomic(ctx.output_path(self.config.rttm), rttm(file_id, doc["segments"]))
        for w in doc.get("warnings", []):
            ctx.logger.warning("%s", w)
        out["rttm"] = File(pts=0, time_base=Fraction(1), path=rpath, kind="text/x-rttm")
        if self.config.plot is not None:
            final = ctx.output_path(self.config.plot)
            with atomic_path(final) as tmp:
                plot(tmp, frames, doc["segments"], title=Path(doc["video"]).name or "diarization",
                     threshold=self.config.threshold, voices=doc.get("voices"))
            out["plot"] = File(pts=0, time_base=Fraction(1), path=final, kind="image/png")
        n_turns = len(doc["segments"])
        ctx.logger.info("%d frames, %d tracks, %d voices, %d speech turns -> %s", len(frames), len(doc["tracks"]),
                        len(doc.get("voices", [])), n_turns, jpath)
        out["result"] = Record(pts=0, time_base=Fraction(1), data=doc)
        return out
