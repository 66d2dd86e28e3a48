"""Pure mapping between drawing-canvas pixels and original-image pixels.

The canvas (streamlit-drawable-canvas, Fabric.js underneath) shows an image
scaled to fit the page.  Everything it sends back is in canvas pixels; these
functions map it to original-image pixels and back.  No streamlit here, so the
mapping is unit-tested directly.

Conventions: the image fills ``width`` x ``height`` canvas pixels, drawn
``margin`` canvas pixels in from the canvas's left and top edges (the canvas
is ``canvas_width`` x ``canvas_height``, the image plus the margin on every
side); ``sx = image_width / width`` and ``sy = image_height / height`` (image
pixels per canvas pixel).  The margin is there so that a drag past the
image's edge still lands on the canvas and is clamped to the edge: the
canvas stops following the pointer once it leaves the canvas.  A Fabric object's
``left``/``top`` is the corner named by ``originX``/``originY`` ("left",
"center", "right" / "top", "center", "bottom"); its drawn size is ``width *
scaleX`` by ``height * scaleY`` (``scaleX``/``scaleY`` become != 1 when the
user resizes a shape).  Stroke widths are ignored (a few pixels at most).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from softmass_core.io.roi import Roi

_ORIGIN = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


@dataclass(frozen=True)
class CanvasGeometry:
    """A ``image_width`` x ``image_height`` image shown as ``width`` x ``height`` canvas pixels.

    ``margin`` canvas pixels of empty canvas surround the image on every side.
    """

    image_width: int
    image_height: int
    width: int
    height: int
    margin: int = 0

    @property
    def canvas_width(self) -> int:
        """Width of the whole canvas: the image and a margin either side."""
        return self.width + 2 * self.margin

    @property
    def canvas_height(self) -> int:
        """Height of the whole canvas: the image and a margin above and below."""
        return self.height + 2 * self.margin

    @property
    def sx(self) -> float:
        """Image pixels per canvas pixel, horizontally."""
        return self.image_width / self.width

    @property
    def sy(self) -> float:
        """Image pixels per canvas pixel, vertically."""
        return self.image_height / self.height


def fit_canvas(
    image_width: int, image_height: int, max_width: int, *, max_height: int | None = None, margin: int = 0
) -> CanvasGeometry:
    """Canvas size that shows the whole image at most ``max_width`` (and ``max_height``) pixels.

    The limits are for the image; the ``margin`` (canvas pixels) comes on top,
    on every side.  The aspect ratio is kept; an image smaller than the limits
    is shown at its own size (never enlarged).  Sizes are whole canvas pixels,
    at least 1.
    """
    if image_width <= 0 or image_height <= 0:
        raise ValueError(f"image size must be positive, got {image_width} x {image_height}")
    if max_width <= 0 or (max_height is not None and max_height <= 0):
        raise ValueError(f"canvas limits must be positive, got {max_width} x {max_height}")
    if margin < 0:
        raise ValueError(f"margin must be 0 or more canvas pixels, got {margin}")
    scale = min(1.0, max_width / image_width)
    if max_height is not None:
        scale = min(scale, max_height / image_height)
    width = max(1, int(math.floor(image_width * scale + 0.5)))
    height = max(1, int(math.floor(image_height * scale + 0.5)))
    return CanvasGeometry(int(image_width), int(image_height), min(width, int(max_width)), height, int(margin))


def _num(obj: Mapping[str, Any], key: str, default: float) -> float:
    value = obj.get(key, default)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def object_box(obj: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of a Fabric object in canvas pixels.

    Honours ``originX``/``originY`` and ``scaleX``/``scaleY``; a negative
    scale (a shape flipped while resizing) still gives ``left <= right``.
    """
    width = _num(obj, "width", 0.0) * _num(obj, "scaleX", 1.0)
    height = _num(obj, "height", 0.0) * _num(obj, "scaleY", 1.0)
    left = _num(obj, "left", 0.0) - _ORIGIN.get(str(obj.get("originX", "left")), 0.0) * width
    top = _num(obj, "top", 0.0) - _ORIGIN.get(str(obj.get("originY", "top")), 0.0) * height
    x0, x1 = sorted((left, left + width))
    y0, y1 = sorted((top, top + height))
    return x0, y0, x1, y1


def canvas_box_to_image(box: Sequence[float], geometry: CanvasGeometry) -> Roi:
    """A ``(left, top, right, bottom)`` canvas box -> :class:`Roi` in image pixels, clamped to the image.

    The margin is taken off first; a corner in the margin (or beyond the
    canvas) goes to the image's edge.  Rounded half up to whole pixels; the
    result may be empty or tiny, which :func:`softmass_core.io.roi.resolve_roi`
    reports.
    """
    bounds = (geometry.image_width, geometry.image_height)
    return Roi.from_scaled(box, geometry.sx, geometry.sy, offset=geometry.margin, bounds=bounds)


def rect_to_image_roi(obj: Mapping[str, Any], geometry: CanvasGeometry) -> Roi:
    """A Fabric ``Rect`` object (canvas pixels) -> :class:`Roi` in image pixels."""
    return canvas_box_to_image(object_box(obj), geometry)


def roi_to_rect(roi: Roi, geometry: CanvasGeometry, **style: Any) -> dict[str, Any]:
    """A :class:`Roi` -> a Fabric ``Rect`` for ``initial_drawing`` (canvas pixels, origin top-left).

    Coordinates stay fractional so that :func:`rect_to_image_roi` gives the
    same ROI back exactly.  ``style`` adds e.g. ``stroke``, ``strokeWidth``, ``fill``.
    """
    rect: dict[str, Any] = {
        "type": "rect",
        "originX": "left",
        "originY": "top",
        "left": geometry.margin + roi.x0 / geometry.sx,
        "top": geometry.margin + roi.y0 / geometry.sy,
        "width": (roi.x1 - roi.x0) / geometry.sx,
        "height": (roi.y1 - roi.y0) / geometry.sy,
        "scaleX": 1,
        "scaleY": 1,
        "angle": 0,
        "strokeUniform": True,
    }
    rect.update(style)
    return rect


def canvas_background(
    rgb: np.ndarray, geometry: CanvasGeometry, *, margin_color: tuple[int, int, int] = (40, 40, 40)
) -> Image.Image:
    """The canvas's background: ``rgb`` (H, W, 3) uint8 scaled into the image area, the margin around it.

    A PIL image of ``canvas_width`` x ``canvas_height`` pixels.
    """
    scaled = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("RGB")
    scaled = scaled.resize((geometry.width, geometry.height), Image.Resampling.BILINEAR)
    if geometry.margin == 0:
        return scaled
    out = Image.new("RGB", (geometry.canvas_width, geometry.canvas_height), margin_color)
    out.paste(scaled, (geometry.margin, geometry.margin))
    return out


def drawing_objects(json_data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The ``objects`` list of a canvas result (empty when there is none)."""
    if not json_data:
        return []
    objects = json_data.get("objects") or []
    return [o for o in objects if isinstance(o, Mapping)]


def _type(obj: Mapping[str, Any]) -> str:
    return str(obj.get("type", "")).lower()


def last_rect(json_data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The most recently drawn rectangle (type ``Rect``/``rect``), or None."""
    rects = [o for o in drawing_objects(json_data) if _type(o) in ("rect", "labeledrect")]
    return rects[-1] if rects else None


#: A "box" smaller than this many canvas pixels either way is a click, not a drag (the rect tool
#: leaves a 2 x 2 box on a click).
MIN_DRAG_PX = 3.0


def drawn_roi(json_data: Mapping[str, Any] | None, geometry: CanvasGeometry) -> Roi | None:
    """The ROI of the most recently drawn rectangle, in image pixels; None for no box or a click.

    Corners in the margin or beyond the canvas are clamped to the image's edge.
    """
    rect = last_rect(json_data)
    if rect is None:
        return None
    x0, y0, x1, y1 = object_box(rect)
    if x1 - x0 < MIN_DRAG_PX or y1 - y0 < MIN_DRAG_PX:
        return None
    roi = canvas_box_to_image((x0, y0, x1, y1), geometry)
    return roi if roi.width > 0 and roi.height > 0 else None


def _path_points(obj: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Raw points of a Fabric path (``[["M", x, y], ["Q", cx, cy, x, y], ...]``) or polygon."""
    points: list[tuple[float, float]] = []
    if _type(obj) in ("polygon", "polyline"):
        for p in obj.get("points") or []:
            if isinstance(p, Mapping):
                points.append((_num(p, "x", math.nan), _num(p, "y", math.nan)))
        return [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
    for cmd in obj.get("path") or []:
        if not isinstance(cmd, Sequence) or len(cmd) < 3:
            continue
        coords = []
        for v in cmd[1:]:
            try:
                coords.append(float(v))
            except (TypeError, ValueError):
                coords = []
                break
        # Each command ends with its end point; curves carry control points first.
        for i in range(0, len(coords) - 1, 2):
            if i + 2 == len(coords):  # keep only end points
                points.append((coords[i], coords[i + 1]))
    return [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]


def shape_points(obj: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Points of a free-hand path or polygon in canvas pixels, after any move or resize.

    Fabric keeps the raw points and places the shape by its bounding box
    (``left``/``top``/``width``/``height``, origin and scale), so the raw
    points are mapped from their own bounding box onto that one.
    """
    raw = _path_points(obj)
    if len(raw) < 2:
        return raw
    xs = [p[0] for p in raw]
    ys = [p[1] for p in raw]
    rx0, rx1, ry0, ry1 = min(xs), max(xs), min(ys), max(ys)
    if "width" not in obj or "height" not in obj or "left" not in obj or "top" not in obj:
        return raw
    bx0, by0, bx1, by1 = object_box(obj)
    sx = _num(obj, "scaleX", 1.0)
    sy = _num(obj, "scaleY", 1.0)
    # Centre of the raw points goes to the centre of the placed box.
    rcx, rcy = (rx0 + rx1) / 2, (ry0 + ry1) / 2
    bcx, bcy = (bx0 + bx1) / 2, (by0 + by1) / 2
    return [((x - rcx) * sx + bcx, (y - rcy) * sy + bcy) for x, y in raw]


def shapes_to_image(
    json_data: Mapping[str, Any] | None, geometry: CanvasGeometry
) -> tuple[list[list[tuple[float, float]]], list[tuple[int, int, int, int]]]:
    """Every drawn area in image pixels: ``(polygons, boxes)``.

    Rectangles become boxes ``(left, top, right, bottom)``; free-hand paths
    and polygons become point lists ``[(x, y), ...]`` (the path is closed by
    the caller).  Other objects are ignored.
    """
    polygons: list[list[tuple[float, float]]] = []
    boxes: list[tuple[int, int, int, int]] = []
    for obj in drawing_objects(json_data):
        kind = _type(obj)
        if kind in ("rect", "labeledrect"):
            roi = rect_to_image_roi(obj, geometry)
            if roi.x1 > roi.x0 and roi.y1 > roi.y0:
                boxes.append((roi.x0, roi.y0, roi.x1, roi.y1))
        elif kind in ("path", "polygon", "polyline"):
            pts = shape_points(obj)
            if len(pts) >= 3:
                m = geometry.margin
                polygons.append([((x - m) * geometry.sx, (y - m) * geometry.sy) for x, y in pts])
    return polygons, boxes
