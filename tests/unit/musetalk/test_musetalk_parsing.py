"""Blend mode ``parsing``: BiSeNet in the real file formats, MuseTalk's mask rules, the paste.

MuseTalk's rules are reimplemented here the way its ``face_parsing`` and ``blending`` code
runs them (in-place label edits, PIL crops and pastes), independently of
:mod:`avflow_musetalk.parsing`, and compared on a known segmentation and on the network's.
"""

from __future__ import annotations

import shutil
import zipfile
from fractions import Fraction

import numpy as np
import pytest

from avflow import ModelError
from avflow.testing import NodeRunner
from avflow_musetalk import Blend
from avflow_musetalk.bisenet import BiSeNet, ResNet18
from avflow_musetalk.geometry import paste_face
from avflow_musetalk.layout import FACE_PARSE_FILES
from avflow_musetalk.loading import load_face_parser, read_state_dict
from avflow_musetalk.parsing import (FaceParser, blur_size, box_weights, crop_mask, padded_crop,
                                     parsing_crop_box, region_mask)
from avflow_musetalk.payloads import GeneratedFrame

PARSER, BACKBONE = (f.path for f in FACE_PARSE_FILES)


# -- MuseTalk's rules, as its code applies them ---------------------------------------------
def musetalk_kernel() -> np.ndarray:
    cone, tail = 21, 12
    k = np.zeros((cone + tail, cone + tail), np.uint8)
    mid = (cone + tail) // 2
    for row in range(cone):
        if row >= cone // 2:
            width = 2 * (row - cone // 2) + 1
            k[row, mid - width // 2: mid + width // 2 + 1] = 1
    base = int(k[cone - 1].sum())
    for row in range(cone, cone + tail):
        k[row, max(0, mid - base // 2): min(cone + tail, mid + base // 2 + 1)] = 1
    return k


def musetalk_region(labels: np.ndarray, mode: str, left: int = 90, right: int = 90) -> np.ndarray:
    import cv2

    parsing = labels.astype(np.int64).copy()
    if mode == "jaw":
        face = (np.isin(parsing, [1]) * 255).astype(np.uint8)
        dilated = cv2.dilate(face, musetalk_kernel(), iterations=1)
        eroded = cv2.erode(dilated, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (35, 3)), iterations=2)
        cheeks = np.zeros((512, 512), np.uint8)
        cv2.rectangle(cheeks, (0, 0), (256 - left, 512), 255, -1)
        cv2.rectangle(cheeks, (256 + right, 0), (512, 512), 255, -1)
        face = cv2.bitwise_or(cv2.bitwise_and(eroded, cheeks), cv2.bitwise_and(dilated, ~cheeks))
        parsing[(face == 255) & (~np.isin(parsing, [10]))] = 255
        parsing[np.isin(parsing, [11, 12, 13])] = 255
    elif mode == "neck":
        parsing[np.isin(parsing, [1, 11, 12, 13, 14])] = 255
    else:
        parsing[np.isin(parsing, [1, 11, 12, 13])] = 255
    parsing[parsing != 255] = 0
    return parsing.astype(np.uint8)


def musetalk_paste(image: np.ndarray, face: np.ndarray, box, region: np.ndarray, expand: float = 1.5,
                   blur: float = 0.05) -> np.ndarray:
    """MuseTalk's get_image on an RGB frame, with the parser's 512 x 512 region given."""
    import cv2
    from PIL import Image

    body = Image.fromarray(image)
    x, y, x1, y1 = box
    cx, cy = (x + x1) // 2, (y + y1) // 2
    s = int(max(x1 - x, y1 - y) // 2 * expand)
    crop_box = (cx - s, cy - s, cx + s, cy + s)
    face_large = body.crop(crop_box)
    seg = Image.fromarray(region).resize(face_large.size)
    inner = (x - crop_box[0], y - crop_box[1], x1 - crop_box[0], y1 - crop_box[1])
    mask = Image.new("L", face_large.size, 0)
    mask.paste(seg.crop(inner), inner)
    width, height = mask.size
    top = int(height * 0.5)
    kept = Image.new("L", mask.size, 0)
    kept.paste(mask.crop((0, top, width, height)), (0, top))
    k = int(blur * face_large.size[0] // 2 * 2) + 1
    alpha = Image.fromarray(cv2.GaussianBlur(np.array(kept), (k, k), 0))
    face_large.paste(Image.fromarray(cv2.resize(face, (x1 - x, y1 - y))), inner[:2])
    body.paste(face_large, crop_box[:2], alpha)
    return np.array(body)


def known_segmentation() -> np.ndarray:
    """A face as a parser labels it: skin, nose, lips, mouth, neck, hair, background."""
    import cv2

    lab = np.zeros((512, 512), np.uint8)
    cv2.rectangle(lab, (150, 400), (360, 511), 14, -1)             # neck
    cv2.ellipse(lab, (256, 250), (170, 215), 0, 0, 360, 1, -1)      # skin
    cv2.ellipse(lab, (256, 90), (180, 90), 0, 180, 360, 17, -1)     # hair
    cv2.ellipse(lab, (256, 250), (32, 60), 0, 0, 360, 10, -1)       # nose
    cv2.ellipse(lab, (256, 345), (70, 14), 0, 180, 360, 12, -1)     # upper lip
    cv2.ellipse(lab, (256, 350), (66, 18), 0, 0, 180, 13, -1)       # lower lip
    cv2.line(lab, (200, 347), (312, 347), 11, 3)                    # mouth
    return lab


def face_image(size=(420, 380)) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    return img


# -- the network and its files ---------------------------------------------------------------
def test_architecture_has_face_parsings_names_and_sizes():
    shapes = {k: tuple(v.shape) for k, v in BiSeNet().state_dict().items()}
    assert shapes["cp.resnet.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["cp.resnet.layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["cp.arm16.conv.conv.weight"] == (128, 256, 3, 3)
    assert shapes["cp.arm32.conv_atten.weight"] == (128, 128, 1, 1)
    assert shapes["cp.conv_avg.conv.weight"] == (128, 512, 1, 1)
    assert shapes["ffm.convblk.conv.weight"] == (256, 256, 1, 1)
    assert shapes["ffm.conv1.weight"] == (64, 256, 1, 1) and shapes["ffm.conv2.weight"] == (256, 64, 1, 1)
    assert shapes["conv_out.conv.conv.weight"] == (256, 256, 3, 3)
    assert shapes["conv_out.conv_out.weight"] == (19, 256, 1, 1)
    assert shapes["conv_out16.conv_out.weight"] == (19, 64, 1, 1)
    assert not any(k.startswith("cp.resnet.fc") for k in shapes)
    # torchvision's ResNet-18: 11,689,512 parameters
    assert sum(p.numel() for p in ResNet18(classifier=True).parameters()) == 11_689_512


def test_scaffold_writes_both_files_in_the_legacy_format(tiny_models):
    backbone = read_state_dict(tiny_models / BACKBONE, "backbone")
    parser = read_state_dict(tiny_models / PARSER, "parser")
    for name in (BACKBONE, PARSER):
        assert not zipfile.is_zipfile(tiny_models / name)  # torch.save before 1.6, as the real files
    assert tuple(backbone["fc.weight"].shape) == (1000, 512) and "conv1.weight" in backbone
    assert not any(k.endswith("num_batches_tracked") for k in backbone)  # torchvision's 2017 file has none
    assert set(parser) == set(BiSeNet().state_dict())
    assert parser["cp.resnet.bn1.num_batches_tracked"].dtype.is_floating_point is False
    assert float(parser["cp.resnet.bn1.running_var"].min()) == 1.0


def test_loader_loads_the_parser_over_the_backbone(tiny_models):
    import torch

    model = load_face_parser(tiny_models, "cpu")
    parser = read_state_dict(tiny_models / PARSER, "parser")
    assert torch.equal(model.cp.resnet.conv1.weight, parser["cp.resnet.conv1.weight"])
    assert torch.equal(model.conv_out.conv_out.weight, parser["conv_out.conv_out.weight"])
    with torch.inference_mode():
        logits = model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 19, 64, 64) and torch.isfinite(logits).all()


@pytest.fixture
def models(tiny_models, tmp_path):
    dst = tmp_path / "models"
    shutil.copytree(tiny_models, dst)
    return dst


def test_missing_parser_file_is_named(models):
    (models / BACKBONE).unlink()
    with pytest.raises(ModelError) as err:
        load_face_parser(models, "cpu")
    assert "1 file(s) missing" in str(err.value)
    assert f"{BACKBONE}: ImageNet ResNet-18, the face parser's backbone" in str(err.value)


def test_wrong_shaped_or_renamed_weights_are_named(models):
    import torch

    state = torch.load(models / PARSER, weights_only=True)
    state["conv_out.conv_out.weight"] = torch.zeros(11, 256, 1, 1)
    torch.save(state, models / PARSER)
    with pytest.raises(ModelError, match=r"79999_iter.pth: key 'conv_out.conv_out.weight' has shape \(11, 256, 1, 1\)"):
        load_face_parser(models, "cpu")
    state = torch.load(models / BACKBONE, weights_only=True)
    state["classifier.weight"] = state.pop("fc.weight")
    torch.save(state, models / BACKBONE)
    with pytest.raises(ModelError, match="resnet18-5c106cde.pth: 1 key"):
        load_face_parser(models, "cpu")


def test_old_checkpoints_without_counters_and_data_parallel_names_load(models):
    import torch

    state = torch.load(models / PARSER, weights_only=True)
    state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, models / PARSER)
    model = load_face_parser(models, "cpu")
    assert int(model.cp.resnet.bn1.num_batches_tracked) == 0


# -- MuseTalk's rules ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["jaw", "raw", "neck"])
def test_region_rules_match_musetalks_on_a_known_segmentation(mode):
    labels = known_segmentation()
    got = region_mask(labels, mode)
    np.testing.assert_array_equal(got, musetalk_region(labels, mode))
    assert set(np.unique(got)) == {0, 255}


def test_jaw_region_on_a_known_segmentation():
    """What the jaw mode does, pixel by pixel where it is unambiguous."""
    labels = known_segmentation()
    jaw, raw = region_mask(labels, "jaw") > 0, region_mask(labels, "raw") > 0
    assert not jaw[labels == 10].any()                  # the nose is out
    assert jaw[np.isin(labels, (11, 12, 13))].all()     # mouth and lips in
    # The cone dilation: 6 px below the chin (the skin ends at row 465), 16 above the forehead.
    assert jaw[471, 256] and not jaw[472, 256] and not raw[470, 256]
    assert jaw[75, 256] and not jaw[74, 256] and not raw[80, 256]
    # In the cheek columns (up to 256 - 90 and from 256 + 90), eroded: 24 px in from each side.
    assert raw[250, 86] and not jaw[250, 109] and jaw[250, 110]
    assert raw[250, 426] and not jaw[250, 403] and jaw[250, 402]
    # Between them, never eroded: all the skin but the nose stays.
    middle = slice(256 - 90 + 1, 256 + 90)
    assert jaw[:, middle][raw[:, middle] & (labels[:, middle] != 10)].all()
    assert (region_mask(labels, "jaw", cheek_width=0) > 0).sum() < jaw.sum()  # all columns cheeks: all eroded


def test_cheek_width_moves_the_eroded_columns():
    labels = known_segmentation()
    for width in (40, 90, 150):
        np.testing.assert_array_equal(region_mask(labels, "jaw", width), musetalk_region(labels, "jaw", width, width))


@pytest.mark.parametrize("box", [(60, 90, 300, 380), (5, 200, 200, 420)])  # the second reaches past the frame
@pytest.mark.parametrize("blur", [0.05, 0.1])
def test_paste_matches_musetalks_get_image(box, blur):
    img = face_image()
    face = np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    region = region_mask(known_segmentation(), "jaw")
    crop_box = parsing_crop_box(box)
    weights = box_weights(crop_mask(region, box, crop_box, blur), box, crop_box)
    ours = paste_face(img, face, box, weights, resize="bilinear")
    theirs = musetalk_paste(img, face, box, region, blur=blur)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # rounding of the blend only
    x1, y1, x2, y2 = box
    outside = np.ones(img.shape[:2], bool)
    outside[max(y1, 0):y2, max(x1, 0):x2] = False
    np.testing.assert_array_equal(ours[outside], img[outside])
    # Cut at the box's centre line, then blurred: nothing changes above it by more than the blur's reach.
    reach = blur_size(blur, crop_box[2] - crop_box[0]) // 2
    top = (y1 + y2) // 2 - reach
    np.testing.assert_array_equal(ours[:top], img[:top])
    assert (ours[top:top + reach] != img[top:top + reach]).any()


def test_mask_is_zero_outside_the_box_and_above_its_centre():
    box = (60, 90, 300, 380)
    crop_box = parsing_crop_box(box)
    mask = crop_mask(np.full((512, 512), 255, np.uint8), box, crop_box, 0.0)
    cx1, cy1 = crop_box[:2]
    rows, cols = np.nonzero(mask)
    assert rows.min() + cy1 == (box[1] + box[3]) // 2 and rows.max() + cy1 == box[3] - 1
    assert cols.min() + cx1 == box[0] and cols.max() + cx1 == box[2] - 1


def test_padded_crop_is_black_outside_the_frame():
    img = face_image((50, 40))
    crop = padded_crop(img, (-10, 30, 20, 60))
    assert crop.shape == (30, 30, 3)
    assert not crop[:, :10].any() and not crop[20:].any()
    np.testing.assert_array_equal(crop[:20, 10:], img[30:50, 0:20])


# -- the node --------------------------------------------------------------------------------
def generated(img, box, seed=0):
    face = np.random.default_rng(seed).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    return GeneratedFrame(pts=0, time_base=Fraction(1, 25), image=img, box=box, face=face, out_index=0)


@pytest.mark.parametrize("version, classes", [("v15", "jaw"), ("v1", "raw")])
def test_parsing_mode_is_musetalks_blend_with_the_networks_labels(tiny_models, version, classes):
    """The node end to end (random weights): MuseTalk's get_image with the labels the loaded
    network gives for MuseTalk's crop (PIL's, black outside the frame)."""
    from PIL import Image

    img = face_image()
    box = (5, 60, 250, 400)
    item = generated(img, box)
    runner = NodeRunner(Blend, models=tiny_models, mode="parsing", version=version)
    out = runner.run({"frames": [item]})["frames"][0].image
    parser = FaceParser(load_face_parser(tiny_models, "cpu"))
    crop = np.array(Image.fromarray(img).crop(parsing_crop_box(box)))
    labels = parser.labels(crop)
    region = musetalk_region(labels, classes)
    assert 0 < (region > 0).mean() < 1  # the random network labels some of the crop as face
    theirs = musetalk_paste(img, item.face, box, region)
    diff = np.abs(out.astype(int) - theirs.astype(int))
    assert diff.max() <= 1 and (out != img).any()


def test_auto_takes_parsing_when_the_files_are_there(tiny_models, models):
    img = face_image()
    item = generated(img, (60, 90, 300, 380))
    auto = NodeRunner(Blend, models=tiny_models)
    with_files = auto.run({"frames": [item]})["frames"][0].image
    assert auto.node.mode == "parsing"
    parsing = NodeRunner(Blend, models=tiny_models, mode="parsing").run({"frames": [item]})["frames"][0].image
    np.testing.assert_array_equal(with_files, parsing)

    (models / PARSER).unlink()
    fallback = NodeRunner(Blend, models=models)
    out = fallback.run({"frames": [item]})["frames"][0].image
    assert fallback.node.mode == "landmarks"
    landmarks = NodeRunner(Blend, mode="landmarks").run({"frames": [item]})["frames"][0].image
    np.testing.assert_array_equal(out, landmarks)
    assert (landmarks != parsing).any()


def test_parsing_without_its_files_is_a_clear_error(models):
    (models / PARSER).unlink()
    with pytest.raises(ModelError, match=r"79999_iter.pth: BiSeNet face-parsing weights"):
        NodeRunner(Blend, models=models, mode="parsing").open()
    with pytest.raises(ModelError, match="needs the model folder"):
        NodeRunner(Blend, mode="parsing").open()
