"""Tests of softmass_core.io.roi: ROI parsing/clipping and the 470 x 280 model input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softmass_core.errors import RoiError
from softmass_core.io.roi import (
    MIN_ROI_SIZE,
    Prepared,
    Roi,
    cam_to_roi,
    parse_roi,
    paste_roi_map,
    prepare,
    resolve_roi,
)
from softmass_core.weights.manifest import InputSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --------------------------------------------------------------------------
# Roi and parse_roi
# --------------------------------------------------------------------------


def test_roi_basics() -> None:
    roi = Roi(10, 20, 110, 70)
    assert (roi.width, roi.height) == (100, 50)
    assert roi.as_string() == "10,20,110,70"
    assert roi.to_list() == [10, 20, 110, 70]
    assert Roi.from_scaled(roi.to_list(), 2.0, 0.5) == Roi(20, 10, 220, 35)
    assert Roi.from_scaled(roi.to_list(), 1.25, 1.0) == Roi(13, 20, 138, 70)  # 12.5 rounds half up
    assert Roi(np.int64(1), 2, 3, 4).x0 == 1 and type(Roi(np.int64(1), 2, 3, 4).x0) is int
    with pytest.raises(RoiError, match="whole number"):
        Roi(1.5, 2, 3, 4)  # type: ignore[arg-type]
    with pytest.raises(RoiError, match="positive"):
        Roi.from_scaled(roi.to_list(), 0, 1)


@pytest.mark.parametrize(
    "value",
    ["10,20,110,70", " 10 , 20,110 ,70 ", "[10, 20, 110, 70]", "(10,20,110,70)", "10.2,19.6,110,70"],
)
def test_parse_roi_text(value: str) -> None:
    assert parse_roi(value) == Roi(10, 20, 110, 70)


def test_parse_roi_other_forms() -> None:
    roi = Roi(1, 2, 30, 40)
    assert parse_roi(roi) is roi
    assert parse_roi([1, 2, 30, 40]) == roi
    assert parse_roi((1.0, 2.0, 30.0, 40.0)) == roi
    assert parse_roi(np.array([1, 2, 30, 40])) == roi
    assert parse_roi(roi.as_string()) == roi
    for missing in (None, "", "   ", float("nan"), np.float64("nan")):
        assert parse_roi(missing) is None


@pytest.mark.parametrize("bad", ["10,20,30", "10,20,30,40,50", "a,b,c,d", "10;20;30;40", "10,,30,40", "1,2,3,inf"])
def test_parse_roi_bad_text_quoted(bad: str) -> None:
    with pytest.raises(RoiError) as info:
        parse_roi(bad)
    assert repr(bad) in str(info.value)
    assert "x0,y0,x1,y1" in str(info.value)


def test_parse_roi_bad_types() -> None:
    with pytest.raises(RoiError, match="not 4"):
        parse_roi([1, 2, 3])
    with pytest.raises(RoiError):
        parse_roi(42)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("10,10,5,5", "x1 (5) must be greater than x0 (10) and y1 (5) must be greater than y0 (10)"),
        ("300,10,100,200", "x1 (100) must be greater than x0 (300)"),
        ([10, 40, 90, 20], "y1 (20) must be greater than y0 (40)"),
    ],
)
def test_parse_roi_refuses_inverted_corners_and_says_so(value, said) -> None:
    with pytest.raises(RoiError) as info:
        parse_roi(value)
    text = str(info.value)
    assert "is inverted" in text and said in text and "outside" not in text
    assert "x0,y0,x1,y1" in text


def test_parse_roi_inverted_suggests_the_width_height_reading() -> None:
    with pytest.raises(RoiError, match=r"If you meant x,y,width,height, write 10,10,15,15\."):
        parse_roi("10,10,5,5")


def test_parse_roi_zero_width_is_named() -> None:
    with pytest.raises(RoiError, match=r"has zero area: x1 \(10\) must be greater than x0 \(10\)"):
        parse_roi("10,10,10,30")


# --------------------------------------------------------------------------
# resolve_roi
# --------------------------------------------------------------------------


def test_resolve_none_is_whole_image() -> None:
    assert resolve_roi(None, 800, 600) == Roi(0, 0, 800, 600)
    assert resolve_roi(None, 4, 3) == Roi(0, 0, 4, 3)  # tiny image is still whole


def test_resolve_clips_and_normalises() -> None:
    assert resolve_roi(Roi(-20, -5, 900, 700), 800, 600) == Roi(0, 0, 800, 600)
    assert resolve_roi(Roi(300, 400, 100, 50), 800, 600) == Roi(100, 50, 300, 400)
    assert resolve_roi(Roi(790, 10, 850, 60), 800, 600) == Roi(790, 10, 800, 60)


def test_resolve_outside_image() -> None:
    with pytest.raises(RoiError) as info:
        resolve_roi(Roi(900, 10, 1000, 50), 800, 600)
    message = str(info.value)
    assert "900,10,1000,50" in message and "800 x 600" in message and "outside" in message


def test_resolve_zero_area() -> None:
    with pytest.raises(RoiError, match=r"10,10,10,50 has zero area.*800 x 600"):
        resolve_roi(Roi(10, 10, 10, 50), 800, 600)


def test_resolve_too_small_after_clipping() -> None:
    with pytest.raises(RoiError, match=rf"only 3 x 40 pixels.*at least {MIN_ROI_SIZE}"):
        resolve_roi(Roi(797, 10, 830, 50), 800, 600)
    assert resolve_roi(Roi(10, 10, 14, 14), 800, 600, min_size=4) == Roi(10, 10, 14, 14)


# --------------------------------------------------------------------------
# InputSpec
# --------------------------------------------------------------------------


def test_input_spec_defaults_are_the_papers() -> None:
    spec = InputSpec()
    assert (spec.width, spec.height) == (470, 280)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    assert spec.interpolation == "bilinear" and spec.resize_mode == "stretch"


def test_input_spec_round_trip_and_lists() -> None:
    spec = InputSpec(width=64, height=32, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], resize_mode="pad", pad_value=9)
    assert spec.mean == (0.5, 0.5, 0.5)
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert InputSpec.from_dict({}) == InputSpec()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 0},
        {"height": 2.5},
        {"mean": (0.1, 0.2)},
        {"std": (0.2, 0.0, 0.2)},
        {"interpolation": "area"},
        {"resize_mode": "crop"},
        {"pad_value": 256},
        {"pad_value": True},
    ],
)
def test_input_spec_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        InputSpec(**kwargs)


def test_input_spec_from_dict_unknown_key() -> None:
    with pytest.raises(ValueError, match="'size'"):
        InputSpec.from_dict({"size": 3})


# --------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------


def test_prepare_constant_grey_known_values() -> None:
    v = 100
    rgb = np.full((600, 800, 3), v, dtype=np.uint8)
    out = prepare(rgb, Roi(100, 50, 700, 550), InputSpec())
    assert isinstance(out, Prepared)
    assert out.array.shape == (3, 280, 470) and out.array.dtype == np.float32
    assert out.array.flags.c_contiguous
    for c in range(3):
        expected = np.float32((v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
        assert np.all(out.array[c] == expected)
    assert out.roi == Roi(100, 50, 700, 550)
    assert out.content_box == (0, 0, 470, 280)


def test_prepare_crops_the_roi() -> None:
    rgb = np.zeros((300, 400, 3), dtype=np.uint8)
    rgb[100:200, 50:250] = (255, 255, 255)  # the ROI is all white, the rest black
    spec = InputSpec(width=40, height=20, mean=(0, 0, 0), std=(1, 1, 1))
    out = prepare(rgb, Roi(50, 100, 250, 200), spec)
    np.testing.assert_array_equal(out.array, np.ones((3, 20, 40), dtype=np.float32))
    whole = prepare(rgb, None, spec)
    assert whole.roi == Roi(0, 0, 400, 300)
    assert 0.0 < whole.array.mean() < 1.0


def test_prepare_channels_stay_in_order() -> None:
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    out = prepare(rgb, None, InputSpec(width=8, height=8, mean=(0, 0, 0), std=(1, 1, 1), interpolation="nearest"))
    assert np.all(out.array[0] == 1.0) and np.all(out.array[1:] == 0.0)


def test_prepare_pad_mode_preserves_aspect() -> None:
    rgb = np.full((200, 200, 3), 255, dtype=np.uint8)
    spec = InputSpec(mean=(0, 0, 0), std=(1, 1, 1), resize_mode="pad", pad_value=0)
    out = prepare(rgb, Roi(0, 0, 100, 100), spec)
    # a square ROI in a 470 x 280 input: 280 x 280, centred ((470 - 280) / 2 = 95)
    assert out.content_box == (95, 0, 375, 280)
    x0, y0, x1, y1 = out.content_box
    assert (x1 - x0) / (y1 - y0) == 1.0
    assert np.all(out.array[:, :, x0:x1] == 1.0)
    assert np.all(out.array[:, :, :x0] == 0.0) and np.all(out.array[:, :, x1:] == 0.0)
    wide = prepare(rgb, Roi(0, 0, 200, 40), spec)  # 5:1 -> 470 x 94, centred vertically
    assert wide.content_box == (0, 93, 470, 187)


def test_prepare_context_mode_fills_with_the_image_around_the_roi() -> None:
    # a ramp image: every column has its own grey, so the crop's columns say where they came from
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (100, 1, 3))
    spec = InputSpec(width=40, height=40, mean=(0, 0, 0), std=(1, 1, 1), resize_mode="context", interpolation="nearest")
    out = prepare(ramp, Roi(90, 40, 110, 60), spec)  # a 20 x 20 ROI: square already, nothing grown
    assert out.content_box == (0, 0, 40, 40)
    tall = prepare(ramp, Roi(95, 20, 105, 60), spec)  # 10 x 40 -> grown to 40 x 40 around its centre (x 80..120)
    assert tall.content_box == (15, 0, 25, 40)
    cols = tall.array[0, 0] * 255
    assert cols[0] == 80 and cols[-1] == 119  # real image columns, no padding
    assert np.all(np.diff(cols) >= 0)


def test_prepare_context_mode_moves_inward_at_an_image_edge_and_repeats_edges_only_past_the_image() -> None:
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (100, 1, 3))
    spec = InputSpec(width=40, height=40, mean=(0, 0, 0), std=(1, 1, 1), resize_mode="context", interpolation="nearest")
    left = prepare(ramp, Roi(0, 20, 10, 60), spec)  # grown to 40 wide: would start at x -15, moved to 0
    assert left.content_box == (0, 0, 10, 40)
    assert left.array[0, 0, 0] * 255 == 0 and left.array[0, 0, -1] * 255 == 39
    wide = prepare(ramp, Roi(0, 0, 200, 100), spec)  # 200 x 100 -> 200 x 200, taller than the image: rows repeated
    assert wide.content_box == (0, 10, 40, 30)
    np.testing.assert_array_equal(wide.array[:, 0], wide.array[:, 10])  # the top rows repeat the image's first row
    np.testing.assert_array_equal(wide.array[:, -1], wide.array[:, 29])


def test_context_mode_cam_maps_back_onto_the_roi() -> None:
    rgb = np.zeros((100, 200, 3), dtype=np.uint8)
    spec = InputSpec(width=40, height=40, resize_mode="context")
    prepared = prepare(rgb, Roi(95, 20, 105, 60), spec)
    cam = np.zeros((40, 40), dtype=np.float32)
    cam[:, 15:25] = 1.0  # hot exactly where the ROI lies in the input
    back = cam_to_roi(cam, prepared)
    assert back.shape == (40, 10) and back.min() > 0.99


def test_prepare_pad_value_normalised() -> None:
    rgb = np.zeros((50, 50, 3), dtype=np.uint8)
    out = prepare(rgb, None, InputSpec(width=20, height=10, resize_mode="pad", pad_value=128))
    expected = np.float32((128 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0])
    assert out.content_box == (5, 0, 15, 10)
    assert out.array[0, 0, 0] == expected


def test_prepare_rejects_bad_arrays_and_rois() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        prepare(np.zeros((10, 10), dtype=np.uint8), None, InputSpec())
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10, 3), dtype=np.float32), None, InputSpec())
    with pytest.raises(RoiError, match="outside"):
        prepare(np.zeros((10, 10, 3), dtype=np.uint8), Roi(20, 20, 40, 40), InputSpec())


# --------------------------------------------------------------------------
# cam_to_roi and paste_roi_map
# --------------------------------------------------------------------------


def test_cam_round_trip_stretch() -> None:
    # ROI 940 x 560 = twice the input size, so input pixel (x, y) covers ROI
    # pixels (2x, 2y)..(2x+1, 2y+1).
    rgb = np.zeros((700, 1200, 3), dtype=np.uint8)
    roi = Roi(100, 50, 1040, 610)
    prepared = prepare(rgb, roi, InputSpec())
    cam = np.zeros((280, 470), dtype=np.float32)
    cam[100:150, 200:300] = 1.0
    roi_map = cam_to_roi(cam, prepared)
    assert roi_map.shape == (560, 940) and roi_map.dtype == np.float32
    mask = roi_map > 0.5
    ys, xs = np.nonzero(mask)
    assert abs(ys.min() - 200) <= 1 and abs(ys.max() + 1 - 300) <= 1
    assert abs(xs.min() - 400) <= 1 and abs(xs.max() + 1 - 600) <= 1
    assert roi_map[250, 500] == pytest.approx(1.0) and roi_map[10, 10] == pytest.approx(0.0)

    full = paste_roi_map(roi_map, prepared.roi, 1200, 700, fill=-1.0)
    assert full.shape == (700, 1200)
    assert full[0, 0] == -1.0 and full[650, 1100] == -1.0
    assert full[50 + 250, 100 + 500] == pytest.approx(1.0)
    assert full[50 + 10, 100 + 10] == pytest.approx(0.0)


def test_cam_low_resolution_map_is_upsampled() -> None:
    prepared = prepare(np.zeros((280, 470, 3), dtype=np.uint8), None, InputSpec())
    cam = np.full((9, 15), 0.25, dtype=np.float32)  # e.g. a ConvNeXt last-stage grid
    roi_map = cam_to_roi(cam, prepared)
    assert roi_map.shape == (280, 470)
    np.testing.assert_allclose(roi_map, 0.25, atol=1e-6)


def test_cam_round_trip_pad() -> None:
    rgb = np.zeros((300, 300, 3), dtype=np.uint8)
    prepared = prepare(rgb, Roi(0, 0, 140, 140), InputSpec(resize_mode="pad"))
    assert prepared.content_box == (95, 0, 375, 280)  # scale 2
    cam = np.zeros((280, 470), dtype=np.float32)
    cam[:, :95] = 5.0  # padding must be cut away
    cam[:, 375:] = 5.0
    cam[40:80, 95 + 60 : 95 + 120] = 1.0
    roi_map = cam_to_roi(cam, prepared)
    assert roi_map.shape == (140, 140)
    assert roi_map.max() <= 1.0 + 1e-6
    ys, xs = np.nonzero(roi_map > 0.5)
    assert (ys.min(), ys.max() + 1) == (20, 40)
    assert (xs.min(), xs.max() + 1) == (30, 60)


def test_cam_to_roi_rejects_non_2d() -> None:
    prepared = prepare(np.zeros((20, 20, 3), dtype=np.uint8), None, InputSpec(width=10, height=10))
    with pytest.raises(ValueError, match="2-D"):
        cam_to_roi(np.zeros((1, 10, 10)), prepared)


def test_paste_roi_map_checks() -> None:
    roi = Roi(2, 3, 6, 5)
    full = paste_roi_map(np.ones((2, 4)), roi, 8, 6)
    assert full.dtype == np.float32 and full.sum() == 8 and full[3:5, 2:6].all()
    with pytest.raises(ValueError, match="needs"):
        paste_roi_map(np.ones((4, 2)), roi, 8, 6)
    with pytest.raises(RoiError, match="inside"):
        paste_roi_map(np.ones((2, 4)), roi, 5, 6)


def test_scaled_roi_maps_preview_to_original() -> None:
    # A box drawn on a 400-wide preview of an 800-wide image.
    drawn = Roi(50, 40, 150, 90)
    original = Roi.from_scaled(drawn.to_list(), 800 / 400, 600 / 300)
    assert original == Roi(100, 80, 300, 180)
    assert math.isclose(original.width / drawn.width, 2.0)


def test_from_scaled_takes_off_a_margin_and_clamps_to_the_image() -> None:
    # A canvas box in fractional canvas pixels, 10 px of margin, 2 image pixels per canvas pixel, 100 x 80 image.
    roi = Roi.from_scaled((5.0, 12.25, 40.5, 90.0), 2.0, 2.0, offset=10, bounds=(100, 80))
    assert roi == Roi(0, 5, 61, 80)  # left in the margin -> 0; 30.5 * 2 = 61; bottom beyond the image -> 80
    assert Roi.from_scaled((0.0, 0.0, 8.0, 8.0), 0.5, 0.5, offset=20) == Roi(-10, -10, -6, -6)  # no bounds: no clamp


def test_the_dashboard_describes_every_resize_mode_in_words(tiny_weights) -> None:
    from dataclasses import replace

    from softmass_core.weights.manifest import RESIZE_MODES
    from softmass_core.weights.weight_set import WeightSet
    from ui.common import input_spec_frame

    manifest = WeightSet.load(tiny_weights).manifest
    words = set()
    for mode in RESIZE_MODES:
        m = replace(manifest, input_spec=replace(manifest.input_spec, resize_mode=mode))
        frame = input_spec_frame(m)
        text = frame.loc[frame["field"] == "ROI resize", "value"].item()
        assert text != mode and "aspect" in text or "stretch" in text
        words.add(text)
    assert len(words) == len(RESIZE_MODES)
