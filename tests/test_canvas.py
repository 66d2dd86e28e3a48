"""ui.canvas: the canvas <-> image mapping with a margin around the image (pure functions, no streamlit)."""

from __future__ import annotations

import numpy as np
import pytest

from softmass_core.io.roi import Roi
from ui.canvas import (
    CanvasGeometry,
    canvas_background,
    canvas_box_to_image,
    drawn_roi,
    fit_canvas,
    rect_to_image_roi,
    roi_to_rect,
    shapes_to_image,
)


def test_margin_comes_on_top_of_the_image_area():
    g = fit_canvas(512, 321, 420, margin=32)
    assert (g.width, g.height, g.margin) == (420, 263, 32)
    assert (g.canvas_width, g.canvas_height) == (484, 327)
    assert fit_canvas(512, 321, 420) == CanvasGeometry(512, 321, 420, 263)  # no margin: as before
    with pytest.raises(ValueError, match="margin"):
        fit_canvas(512, 321, 420, margin=-1)


def test_corners_in_the_margin_or_off_the_canvas_clamp_to_the_image_edge():
    g = CanvasGeometry(image_width=512, image_height=320, width=256, height=160, margin=30)  # 2 px per canvas px
    # Inside the image: the margin is taken off first.
    assert canvas_box_to_image((30 + 10, 30 + 20, 30 + 100, 30 + 50), g) == Roi(20, 40, 200, 100)
    # A drag that ended in the right/bottom margin, or past the canvas: the image's right and bottom edges.
    assert canvas_box_to_image((130, 60, 30 + 256 + 12, 30 + 160 + 29), g) == Roi(200, 60, 512, 320)
    assert canvas_box_to_image((130, 60, 900, 900), g) == Roi(200, 60, 512, 320)
    # Started in the top-left margin: the top-left corner.
    assert canvas_box_to_image((5, 0, 130, 60), g) == Roi(0, 0, 200, 60)


def test_roi_round_trips_through_a_canvas_with_a_margin():
    g = fit_canvas(512, 321, 420, margin=32)  # 1.219 image px per canvas px
    for roi in (Roi(200, 60, 512, 321), Roi(0, 0, 512, 321), Roi(1, 2, 9, 11)):
        rect = roi_to_rect(roi, g)
        assert rect["left"] >= g.margin and rect["top"] >= g.margin
        assert rect_to_image_roi(rect, g) == roi
        # Fabric sends numbers rounded to 2 decimals: still the same ROI.
        rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in rect.items()}
        assert rect_to_image_roi(rounded, g) == roi


def test_drawn_roi_takes_the_last_box_and_ignores_a_click():
    g = CanvasGeometry(200, 100, 100, 50, margin=10)
    old = roi_to_rect(Roi(0, 0, 200, 100), g)
    new = {"type": "Rect", "originX": "left", "originY": "top", "left": 20, "top": 15, "width": 40, "height": 20}
    assert drawn_roi({"objects": [old, new]}, g) == Roi(20, 10, 100, 50)
    click = dict(new, width=2, height=2)  # the rect tool leaves a 2 x 2 box on a click
    assert drawn_roi({"objects": [old, click]}, g) is None
    in_margin = dict(new, left=111, top=0, width=8, height=8)  # drawn wholly right of the image
    assert drawn_roi({"objects": [in_margin]}, g) is None
    assert drawn_roi(None, g) is None and drawn_roi({"objects": []}, g) is None


def test_shapes_are_mapped_without_the_margin():
    g = CanvasGeometry(200, 100, 100, 50, margin=10)
    data = {"objects": [{"type": "path", "path": [["M", 10, 10], ["L", 30, 10], ["L", 30, 20], ["L", 10, 20]]}]}
    polygons, boxes = shapes_to_image(data, g)
    assert boxes == [] and polygons == [[(0.0, 0.0), (40.0, 0.0), (40.0, 20.0), (0.0, 20.0)]]


def test_background_puts_the_scaled_image_inside_the_margin():
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:, :, 0] = 200
    g = fit_canvas(80, 40, 40, margin=5)
    bg = np.asarray(canvas_background(rgb, g))
    assert bg.shape == (g.canvas_height, g.canvas_width, 3) == (30, 50, 3)
    assert (bg[5:25, 5:45, 0] == 200).all()  # the image, scaled to 40 x 20
    assert (bg[:5] == 40).all() and (bg[:, :5] == 40).all() and (bg[25:] == 40).all() and (bg[:, 45:] == 40).all()
    assert np.asarray(canvas_background(rgb, fit_canvas(80, 40, 40))).shape == (20, 40, 3)
