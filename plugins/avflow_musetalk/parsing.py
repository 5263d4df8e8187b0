"""MuseTalk's blending mask from face parsing (``musetalk.blend`` mode ``parsing``).

MuseTalk (``musetalk/utils/blending.py`` and ``face_parsing``) pastes the generated face as
follows, for a face box ``(x1, y1, x2, y2)`` (v1.5: the box with its extra bottom margin):

1. A square *parsing crop* around the box's centre ``((x1 + x2) // 2, (y1 + y2) // 2)``, of
   half side ``s = int(max(w, h) // 2 * expand)`` (``expand`` 1.5), black outside the frame.
2. The crop resized to 512 x 512 (PIL bilinear), parsed by BiSeNet into 19 classes
   (:mod:`.bisenet`), and the classes turned into a 0/255 region (:func:`region_mask`):

   - ``raw`` (v1): skin, mouth, upper and lower lip (classes 1, 11, 12, 13);
   - ``neck``: the same and the neck (14);
   - ``jaw`` (v1.5): the skin dilated by a downward cone (21 rows of cone, 12 of tail), then,
     in the cheek columns (``cheek_width`` pixels of 512 either side of the centre and beyond),
     eroded twice by a flat 35 x 3 ellipse; the nose (10) removed; mouth and lips added.

3. The region resized back to the crop (PIL bicubic), kept only inside the face box and below
   the crop's middle row (the box's centre line), blurred with a Gaussian of odd size
   ``2 floor(blur x crop width / 2) + 1`` (``blur`` 0.05; 0.1 in MuseTalk's real-time mode).
4. The generated face, resized to the box (bilinear), blended with the frame through that mask.

Only pixels inside the face box can change: the mask is zero outside it before the blur, and
outside it the crop holds the frame's own pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from .bisenet import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE

if TYPE_CHECKING:
    import torch

Box = tuple[int, int, int, int]
ParsingMode = Literal["jaw", "raw", "neck"]

SKIN, NOSE, MOUTH, UPPER_LIP, LOWER_LIP, NECK = 1, 10, 11, 12, 13, 14
LIPS_AND_MOUTH = (MOUTH, UPPER_LIP, LOWER_LIP)
CONE_ROWS, TAIL_ROWS = 21, 12  # MuseTalk's jaw dilation kernel
CHEEK_KERNEL = (35, 3)  # width, height of the cheek erosion's ellipse
CHEEK_EROSIONS = 2


def parsing_crop_box(box: Box, expand: float = 1.5) -> Box:
    """MuseTalk's square crop around ``box`` (may reach outside the frame)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    s = int(max(x2 - x1, y2 - y1) // 2 * expand)
    return cx - s, cy - s, cx + s, cy + s


def padded_crop(image: np.ndarray, box: Box) -> np.ndarray:
    """``image[y1:y2, x1:x2]`` with black where ``box`` reaches outside the image."""
    x1, y1, x2, y2 = box
    h, w = image.shape[:2]
    out = np.zeros((y2 - y1, x2 - x1, *image.shape[2:]), image.dtype)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return out


def cone_kernel() -> np.ndarray:
    """The jaw dilation's structuring element: a cone widening downward from the centre row,
    then a vertical band as wide as the cone's base (33 x 33, anchor at the centre)."""
    size = CONE_ROWS + TAIL_ROWS
    centre = size // 2
    kernel = np.zeros((size, size), np.uint8)
    for row in range(CONE_ROWS // 2, CONE_ROWS):
        half = row - CONE_ROWS // 2  # width 2 half + 1
        kernel[row, centre - half:centre + half + 1] = 1
    base = CONE_ROWS - 1 - CONE_ROWS // 2
    kernel[CONE_ROWS:, max(0, centre - base):centre + base + 1] = 1
    return kernel


def cheek_columns(left: int = 90, right: int = 90, size: int = INPUT_SIZE) -> np.ndarray:
    """Boolean (size,) of the columns counted as cheeks: up to ``centre - left`` and from
    ``centre + right`` on (both inclusive, as MuseTalk's filled rectangles)."""
    cols = np.arange(size)
    centre = size // 2
    return (cols <= centre - left) | (cols >= centre + right)


def region_mask(labels: np.ndarray, mode: ParsingMode = "jaw", cheek_width: int = 90) -> np.ndarray:
    """MuseTalk's blend region (uint8 0/255) of a class map ``labels`` (H, W) of the parser."""
    import cv2

    labels = np.asarray(labels)
    if mode == "raw":
        keep = np.isin(labels, (SKIN, *LIPS_AND_MOUTH))
    elif mode == "neck":
        keep = np.isin(labels, (SKIN, *LIPS_AND_MOUTH, NECK))
    elif mode == "jaw":
        skin = np.where(labels == SKIN, 255, 0).astype(np.uint8)
        dilated = cv2.dilate(skin, cone_kernel())
        eroded = cv2.erode(dilated, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, CHEEK_KERNEL),
                           iterations=CHEEK_EROSIONS)
        cheeks = cheek_columns(cheek_width, cheek_width, labels.shape[1])[None, :]
        face = np.where(cheeks, eroded, dilated) == 255
        keep = (face & (labels != NOSE)) | np.isin(labels, LIPS_AND_MOUTH)
    else:
        raise ValueError(f"unknown parsing mode {mode!r}; valid: jaw, raw, neck")
    return np.where(keep, 255, 0).astype(np.uint8)


def blur_size(blur: float, width: int) -> int:
    """MuseTalk's odd Gaussian kernel size for a crop ``width`` pixels wide."""
    return int(blur * width // 2 * 2) + 1


def crop_mask(region: np.ndarray, box: Box, crop_box: Box, blur: float = 0.05,
              upper_boundary: float = 0.5) -> np.ndarray:
    """The uint8 blend mask over the parsing crop, from the 512 x 512 ``region``.

    Resized to the crop (bicubic), cut to the face box and to the rows from
    ``upper_boundary`` x crop height down, then blurred.
    """
    import cv2
    from PIL import Image

    cx1, cy1, cx2, cy2 = crop_box
    cw, ch = cx2 - cx1, cy2 - cy1
    full = np.asarray(Image.fromarray(region).resize((cw, ch), Image.Resampling.BICUBIC))
    out = np.zeros((ch, cw), np.uint8)
    x1, y1, x2, y2 = box
    bx1, by1 = max(x1 - cx1, 0), max(y1 - cy1, 0)
    bx2, by2 = min(x2 - cx1, cw), min(y2 - cy1, ch)
    by1 = max(by1, int(ch * upper_boundary))
    if bx2 > bx1 and by2 > by1:
        out[by1:by2, bx1:bx2] = full[by1:by2, bx1:bx2]
    k = blur_size(blur, cw)
    return cv2.GaussianBlur(out, (k, k), 0) if k > 1 else out


def box_weights(mask: np.ndarray, box: Box, crop_box: Box) -> np.ndarray:
    """The crop mask's part over ``box`` as float32 weights in [0, 1] (for :func:`paste_face`)."""
    x1, y1, x2, y2 = box
    cx1, cy1 = crop_box[:2]
    weights = np.zeros((y2 - y1, x2 - x1), np.float32)
    part = mask[max(y1 - cy1, 0):y2 - cy1, max(x1 - cx1, 0):x2 - cx1]
    oy, ox = max(cy1 - y1, 0), max(cx1 - x1, 0)
    weights[oy:oy + part.shape[0], ox:ox + part.shape[1]] = part / np.float32(255)
    return weights


class FaceParser:
    """BiSeNet (:func:`avflow_musetalk.loading.load_face_parser`) as MuseTalk runs it on a crop."""

    def __init__(self, model: "torch.nn.Module"):
        import torch

        self.model = model
        device = next(model.parameters()).device
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def labels(self, crop: np.ndarray) -> np.ndarray:
        """(512, 512) int64 class map of an RGB uint8 crop (resized to 512 x 512 first, bilinear)."""
        import torch
        from PIL import Image

        small = np.array(Image.fromarray(crop).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR))
        x = torch.from_numpy(small).to(self._mean.device)
        x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255).sub_(self._mean).div_(self._std).contiguous()
        with torch.inference_mode():
            logits = self.model(x)[0]
        return logits.argmax(0).cpu().numpy()

    def mask(self, image: np.ndarray, box: Box, mode: ParsingMode = "jaw", cheek_width: int = 90,
             expand: float = 1.5, blur: float = 0.05) -> np.ndarray:
        """MuseTalk's blend weights over ``box`` of ``image`` (float32 (h, w) in [0, 1])."""
        crop_box = parsing_crop_box(box, expand)
        labels = self.labels(padded_crop(image, crop_box))
        return box_weights(crop_mask(region_mask(labels, mode, cheek_width), box, crop_box, blur), box, crop_box)
