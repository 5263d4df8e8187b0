"""``musetalk.face_region`` and ``musetalk.crop``: where the face is, and the model's view of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from avflow import MediaInfo, NoConfig, Node, Port, VideoFrame, param

from ..geometry import bbox_shift_range, crop_face, mesh_to_68, musetalk_box
from ..payloads import CropFrame, FaceFrame, advance

CROP_SIZE = 256  # MuseTalk's face resolution: 256 px -> 32 x 32 latents


@dataclass(frozen=True)
class FaceRegionConfig:
    bbox_shift: int = param(0, "pixels to move the crop's centre line (landmark 29, lower nose bridge) down "
                               "(+) or up (-); MuseTalk's bbox_shift, mostly useful with v1")
    version: Literal["v15", "v1"] = param("v15", "MuseTalk version: v15 adds extra_margin below the chin")
    extra_margin: int = param(10, "pixels added below the chin with version v15", min=0)
    detector: Literal["full", "short"] = param("full", "MediaPipe face detector: 'full' range (faces up to "
                                                       "~5 m) or 'short' range (within ~2 m)")
    min_confidence: float = param(0.5, "minimum face detection score", min=0.0, max=1.0)
    cache: bool = param(True, "reuse detections of a video seen before (keyed by frame content, stored "
                              "in the cache folder)")


class FaceRegion(Node):
    """Find the face of each frame and the region MuseTalk regenerates.

    MediaPipe face detection picks the largest face; the face mesh's landmarks (mapped to the
    68 iBUG points) give MuseTalk's box: landmarks' width, down to the chin (+ ``extra_margin``
    for v1.5), and as far above the lower nose bridge as the chin is below it (moved by
    ``bbox_shift``); it is clamped to the frame. A frame without a face gets ``box`` None and
    passes through the whole chain unchanged. Detections are cached per video in
    ``<cache dir>/musetalk/faces/`` (frame hashes, no pickle), so a second audio on the same
    avatar skips detection; ``bbox_shift`` and the margin are applied after the cache, so
    changing them reuses it too. Given the driving audio's ``MediaInfo``, frames shown after
    the audio has ended (they are dropped later) skip detection.

    Ports:
      - in ``frames`` (VideoFrame): the avatar video.
      - in ``audio_info`` (MediaInfo, optional): the driving audio's duration, as a hint.
      - out ``frames`` (FaceFrame): the same frames with ``box`` and ``landmarks``.

    Example::

        face:
          type: musetalk.face_region
          inputs: {frames: video.video, audio_info: audio.info}
          params: {bbox_shift: 0, version: v15}
    """

    type = "musetalk.face_region"
    Config = FaceRegionConfig
    inputs = {"frames": Port(VideoFrame, "avatar frames"),
              "audio_info": Port(MediaInfo, "the driving audio's duration (frames after it skip detection)",
                                 optional=True)}
    outputs = {"frames": Port(FaceFrame, "frames with their face region (box None: no face)")}
    queue_size = 8

    def open(self, ctx) -> None:
        self._mesher = None  # created on the first frame the cache does not know
        self._cache = None
        self._count = 0
        self._faces = 0
        self._skipped = 0
        self._advised = False
        self._t0 = None
        self._horizon: float | None = None  # frames from this time on are never shown

    def _detect(self, image, ctx):
        from ..facemesh import FaceMesher

        if self._mesher is None:
            self._mesher = FaceMesher(self.config.min_confidence, full_range=self.config.detector == "full")
        return self._mesher(image)

    def process(self, port, item, ctx):
        from ..facemesh import FaceCache, frame_hash

        if port == "audio_info":
            if item.duration > 0:  # a container's estimate: keep a margin
                self._horizon = item.duration * 1.05 + 0.5
            return None
        c = self.config
        i = self._count
        self._count += 1
        if self._t0 is None:
            self._t0 = item.time
        if self._horizon is not None and item.time - self._t0 >= self._horizon:
            self._skipped += 1
            return {"frames": FaceFrame(pts=item.pts, time_base=item.time_base, image=item.image, index=i,
                                        duration=item.duration)}
        if c.cache:
            if self._cache is None:
                settings = f"{c.detector}|{c.min_confidence}"
                self._cache = FaceCache(ctx.cache_dir / "musetalk" / "faces", item.image, settings)
            digest = frame_hash(item.image)
            found = self._cache.get(i, digest)
            if found is None:
                found = self._detect(item.image, ctx)
                self._cache.put(i, digest, found)
        else:
            found = self._detect(item.image, ctx)
        lm68 = mesh_to_68(found.mesh) if found.mesh is not None else None
        h, w = item.image.shape[:2]
        margin = c.extra_margin if c.version == "v15" else 0
        box = musetalk_box(lm68, w, h, c.bbox_shift, margin,
                           detection=None if found.detection is None else found.detection[:4])
        if box is not None:
            self._faces += 1
            if lm68 is not None and not self._advised:
                lo, hi = bbox_shift_range(lm68)
                ctx.logger.info("bbox_shift: useful range about [%d, %d] px for this face; current %d",
                                lo, hi, c.bbox_shift)
                self._advised = True
        return {"frames": FaceFrame(pts=item.pts, time_base=item.time_base, image=item.image, index=i,
                                    duration=item.duration, box=box,
                                    landmarks=lm68 if box is not None else None)}

    def finish(self, ctx):
        if self._count - self._skipped and not self._faces:
            ctx.logger.warning("no face found in any of %d frames: the video passes through unchanged", self._count)
        if self._cache is not None:
            ctx.logger.info("face regions: %d frames, %d from the cache, %d after the audio's end skipped",
                            self._count, self._cache.hits, self._skipped)
            self._cache.save()
        return None

    def close(self, ctx) -> None:
        if self._cache is not None and self._cache.dirty:
            self._cache.save()  # what was detected before a failure stays useful
        if self._mesher is not None:
            self._mesher.close()
            self._mesher = None


class Crop(Node):
    """Cut the face region out and resize it to 256 x 256 with Lanczos, as MuseTalk does.

    The UNet's masked input (lower half blanked) is made from this crop on the device by
    ``musetalk.vae_encode``. Frames without a face get a black placeholder crop, so batches
    always stack; the models skip them.

    Ports:
      - in ``frames`` (FaceFrame): frames with their face region.
      - out ``frames`` (CropFrame): the same frames with ``crop`` (256x256x3 uint8 RGB).

    Example::

        crop:
          type: musetalk.crop
          inputs: {frames: face.frames}
    """

    type = "musetalk.crop"
    Config = NoConfig
    inputs = {"frames": Port(FaceFrame, "frames with their face region")}
    outputs = {"frames": Port(CropFrame, "frames with a 256x256 face crop")}
    queue_size = 8

    def process(self, port, item: FaceFrame, ctx):
        import numpy as np

        if item.box is None:
            crop = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
        else:
            crop = crop_face(item.image, item.box, CROP_SIZE)
        return {"frames": advance(item, CropFrame, crop=crop)}
