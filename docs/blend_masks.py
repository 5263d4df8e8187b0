"""Render ``docs/blend_masks.png``: the two ``musetalk.blend`` masks side by side on a real face.

    .venv/bin/python docs/blend_masks.py [--out docs/blend_masks.png]

Panels, on ``../shared/media/yongen.jpeg`` (its face found by ``musetalk.face_region``):

1. the face box (MuseTalk's crop region, v1.5 margin), its centre line, the parsing crop;
2. ``blend: landmarks``: the jaw polygon from the face mesh, eroded and feathered;
3. ``blend: parsing`` through MuseTalk's rules (v1.5 ``jaw``) on a segmentation drawn from the
   landmarks (skin, nose, lips, mouth), standing in for what the trained BiSeNet labels;
4. ``blend: parsing`` with the scaffold's random BiSeNet weights, as a test run computes it
   (the regions are arbitrary, the rules' constraints are not: box, centre line, blur).

Random weights only (``avflow models scaffold --random --tiny``); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MEDIA = (REPO / ".." / "shared" / "media").resolve()


def drawn_labels(crop_box, lm68: np.ndarray) -> np.ndarray:
    """A 512 x 512 class map of the parsing crop drawn from the 68 landmarks."""
    import cv2

    from avflow_musetalk.bisenet import INPUT_SIZE
    from avflow_musetalk.parsing import MOUTH, NOSE, SKIN, UPPER_LIP, LOWER_LIP

    x1, y1, x2, _ = crop_box
    pts = (np.asarray(lm68, np.float64) - (x1, y1)) * (INPUT_SIZE / (x2 - x1))
    lab = np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)

    def fill(idx, value):
        hull = cv2.convexHull(np.round(pts[list(idx)]).astype(np.int32))
        cv2.fillPoly(lab, [hull], value)

    fill(range(0, 27), SKIN)  # jaw and brows
    fill([27, 28, 29, 30, 31, 32, 33, 34, 35], NOSE)
    cv2.fillPoly(lab, [np.round(pts[48:60]).astype(np.int32)], LOWER_LIP)
    cv2.fillPoly(lab, [np.round(pts[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]]).astype(np.int32)], UPPER_LIP)
    cv2.fillPoly(lab, [np.round(pts[60:68]).astype(np.int32)], MOUTH)
    return lab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "blend_masks.png")
    args = ap.parse_args()

    import av
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avflow import VideoFrame
    from avflow.testing import NodeRunner
    from avflow_musetalk import FaceRegion
    from avflow_musetalk.geometry import blend_mask
    from avflow_musetalk.loading import load_face_parser
    from avflow_musetalk.parsing import (FaceParser, box_weights, crop_mask, parsing_crop_box, region_mask)
    from avflow_musetalk.scaffold import write_scaffold

    with av.open(str(MEDIA / "yongen.jpeg")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="rgb24")
    scale = 640 / image.shape[0]
    image = cv2.resize(image, (round(image.shape[1] * scale), 640), interpolation=cv2.INTER_AREA)
    with tempfile.TemporaryDirectory() as tmp:
        frame = VideoFrame(pts=0, time_base=Fraction(1, 25), image=image, index=0)
        face = NodeRunner(FaceRegion, output_dir=tmp, cache=False).run({"frames": [frame]})["frames"][0]
        write_scaffold(Path(tmp) / "models", tiny=True, seed=0)
        parser = FaceParser(load_face_parser(Path(tmp) / "models", "cpu"))
    box, lm = face.box, face.landmarks
    crop = parsing_crop_box(box)

    def full(weights: np.ndarray) -> np.ndarray:
        out = np.zeros(image.shape[:2], np.float32)
        x1, y1, x2, y2 = box
        out[y1:y2, x1:x2] = weights
        return out

    masks = {
        "landmarks (no weights)": full(blend_mask(box, lm)),
        "parsing, v1.5 jaw rules\non a segmentation drawn from landmarks":
            full(box_weights(crop_mask(region_mask(drawn_labels(crop, lm), "jaw"), box, crop), box, crop)),
        "parsing, scaffold's random\nBiSeNet weights": full(parser.mask(image, box)),
    }
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = crop
    pad = 10
    view = (slice(max(cy1 - pad, 0), min(cy2 + pad, image.shape[0])),
            slice(max(cx1 - pad, 0), min(cx2 + pad, image.shape[1])))
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6), dpi=80)
    ax = axes[0]
    ax.imshow(image[view])
    oy, ox = view[0].start, view[1].start
    ax.add_patch(plt.Rectangle((x1 - ox, y1 - oy), x2 - x1, y2 - y1, fill=False, color="lime", lw=1.5))
    ax.add_patch(plt.Rectangle((cx1 - ox, cy1 - oy), cx2 - cx1, cy2 - cy1, fill=False, color="yellow", lw=1,
                               ls="--"))
    ax.axhline((y1 + y2) // 2 - oy, color="lime", lw=0.8, ls=":")
    ax.set_title("face box, centre line,\nparsing crop (dashed)", fontsize=9)
    grey = image[view].mean(axis=2, keepdims=True).repeat(3, axis=2) / 255.0
    for ax, (title, mask) in zip(axes[1:], masks.items()):
        m = mask[view][..., None]
        tint = grey * (1 - 0.6 * m) + np.array([1.0, 0.15, 0.1]) * 0.6 * m
        ax.imshow(np.clip(tint, 0, 1))
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
