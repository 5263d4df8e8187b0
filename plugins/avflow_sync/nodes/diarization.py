"""``sync.diarization``: write diarization.json, diarization.rttm, captions, label tracks and sync_signals.png."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from avflow import File, MediaInfo, Node, Port, Record, TrackedFaces, atomic_path, param, write_text_atomic

from .. import formats
from ..report import FrameResult, document, dumps, face_thumbnails, plot, rttm


@dataclass(frozen=True)
class DiarizationConfig:
    video: str = param("", "the input's path as written into the JSON")
    outputs: tuple[str, ...] = param(
        tuple(o for o in formats.DEFAULT_OUTPUTS if o != "annotated"),
        "the files to write, of: json, rttm, vtt, srt, audacity, elan, plot ('annotated' is "
        "accepted and left to the annotated video's nodes)", choices=formats.OUTPUTS)
    json: Path = param(Path("diarization.json"), "JSON output, relative to the output directory")
    rttm: Path = param(Path("diarization.rttm"), "RTTM output, relative to the output directory")
    vtt: Path = param(Path("diarization.vtt"), "WebVTT speaker captions")
    srt: Path = param(Path("diarization.srt"), "SubRip speaker captions")
    audacity: Path = param(Path("diarization.labels.txt"), "Audacity label track")
    elan: Path = param(Path("diarization.elan.tsv"), "tab-separated text for ELAN's import")
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
    voice under the curves. ``outputs`` chooses the files: besides those three, WebVTT and SRT
    speaker captions (one cue per turn; WebVTT in ``<v LABEL>`` voice spans), an Audacity label
    track and a TSV for ELAN, all labelled as the RTTM is (:mod:`avflow_sync.formats`). Every
    file is written atomically. Holds a few numbers per frame and track.

    Ports:
      - in ``info`` (MediaInfo): fps and size of the input.
      - in ``tracks`` (TrackedFaces): boxes of every track in every frame.
      - in ``active`` (Record): the decision per frame (``sync.speaker`` or ``sync.assign``).
      - in ``voices`` (Record, optional): ``sync.assign``'s voices.
      - out ``json``, ``rttm``, ``vtt``, ``srt``, ``audacity``, ``elan``, ``plot`` (File): those
        in ``outputs``; out ``result`` (Record): the JSON document, always.

    Example::

        report:
          type: sync.diarization
          inputs: {info: decode.info, tracks: track.tracks, active: speaker.active}
          params: {video: "${video}", outputs: [json, rttm, vtt, srt, plot]}
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
        "vtt": Port(File, "diarization.vtt (WebVTT captions)"), "srt": Port(File, "diarization.srt (SubRip captions)"),
        "audacity": Port(File, "Audacity label track"), "elan": Port(File, "TSV for ELAN"),
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
        doc, frames = self._document()
        for w in doc.get("warnings", []):
            ctx.logger.warning("%s", w)
        out = self._write_texts(doc, ctx, set(self.config.outputs))
        if self.config.plot is not None and "plot" in set(self.config.outputs):
            final = ctx.output_path(self.config.plot)
            with atomic_path(final) as tmp:
                thumbs = face_thumbnails(doc["video"], frames) if doc["tracks"] and Path(doc["video"]).is_file() else None
                plot(tmp, frames, doc["segments"], title=Path(doc["video"]).name or "diarization",
                     threshold=self.config.threshold, voices=doc.get("voices"), thumbnails=thumbs)
            out["plot"] = File(pts=0, time_base=Fraction(1), path=final, kind="image/png")
        n_turns = len(doc["segments"])
        ctx.logger.info("%d frames, %d tracks, %d voices, %d speech turns -> %s", len(frames), len(doc["tracks"]),
                        len(doc.get("voices", [])), n_turns,
                        ", ".join(f.path.name for f in out.values()) or "(no files)")
        out["result"] = Record(pts=0, time_base=Fraction(1), data=doc)
        return out

    def _document(self) -> tuple[dict, list[FrameResult]]:
        """The JSON document of the frames decided so far, and those frames in order."""
        info = self._info
        frames = sorted(self._frames, key=lambda f: f.index)
        fps = info.fps if info and info.fps else 0.0
        width = info.width if info and info.width else self._size[0]
        height = info.height if info and info.height else self._size[1]
        end = frames[-1].time + (1.0 / fps if fps else 0.0) if frames else None
        doc = document(self.config.video or (info.path if info else ""), fps, width, height, frames, end,
                       voices=self._voices)
        return doc, frames

    def _write_texts(self, doc: dict, ctx, wanted: set[str]) -> dict[str, File]:
        """Write the text files in ``wanted`` (each atomically)."""
        out = {}
        texts = {
            "json": (lambda: dumps(doc), "application/json"),
            "rttm": (lambda: rttm(formats.file_id(doc), doc["segments"]), "text/x-rttm"),
            "vtt": (lambda: formats.webvtt(doc), "text/vtt"),
            "srt": (lambda: formats.srt(doc), "application/x-subrip"),
            "audacity": (lambda: formats.audacity_labels(doc), "text/plain"),
            "elan": (lambda: formats.elan_tsv(doc), "text/tab-separated-values"),
        }
        for name, (text, kind) in texts.items():
            if name in wanted:
                path = write_text_atomic(ctx.output_path(getattr(self.config, name)), text())
                out[name] = File(pts=0, time_base=Fraction(1), path=path, kind=kind)
        return out
