"""Tests of softmass_core.inference.focus: reader area against the Grad-CAM area (Table 4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from softmass_core.errors import MetricsError, RoiError
from softmass_core.inference import focus
from softmass_core.inference.focus import (
    GRADES,
    cam_region,
    compare_focus,
    grade_from_percent,
    reader_mask_from_box,
    reader_mask_from_paths,
    reader_mask_from_polygon,
    summarise_grades,
)

H, W = 100, 100


def block_cam(left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """A CAM that is 1 on [top:bottom, left:right] and 0 elsewhere."""
    cam = np.zeros((H, W), dtype=np.float32)
    cam[top:bottom, left:right] = 1.0
    return cam


# --- reader masks ----------------------------------------------------------------


def test_box_mask_covers_exactly_the_box_with_exclusive_end():
    mask = reader_mask_from_box((10, 20, 30, 25), H, W)
    assert mask.dtype == bool and mask.shape == (H, W)
    assert mask.sum() == 20 * 5
    assert mask[20, 10] and mask[24, 29]
    assert not mask[25, 10] and not mask[20, 30]


def test_box_mask_is_clipped_and_corners_normalised():
    assert reader_mask_from_box((-10, -10, 5, 5), H, W).sum() == 25
    swapped = reader_mask_from_box((30, 25, 10, 20), H, W)
    assert np.array_equal(swapped, reader_mask_from_box((10, 20, 30, 25), H, W))


@pytest.mark.parametrize("box", [(10, 10, 10, 20), (10, 20, 30, 20), (200, 200, 300, 300)])
def test_degenerate_or_outside_box_is_refused(box):
    with pytest.raises(RoiError, match="draw"):
        reader_mask_from_box(box, H, W)


def test_polygon_mask_area_of_integer_shapes():
    # Outline pixels count as inside: a 2..7 square is 6 x 6 pixels.
    square = reader_mask_from_polygon([(2, 2), (7, 2), (7, 7), (2, 7)], 12, 12)
    assert square.sum() == 36
    # A right triangle with legs 0..9 covers 10 + 9 + ... + 1 pixels.
    triangle = reader_mask_from_polygon([(0, 0), (9, 0), (0, 9)], 12, 12)
    assert triangle.sum() == 55
    assert triangle[0, 0] and triangle[0, 9] and triangle[9, 0] and not triangle[9, 9]


def test_free_hand_circle_area_is_close_to_pi_r_squared():
    r, cx, cy = 30.0, 50.0, 50.0
    angles = np.linspace(0.0, 2 * np.pi, 200, endpoint=False)
    path = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    area = reader_mask_from_polygon(path, H, W).sum()
    # Outline pixels are inside, so the area exceeds pi r^2 by at most a ring of width 1.
    assert math.pi * r**2 <= area <= math.pi * (r + 1) ** 2


def test_paths_and_boxes_combine_as_a_union():
    mask = reader_mask_from_paths([[(0, 0), (9, 0), (9, 9), (0, 9)]], H, W, boxes=[(5, 0, 15, 10), (50, 50, 60, 60)])
    # 0..14 x 0..9 from the square and the first box, plus a separate 10 x 10 box.
    assert mask.sum() == 15 * 10 + 100


def test_polygon_needs_three_points_and_something_must_be_drawn():
    with pytest.raises(RoiError, match="at least 3 points"):
        reader_mask_from_polygon([(1, 1), (5, 5)], H, W)
    with pytest.raises(RoiError, match="draw the area you looked at first"):
        reader_mask_from_paths([], H, W)
    with pytest.raises(RoiError, match="outside"):
        reader_mask_from_polygon([(200, 200), (300, 200), (300, 300)], H, W)
    with pytest.raises(RoiError, match="positive"):
        reader_mask_from_box((0, 0, 1, 1), 0, W)


# --- CAM region ------------------------------------------------------------------


def test_cam_region_thresholds_the_min_max_normalised_cam():
    ramp = np.tile(np.arange(W, dtype=np.float64), (H, 1))  # 0 .. 99 along x
    region = cam_region(ramp)
    # x / 99 >= 0.5  <=>  x >= 49.5: columns 50..99.
    assert region.sum() == 50 * H
    assert region[:, 50].all() and not region[:, 49].any()
    # Normalisation makes the region independent of offset and scale.
    assert np.array_equal(cam_region(7.0 * ramp - 3.0), region)
    assert cam_region(ramp, threshold=0.0).all()
    assert cam_region(ramp, threshold=1.0).sum() == H  # only the maximum column


def test_constant_cam_has_an_empty_region():
    assert not cam_region(np.full((H, W), 0.3)).any()
    result = compare_focus(reader_mask_from_box((0, 0, 10, 10), H, W), np.ones((H, W)))
    assert result.grade == "none" and result.cam_pixels == 0
    assert result.cam_coverage == 0.0 and result.iou == 0.0


def test_bad_cam_and_threshold_are_refused():
    bad = np.zeros((H, W))
    bad[0, 0] = np.nan
    with pytest.raises(RoiError, match="NaN"):
        cam_region(bad)
    with pytest.raises(RoiError, match="2-D"):
        cam_region(np.zeros((2, H, W)))
    with pytest.raises(RoiError, match="between 0 and 1"):
        cam_region(np.zeros((H, W)), threshold=1.5)


# --- comparison and grades -------------------------------------------------------

CAM = block_cam(20, 20, 60, 60)  # model area: x 20..59, y 20..59 (1600 pixels)


def test_reader_box_inside_cam_region_is_complete():
    result = compare_focus(reader_mask_from_box((30, 30, 40, 40), H, W), CAM)
    assert (result.grade, result.percent) == ("complete", 100)
    assert result.reader_coverage == 1.0
    assert result.cam_coverage == pytest.approx(100 / 1600)
    assert result.iou == pytest.approx(100 / 1600)
    assert (result.reader_pixels, result.cam_pixels) == (100, 1600)


def test_half_covered_reader_box_is_most_50():
    # Reader x 0..39, y 20..59: columns 20..39 of its 40 are inside the model area.
    result = compare_focus(reader_mask_from_box((0, 20, 40, 60), H, W), CAM)
    assert (result.grade, result.percent) == ("most", 50)
    assert result.reader_coverage == pytest.approx(0.5)
    assert result.cam_coverage == pytest.approx(800 / 1600)
    assert result.iou == pytest.approx(800 / (1600 + 1600 - 800))


def test_thirty_percent_is_partial():
    # Reader x 10..19 and the model area from x 17: 3 of 10 columns.
    cam = block_cam(17, 0, 60, H)
    result = compare_focus(reader_mask_from_box((10, 0, 20, 10), H, W), cam)
    assert (result.grade, result.percent) == ("partial", 30)
    assert result.reader_coverage == pytest.approx(0.3)


def test_disjoint_areas_do_not_coincide():
    result = compare_focus(reader_mask_from_box((70, 70, 90, 90), H, W), CAM)
    assert (result.grade, result.percent) == ("none", 0)
    assert result.reader_coverage == result.cam_coverage == result.iou == 0.0


@pytest.mark.parametrize(
    ("overlap", "percent", "grade"),
    [(1, 1, "partial"), (99, 50, "most"), (199, 100, "complete"), (198, 99, "most")],
)
def test_rounding_is_half_up_in_whole_percent(overlap, percent, grade):
    # A 200-pixel reader area; each pixel is 0.5 percentage points.
    reader = np.zeros((H, W), dtype=bool)
    reader[0:2, :] = True
    cam = np.zeros((H, W))
    cam.reshape(-1)[:overlap] = 1.0
    result = compare_focus(reader, cam)
    assert (result.percent, result.grade) == (percent, grade)


def test_grade_bins_follow_table_4():
    assert [grade_from_percent(p) for p in (100, 99, 50, 49, 1, 0)] == [
        "complete",
        "most",
        "most",
        "partial",
        "partial",
        "none",
    ]


def test_threshold_changes_the_model_area():
    ramp = np.tile(np.arange(W, dtype=np.float64), (H, 1))
    reader = reader_mask_from_box((40, 0, 60, 10), H, W)  # columns 40..59
    assert compare_focus(reader, ramp).percent == 50  # columns 50..59
    loose = compare_focus(reader, ramp, threshold=0.3)  # x >= 29.7: all 20 columns
    assert (loose.grade, loose.threshold) == ("complete", 0.3)


def test_reader_mask_may_be_zero_one_integers():
    reader = reader_mask_from_box((30, 30, 40, 40), H, W).astype(np.uint8)
    assert compare_focus(reader, CAM).grade == "complete"


def test_empty_reader_mask_and_shape_mismatch_are_refused():
    with pytest.raises(RoiError, match="draw the area you looked at first"):
        compare_focus(np.zeros((H, W), dtype=bool), CAM)
    with pytest.raises(RoiError, match=r"\(100, 100\).*\(50, 60\)"):
        compare_focus(np.ones((H, W), dtype=bool), np.zeros((50, 60)))


def test_comparison_to_dict_is_json_ready():
    result = compare_focus(reader_mask_from_box((0, 20, 40, 60), H, W), CAM)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["grade"] == "most" and data["percent"] == 50
    assert set(data) == {
        "grade",
        "reader_coverage",
        "cam_coverage",
        "iou",
        "percent",
        "threshold",
        "reader_pixels",
        "cam_pixels",
    }


# --- Table 4 summary ---------------------------------------------------------------


def test_summarise_grades_on_a_hand_made_table():
    rows = (
        [("lipoma", "complete")] * 2
        + [("lipoma", "most")] * 1
        + [("lipoma", "none")] * 1
        + [("malignant", "partial")] * 1
        + [("malignant", "most")] * 3
    )
    table = summarise_grades(rows)
    assert list(table.index) == ["lipoma", "malignant", "total"]
    assert list(table.columns[:4]) == list(GRADES)
    assert table.loc["lipoma", "complete"] == "2 (50.0%)"
    assert table.loc["lipoma", "most"] == "1 (25.0%)"
    assert table.loc["lipoma", "partial"] == "0 (0.0%)"
    assert table.loc["malignant", "most"] == "3 (75.0%)"
    assert table.loc["total", "most"] == "4 (50.0%)"
    assert table.loc["total", "n_complete"] == 2 and table.loc["total", "n"] == 8
    assert table.loc["malignant", "pct_partial"] == pytest.approx(25.0)


def test_summarise_grades_reproduces_table_4_radiologist_1_totals():
    # Radiologist-1 counts per lesion type as printed in Table 4 of the paper.
    printed = {
        "lipoma": (8, 12, 2, 0),
        "hemangioma": (5, 12, 2, 1),
        "neurinoma": (4, 21, 6, 0),
        "epidermal_cyst": (6, 17, 3, 1),
        "calcifying_epithelioma": (11, 6, 3, 0),
        "malignant": (3, 5, 1, 1),
    }
    rows = [
        (lesion, grade)
        for lesion, counts in printed.items()
        for grade, n in zip(GRADES, counts, strict=True)
        for _ in range(n)
    ]
    table = summarise_grades(rows)
    assert list(table.index) == [*printed, "total"]
    total = table.loc["total"]
    assert [total[f"n_{g}"] for g in GRADES] == [37, 73, 17, 3] and total["n"] == 130
    # Table 4: most 56.2% (73/130), partial 13.1% (17/130), not at all 2.3% (3/130).
    assert total["most"] == "73 (56.2%)"
    assert total["partial"] == "17 (13.1%)"
    assert total["none"] == "3 (2.3%)"
    # Lipoma row: 36.4% (8/22), 54.5% (12/22), 9.1% (2/22).
    assert [table.loc["lipoma", g] for g in GRADES[:3]] == ["8 (36.4%)", "12 (54.5%)", "2 (9.1%)"]


def test_summarise_grades_with_fixed_rows_and_bad_input():
    table = summarise_grades([("lipoma", "most")], lesion_types=focus.LESION_ORDER[:6])
    assert len(table) == 7
    assert table.loc["hemangioma", "complete"] == "0 (-)"
    assert math.isnan(table.loc["hemangioma", "pct_most"])
    empty = summarise_grades([])
    assert list(empty.index) == ["total"] and empty.loc["total", "n"] == 0
    with pytest.raises(MetricsError, match="sarcoma"):
        summarise_grades([("sarcoma", "most")])
    with pytest.raises(MetricsError, match="'some'"):
        summarise_grades([("lipoma", "some")])


def test_all_models_count_each_case_once_per_model():
    # One lipoma case graded for DLM-1 and SM-1, one malignant case for DLM-1 only.
    rows = [("dlm1", "lipoma", "most"), ("sm1", "lipoma", "complete"), ("dlm1", "malignant", "none")]
    table = focus.summarise_grades_by_model(rows)
    assert list(table.index) == [
        ("dlm1", "lipoma"),
        ("dlm1", "malignant"),
        ("dlm1", "total"),
        ("sm1", "lipoma"),
        ("sm1", "total"),
    ]
    assert table.loc[("dlm1", "total"), "n"] == 2 and table.loc[("sm1", "total"), "n"] == 1
    assert table.loc[("sm1", "lipoma"), "complete"] == "1 (100.0%)"
    # No row adds the models up: the lipoma case would count twice.
    assert int((table.index.get_level_values("lesion_type") == "lipoma").sum()) == 2
    assert table.xs("total", level="lesion_type")["n"].tolist() == [2, 1]
    assert focus.summarise_grades_by_model([], models=["dlm1"]).empty
    with pytest.raises(MetricsError, match="expected \\(model, lesion_type, grade\\)"):
        focus.summarise_grades_by_model([("dlm1", "lipoma")])
    with pytest.raises(MetricsError, match="'some'"):
        focus.summarise_grades_by_model([("dlm1", "lipoma", "some")])
