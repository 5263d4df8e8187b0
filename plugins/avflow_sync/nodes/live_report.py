"""``sync.live_report``: live.jsonl line by line, and the diarization files rewritten as the stream goes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from fractions import Fraction

from avflow import File, Port, param

from .. import formats
from .diarization import DiarizationConfig, DiarizationWriter


@dataclass(frozen=True)
class LiveReportConfig(DiarizationConfig):
    outputs: tuple[str, ...] = param(("json", "rttm"), "the files rewritten as the stream goes and written at "
                                     "its end, of: json, rttm, vtt, srt, audacity, elan, plot (plot: at the end "
                                     "only)", choices=formats.OUTPUTS)
    live: Path = param(Path("live.jsonl"), "one JSON object per decision, a line each, flushed as it is made")
    every: float = param(5.0, "seconds (wall clock) between rewrites of the files; a rewrite also waits 20 "
                              "times as long as the last one took, so that hours of input never spend more "
                              "than 5 % of the time rewriting", min=0.1)


class LiveDiarizationWriter(DiarizationWriter):
    """``sync.diarization`` for live input: a line per decision as it is made, and files that are
    always complete.

    Each decision (``sync.live_assign``'s ``active`` record) becomes one line of ``live`` at once
    (written and flushed, so ``tail -f`` follows it): ``{"t", "frame", "speaker", "voice",
    "delay", "lag", "confidence", "evidence"}`` (docs/formats.md). Every ``every`` seconds the
    files in ``outputs`` (default diarization.json and diarization.rttm, the schemas of
    ``sync.diarization``) are rewritten atomically with everything decided so far, and written a
    last time when the stream ends (an end of stream, a drop, Ctrl-C). Holds a few numbers per
    decided frame, as ``sync.diarization`` does.

    Ports: as ``sync.diarization``'s (``info``, ``tracks``, ``active``, ``voices``; out the files
    and ``result``), plus out ``live`` (File): live.jsonl, at the end.

    .. code-block:: yaml

        report:
          type: sync.live_report
          inputs: {info: live.info, tracks: track.tracks, active: assign.active, voices: assign.voices}
          params: {every: 5}
    """

    type = "sync.live_report"
    Config = LiveReportConfig
    outputs = {**DiarizationWriter.outputs, "live": Port(File, "live.jsonl: one decision per line")}
    queue_size = 128

    def open(self, ctx):
        super().open(ctx)
        path = ctx.output_path(self.config.live)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._live = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - kept open for the run
        self._live_path = path
        self._next = time.monotonic() + self.config.every
        self._wanted = set(self.config.outputs) - {"plot"}

    def process(self, port, item, ctx):
        super().process(port, item, ctx)
        if port == "active":
            d = item.data
            line = {"t": round(float(d.get("time", item.time)), 3), "frame": int(d["frame_index"]),
                    "speaker": d.get("active"), "voice": d.get("voice"), "delay": d.get("delay"),
                    "lag": d.get("lag"), "confidence": d.get("confidence"),
                    "evidence": {k: v for k, v in (d.get("scores") or {}).items() if v is not None}}
            self._live.write(json.dumps(line) + "\n")
            self._live.flush()
        now = time.monotonic()
        if now >= self._next and self._frames:
            doc, _ = self._document()
            self._write_texts(doc, ctx, self._wanted)
            took = time.monotonic() - now
            self._next = time.monotonic() + max(self.config.every, 20 * took)
        return None

    def finish(self, ctx):
        out = super().finish(ctx)
        self._live.flush()
        out["live"] = File(pts=0, time_base=Fraction(1), path=self._live_path, kind="application/x-ndjson")
        return out

    def close(self, ctx):
        live = getattr(self, "_live", None)
        if live is not None:
            live.close()
            self._live = None
