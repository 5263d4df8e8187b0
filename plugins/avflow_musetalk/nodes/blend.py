"""``musetalk.blend``: paste the generated face back into its source frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from avflow import ModelError, Node, Port, VideoFrame, param

from ..geometry import blend_mask, paste_face
from ..layout import FACE_PARSE_FILES, FACE_PARSE_MODELS, has_files
from ..payloads import GeneratedFrame

#: MuseTalk's parsing classes per version (``scripts/inference.py``: v1.5 ``--parsing_mode jaw``,
#: v1 ``get_image``'s default ``raw``).
PARSING_BY_VERSION = {"v15": "jaw", "v1": "raw"}


@dataclass(frozen=True)
class BlendConfig:
    mode: Literal["auto", "parsing", "landmarks"] = param(
        "auto", "mask: 'parsing' (MuseTalk's face-parsing mask, needs models/face-parse-bisent/), "
                "'landmarks' (a jaw mask from the face mesh, no weights), 'auto' (parsing when both "
                "face-parsing files are in models, else landmarks)")
    models: Path | None = param(None, "MuseTalk model folder (uses face-parse-bisent/ in mode parsing)")
    version: Literal["v15", "v1"] = param("v15", "MuseTalk version: which parsing classes (v15: jaw, v1: raw)")
    parsing_mode: Literal["auto", "jaw", "raw", "neck"] = param(
        "auto", "parsing classes: jaw (skin dilated down over the jaw, cheeks eroded, nose out, lips in), "
                "raw (skin and lips), neck (raw and the neck); auto: as MuseTalk for the version")
    cheek_width: int = param(90, "jaw mode: parsing-space columns (of 512) either side of the centre "
                                 "left uneroded (MuseTalk v1.5's left/right_cheek_width)", min=0, max=256)
    parsing_expand: float = param(1.5, "parsing crop: a square of side max(box w, h) x this around the box",
                                  min=1.0, max=3.0)
    parsing_blur: float = param(0.05, "parsing mask's Gaussian blur, as a fraction of the parsing crop's "
                                      "width (MuseTalk: 0.05; 0.1 in its real-time mode)", min=0.0, max=0.5)
    feather: float = param(0.08, "landmarks mode: soft edge of the mouth-and-jaw mask, as a fraction of the "
                                 "face box height", min=0.0, max=0.5)
    expand: float = param(1.06, "landmarks mode: how far the mask reaches past the jaw line (1: on it), so "
                                "a mouth opening wider than the source's is covered", min=0.8, max=1.5)


class Blend(Node):
    """Paste each generated face back into its frame through a soft mask over the lower face.

    Two masks (see the README's lip-sync section for how they look):

    - ``parsing``: MuseTalk's own (:mod:`avflow_musetalk.parsing`): BiSeNet face parsing of a
      1.5x crop around the face box, the version's classes (v1.5 ``jaw``, v1 ``raw``), kept
      inside the box and below its centre line, blurred by 0.05 x crop width. Needs
      ``face-parse-bisent/79999_iter.pth`` and ``resnet18-5c106cde.pth`` in ``models``.
    - ``landmarks``: no weights (:func:`avflow_musetalk.geometry.blend_mask`): the jaw polygon
      below the box's centre line, eroded and blurred by ``feather`` x box height; a smaller
      region than MuseTalk's (cheeks and the skin around the jaw line stay the source's).

    ``auto`` (the default) takes ``parsing`` when both files are there, else ``landmarks``. In
    both, every pixel outside the face box, and inside it where the mask is 0, is exactly the
    input's; frames without a face pass through untouched.

    Ports:
      - in ``frames`` (GeneratedFrame): frames with their generated face.
      - out ``frames`` (VideoFrame): the output video's frames (``index`` = output position).

    Example::

        blend:
          type: musetalk.blend
          inputs: {frames: decode_face.frames}
          params: {mode: auto, models: "${models}", version: v15}
    """

    type = "musetalk.blend"
    Config = BlendConfig
    models = FACE_PARSE_MODELS

    @classmethod
    def preflight(cls, config, check):
        """Mode ``parsing`` needs the face parser's files (``auto`` falls back to landmarks)."""
        if config.mode == "parsing" and not has_files(config.models, FACE_PARSE_FILES):
            missing = ", ".join(f.path for f in FACE_PARSE_FILES)
            return [("mode", f"mode parsing needs {missing} under the model folder {config.models}; "
                             "use mode auto or landmarks without them")]
        return []
    inputs = {"frames": Port(GeneratedFrame, "frames with a generated face")}
    outputs = {"frames": Port(VideoFrame, "lip-synced frames")}
    queue_size = 8

    def open(self, ctx) -> None:
        c = self.config
        self._parser = None
        mode = c.mode
        if mode == "auto":
            mode = "parsing" if has_files(c.models, FACE_PARSE_FILES) else "landmarks"
        if mode == "parsing":
            if c.models is None:
                raise ModelError("musetalk.blend: mode 'parsing' needs the model folder (param 'models') "
                                 f"holding {' and '.join(f.path for f in FACE_PARSE_FILES)}")
            from ..loading import load_face_parser
            from ..parsing import FaceParser

            model = ctx.resource(("musetalk.face_parser", str(c.models), ctx.device),
                                 lambda: load_face_parser(c.models, ctx.device, c.version))
            self._parser = FaceParser(model)
        self._classes = PARSING_BY_VERSION[c.version] if c.parsing_mode == "auto" else c.parsing_mode
        self.mode = mode
        ctx.logger.info("blend mask: %s", f"face parsing ({self._classes})" if mode == "parsing" else
                        "landmarks" + (" (no face-parse-bisent/ in the model folder)" if c.mode == "auto" else ""))

    def process(self, port, item: GeneratedFrame, ctx):
        # The last stage counts the frames it finishes, so the run's progress follows the
        # generation rather than the prompts, which run ahead into the model's queue.
        if item.n_out is not None and ctx.progress.total is None:
            ctx.progress.set_total(item.n_out, "frames")
        ctx.progress.advance()
        c = self.config
        image = item.image
        if item.box is not None and item.face is not None:
            if self._parser is not None:
                mask = self._parser.mask(image, item.box, self._classes, c.cheek_width, c.parsing_expand,
                                         c.parsing_blur)
                image = paste_face(image, item.face, item.box, mask, resize="bilinear")
            else:
                mask = blend_mask(item.box, item.landmarks, c.feather, c.expand)
                image = paste_face(image, item.face, item.box, mask)
        return {"frames": VideoFrame(pts=item.pts, time_base=item.time_base, image=image,
                                     index=item.out_index, duration=item.duration)}

    def close(self, ctx) -> None:
        self._parser = None
