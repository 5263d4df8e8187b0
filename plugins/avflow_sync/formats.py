"""A diarization in the formats people already use: captions, label tracks, pyannote and lhotse.

Pure functions over the ``diarization.json`` document (schema ``avflow.diarization/1`` or
``/2``, docs/formats.md); ``sync.diarization`` writes the files, and the converters take what
a run gives back:

.. code-block:: python

    import avflow
    from avflow_sync.formats import to_annotation, to_supervision_set

    result = avflow.run("diarize", {"video": "talk.mp4"}, output_dir="out/talk")
    annotation = to_annotation(result)              # pyannote.core.Annotation
    supervisions = to_supervision_set("out/talk")   # lhotse SupervisionSet (a folder, a JSON or an RTTM)

Every format carries the same turns as the RTTM: one per segment, labelled with the face's track
id, or for a voice no visible face speaks (schema /2, ``speaker: null``) with the voice id.
Times are the JSON's, which are rounded to the millisecond, so every format keeps them exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

# What a diarize run can write (the graph's ``outputs`` param; ``annotated`` is the annotated
# video, written by sync.annotate + media.mux, the rest by sync.diarization).
OUTPUTS = ("json", "rttm", "vtt", "srt", "audacity", "elan", "plot", "annotated")
DEFAULT_OUTPUTS = ("json", "rttm", "vtt", "plot", "annotated")


# -- the turns ------------------------------------------------------------------------------
def load(result: Any) -> dict[str, Any]:
    """The diarization document from what a run gives: the document itself (a dict), the
    ``diarization`` Record (``.data``), a :class:`avflow.RunResult` (its ``diarization`` output),
    a ``diarization.json`` path or a diarize output folder."""
    outputs = getattr(result, "outputs", None)
    if isinstance(outputs, Mapping):
        if outputs.get("diarization") is None:
            raise ValueError("this run has no 'diarization' output (is it a diarize graph's result?); "
                             f"its outputs: {', '.join(outputs) or '(none)'}")
        result = outputs["diarization"]
    data = getattr(result, "data", None)
    if isinstance(data, Mapping):
        result = data
    if isinstance(result, Mapping):
        doc = dict(result)
    elif isinstance(result, (str, Path)):
        path = Path(result)
        if path.is_dir():
            path = path / "diarization.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such diarization.json")
        doc = json.loads(path.read_text(encoding="utf-8"))
    else:
        raise TypeError(f"expected a diarization document, Record, RunResult or path; got {type(result).__name__}")
    if not str(doc.get("schema", "")).startswith("avflow.diarization/") or "segments" not in doc:
        raise ValueError(f"not a diarization document (schema {doc.get('schema')!r}); "
                         "expected avflow.diarization/1 or /2 with 'segments'")
    return doc


def turns(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's speech turns, as in the RTTM: ``label`` (the face, else the voice),
    ``speaker`` (face or None), ``voice`` (schema /2, else None), ``start`` and ``end`` (s).
    Turns without a label or without duration are left out, as in the RTTM."""
    out = []
    for s in doc.get("segments", []):
        label = s.get("speaker") or s.get("voice")
        if label and s["end"] > s["start"]:
            out.append({"label": str(label), "speaker": s.get("speaker"), "voice": s.get("voice"),
                        "start": float(s["start"]), "end": float(s["end"])})
    return out


def file_id(doc: Mapping[str, Any]) -> str:
    """The recording's id, as in the RTTM: the video's file name without its suffix; for a stream
    URL (live input) the last part of its path, or its host and port (``tcp://127.0.0.1:9000``:
    ``127.0.0.1_9000``)."""
    video = str(doc.get("video") or "")
    if "://" in video:
        from urllib.parse import urlsplit

        url = urlsplit(video)
        name = Path(url.path).stem or url.netloc.replace(":", "_")
    else:
        name = Path(video).stem
    return name.replace(" ", "_") or "video"


# -- captions -------------------------------------------------------------------------------
def _clock(t: float, sep: str) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _caption(t: Mapping[str, Any]) -> str:
    """What a cue shows: the face, and its voice (schema /2); an off-screen voice says so."""
    if t["speaker"] and t["voice"]:
        return f"{t['speaker']} ({t['voice']})"
    if t["voice"]:
        return f"{t['voice']} (off screen)"
    return t["label"]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(doc: Mapping[str, Any]) -> str:
    """WebVTT captions: one cue per turn, its text in a ``<v LABEL>`` voice span (LABEL: the
    face's track id, or the voice id of an off-screen voice), cue ids ``1``, ``2``, ..."""
    lines = ["WEBVTT", ""]
    for i, t in enumerate(turns(doc), 1):
        lines += [str(i), f"{_clock(t['start'], '.')} --> {_clock(t['end'], '.')}",
                  f"<v {_escape(t['label'])}>{_escape(_caption(t))}</v>", ""]
    return "\n".join(lines) + "\n"


def srt(doc: Mapping[str, Any]) -> str:
    """SubRip captions: one numbered cue per turn, ``LABEL: caption`` as its text."""
    lines: list[str] = []
    for i, t in enumerate(turns(doc), 1):
        text = _caption(t)
        lines += [str(i), f"{_clock(t['start'], ',')} --> {_clock(t['end'], ',')}",
                  text if text.startswith(t["label"]) else f"{t['label']}: {text}", ""]
    return "\n".join(lines) + ("\n" if lines else "")


# -- label tracks ---------------------------------------------------------------------------
def audacity_labels(doc: Mapping[str, Any]) -> str:
    """An Audacity label track (File > Import > Labels): ``start<TAB>end<TAB>label`` per turn,
    seconds with 6 decimals as Audacity writes them."""
    return "".join(f"{t['start']:.6f}\t{t['end']:.6f}\t{t['label']}\n" for t in turns(doc))


ELAN_COLUMNS = ("Tier", "Begin Time", "End Time", "Duration", "Annotation")


def elan_tsv(doc: Mapping[str, Any]) -> str:
    """Tab-separated text for ELAN's File > Import > CSV / Tab-delimited Text File: a header
    row, then one row per turn: the tier (the label: one tier per face or voice), begin, end and
    duration in seconds (3 decimals), and the annotation (the caption text)."""
    rows = ["\t".join(ELAN_COLUMNS)]
    for t in turns(doc):
        rows.append(f"{t['label']}\t{t['start']:.3f}\t{t['end']:.3f}\t{t['end'] - t['start']:.3f}\t{_caption(t)}")
    return "\n".join(rows) + "\n"


# -- Python objects -------------------------------------------------------------------------
def _rttm_source(source: Any) -> Path | None:
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".rttm":
        return Path(source)
    return None


def _labelled(source: Any) -> list[tuple[str, float, float, str, dict]]:
    """(file id, start, end, label, extra) for every turn of a run's result or an RTTM file."""
    path = _rttm_source(source)
    if path is not None:
        from avflow import read_rttm

        return [(t.file, t.start, t.end, t.speaker, {}) for t in read_rttm(path)]
    doc = load(source)
    fid = file_id(doc)
    return [(fid, t["start"], t["end"], t["label"], {"face": t["speaker"], "voice": t["voice"]})
            for t in turns(doc)]


def to_annotation(source: Any, uri: str | None = None):
    """A ``pyannote.core.Annotation`` (what pyannote.metrics and pyannote's pipelines take):
    one segment per turn, labelled as in the RTTM, overlapping turns kept (one track each).

    :param source: a run's result (see :func:`load`) or an RTTM file (``.rttm``).
    :param uri: the annotation's uri (default: the file id). For an RTTM with several file ids,
        the one to take (required then); :func:`to_annotations` gives them all.
    """
    if _rttm_source(source) is None:  # one recording
        doc = load(source)
        ann = _annotations(_labelled(doc)).get(file_id(doc)) or _pyannote().Annotation(uri=file_id(doc))
        if uri is not None:
            ann.uri = uri
        return ann
    anns = to_annotations(source)
    if uri is None and len(anns) > 1:
        raise ValueError(f"{source}: several file ids ({', '.join(anns)}); pass uri= or use to_annotations()")
    if uri is None:
        return next(iter(anns.values()), None) or _pyannote().Annotation()
    if uri not in anns:
        raise ValueError(f"{source}: no file id {uri!r}; have: {', '.join(anns) or '(none)'}")
    return anns[uri]


def to_annotations(source: Any) -> dict[str, Any]:
    """One ``pyannote.core.Annotation`` per file id (an RTTM may hold several), in file order."""
    return _annotations(_labelled(source))


def _annotations(labelled: list[tuple[str, float, float, str, dict]]) -> dict[str, Any]:
    core = _pyannote()
    out: dict[str, Any] = {}
    for i, (fid, start, end, label, _) in enumerate(labelled):
        ann = out.setdefault(fid, core.Annotation(uri=fid))
        if end > start:
            ann[core.Segment(start, end), i] = label  # a track per turn: overlapping turns all kept
    return out


def to_supervisions(source: Any, recording_id: str | None = None) -> list:
    """lhotse ``SupervisionSegment`` s, one per turn: ``speaker`` (labelled as in the RTTM),
    ``start``, ``duration``, ``recording_id`` (the file id, or ``recording_id``), channel 0,
    and for a run's result ``custom={"face": ..., "voice": ...}``.

    :param source: a run's result (see :func:`load`) or an RTTM file (``.rttm``, every file id).
    """
    try:
        from lhotse import SupervisionSegment
    except ImportError as exc:
        raise ImportError("to_supervisions needs lhotse: pip install lhotse") from exc
    out = []
    for i, (fid, start, end, label, extra) in enumerate(_labelled(source)):
        rid = recording_id or fid
        out.append(SupervisionSegment(id=f"{rid}-{i:05d}", recording_id=rid, start=start,
                                      duration=round(end - start, 6), channel=0, speaker=label,
                                      custom=dict(extra) if extra else None))
    return out


def to_supervision_set(source: Any, recording_id: str | None = None):
    """A lhotse ``SupervisionSet`` of :func:`to_supervisions`."""
    segments = to_supervisions(source, recording_id)  # first: its ImportError names the package
    from lhotse import SupervisionSet

    return SupervisionSet.from_segments(segments)


def _pyannote():
    try:
        import pyannote.core as core
    except ImportError as exc:
        raise ImportError("to_annotation needs pyannote.core: pip install pyannote.core") from exc
    return core
