"""Regions of interest and the model-input transform.

The paper (Long et al., BMC Medicine 2023) crops a hand-drawn ROI from each
ultrasound image and resizes it to 470 x 280 (width x height), then
normalises it.  :func:`prepare` does exactly that, as a weight set's
:class:`~softmass_core.weights.manifest.InputSpec` says; :func:`cam_to_roi` and
:func:`paste_roi_map` map a heatmap computed on the model input back onto the
ROI and the full image, and :func:`draw_roi` outlines a ROI for people.

Coordinates are original-image pixels, ``x`` to the right and ``y`` down,
with ``x1``/``y1`` exclusive (numpy slicing ``rgb[y0:y1, x0:x1]``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from softmass_core.errors import RoiError
from softmass_core.weights.manifest import InputSpec

#: Smallest ROI side accepted, in original-image pixels.
MIN_ROI_SIZE = 8
#: Colour of the ROI box wherever one is drawn (dashboard, reader study, report).
ROI_COLOUR: tuple[int, int, int] = (255, 204, 0)

#: Pillow resampling filter for each ``InputSpec.interpolation`` (:data:`softmass_core.weights.manifest.INTERPOLATIONS`).
RESAMPLE: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

_ROI_HINT = "Write it as four whole numbers x0,y0,x1,y1 (pixels, e.g. 120,80,590,360)."


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise RoiError(f"ROI {what} must be a whole number of pixels, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class Roi:
    """A box in original-image pixels; ``x1`` and ``y1`` are exclusive.

    Corners may be swapped until :func:`resolve_roi` normalises them.
    """

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _as_int(getattr(self, f.name), f.name))

    @property
    def width(self) -> int:
        """``x1 - x0`` in pixels (positive once resolved)."""
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        """``y1 - y0`` in pixels (positive once resolved)."""
        return self.y1 - self.y0

    def as_string(self) -> str:
        """``"x0,y0,x1,y1"``, the form :func:`parse_roi` reads and cohort CSVs hold."""
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"

    def to_list(self) -> list[int]:
        """``[x0, y0, x1, y1]``."""
        return [self.x0, self.y0, self.x1, self.y1]

    @classmethod
    def from_scaled(
        cls,
        box: Sequence[float],
        sx: float,
        sy: float,
        *,
        offset: float = 0.0,
        bounds: tuple[int, int] | None = None,
    ) -> Roi:
        """The Roi in image pixels of a box ``(x0, y0, x1, y1)`` drawn on a scaled view of the image.

        Each x becomes ``(x - offset) * sx`` and each y ``(y - offset) * sy``,
        rounded half up; ``bounds=(width, height)`` then clamps them to the
        image.  Use it to map a box drawn on a downscaled preview or a drawing
        canvas (fractional pixels allowed; ``offset`` is an empty margin
        around the image) back to the original image (``sx = original_width /
        preview_width``).  The result may be empty or tiny, which
        :func:`resolve_roi` reports.

        >>> Roi.from_scaled((50, 40, 150, 90), 2.0, 2.0)
        Roi(x0=100, y0=80, x1=300, y1=180)
        """
        for factor, axis in ((sx, "sx"), (sy, "sy")):
            if not (isinstance(factor, (int, float, np.number)) and math.isfinite(factor)):
                raise RoiError(f"ROI scale factor {axis} must be a finite number, got {factor!r}.")
            if factor <= 0:
                raise RoiError(f"ROI scale factor {axis} must be positive, got {factor!r}.")

        def r(v: float, scale: float, limit: int | None) -> int:
            out = int(math.floor((float(v) - offset) * scale + 0.5))
            return out if limit is None else min(max(out, 0), int(limit))

        x0, y0, x1, y1 = box
        w, h = bounds if bounds is not None else (None, None)
        return cls(r(x0, sx, w), r(y0, sy, h), r(x1, sx, w), r(y1, sy, h))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _number(token: Any, original: Any) -> int:
    try:
        number = float(token)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(token, bool) or not math.isfinite(number):
        raise RoiError(f"ROI {original!r} has {token!r}, which is not a number. {_ROI_HINT}")
    return int(math.floor(number + 0.5))


def parse_roi(value: Any) -> Roi | None:
    """Read a ROI from ``"x0,y0,x1,y1"``, a 4-sequence or a :class:`Roi`.

    None, an empty string or NaN (an empty CSV cell) means the whole image
    and gives None.  Numbers are rounded to whole pixels.  Brackets and
    spaces are tolerated: ``"[10, 20, 300, 200]"``.  Written corners must be
    in order (``x1 > x0`` and ``y1 > y0``): an inverted box such as
    ``10,10,5,5`` is refused as inverted (it is often ``x,y,width,height``
    by mistake), not guessed at.  A :class:`Roi` is returned as it is.

    >>> parse_roi(" 10, 20,300 ,200")
    Roi(x0=10, y0=20, x1=300, y1=200)
    """
    if _is_missing(value):
        return None
    if isinstance(value, Roi):
        return value
    if isinstance(value, str):
        text = value.strip()
        inner = re.sub(r"^[\[\(]\s*(.*?)\s*[\]\)]$", r"\1", text)
        tokens: Sequence[Any] = [t.strip() for t in inner.split(",")]
        if len(tokens) != 4 or any(not t for t in tokens):
            raise RoiError(f"ROI {value!r} is not four comma-separated numbers. {_ROI_HINT}")
    elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (bytes, bytearray)):
        tokens = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(tokens) != 4:
            raise RoiError(f"ROI {value!r} has {len(tokens)} values, not 4. {_ROI_HINT}")
    else:
        raise RoiError(f"ROI {value!r} is not a string or a sequence of 4 numbers. {_ROI_HINT}")
    roi = Roi(*(_number(t, value) for t in tokens))
    _check_order(roi, value)
    return roi


def _check_order(roi: Roi, original: Any) -> None:
    """RoiError unless ``x1 > x0`` and ``y1 > y0``, saying which pair is the wrong way round."""
    wrong = [
        f"{b} ({vb}) must be greater than {a} ({va})"
        for a, va, b, vb in (("x0", roi.x0, "x1", roi.x1), ("y0", roi.y0, "y1", roi.y1))
        if vb <= va
    ]
    if not wrong:
        return
    shown = original if isinstance(original, str) else roi.as_string()
    inverted = roi.x1 < roi.x0 or roi.y1 < roi.y0
    what = "is inverted" if inverted else "has zero area"
    hint = " and ".join(wrong)
    as_size = ""
    if inverted and roi.x1 > 0 and roi.y1 > 0:
        fixed = Roi(roi.x0, roi.y0, roi.x0 + roi.x1, roi.y0 + roi.y1)
        as_size = f" If you meant x,y,width,height, write {fixed.as_string()}."
    raise RoiError(
        f"ROI {shown!r} {what}: {hint}. The four numbers are the left, top, right and bottom edges "
        f"x0,y0,x1,y1 in pixels.{as_size}"
    )


def resolve_roi(roi: Roi | None, width: int, height: int, *, min_size: int = MIN_ROI_SIZE) -> Roi:
    """Clip ``roi`` to a ``width`` x ``height`` image; None means the whole image.

    Swapped corners are normalised.  Raises :class:`RoiError` if the box has
    zero area, lies entirely outside the image, or has a side shorter than
    ``min(min_size, width, height)`` pixels after clipping.
    """
    width = int(width)
    height = int(height)
    if width <= 0 or height <= 0:
        raise RoiError(f"The image is empty ({width} x {height} pixels); load another image.")
    if roi is None:
        return Roi(0, 0, width, height)
    if not isinstance(roi, Roi):
        roi = parse_roi(roi)
        if roi is None:
            return Roi(0, 0, width, height)
    x0, x1 = sorted((roi.x0, roi.x1))
    y0, y1 = sorted((roi.y0, roi.y1))
    size = f"{width} x {height}"
    if x0 == x1 or y0 == y1:
        raise RoiError(f"ROI {roi.as_string()} has zero area. Draw a box around the mass, inside the {size} image.")
    cx0, cx1 = max(0, x0), min(width, x1)
    cy0, cy1 = max(0, y0), min(height, y1)
    if cx0 >= cx1 or cy0 >= cy1:
        raise RoiError(
            f"ROI {roi.as_string()} lies entirely outside the {size} image "
            f"(x must be within 0..{width}, y within 0..{height}). Redraw the box on "
            "this image."
        )
    need = min(int(min_size), width, height)
    if cx1 - cx0 < need or cy1 - cy0 < need:
        raise RoiError(
            f"ROI {roi.as_string()} is only {cx1 - cx0} x {cy1 - cy0} pixels inside the "
            f"{size} image; each side must be at least {need} pixels. Draw a larger box "
            "around the mass."
        )
    return Roi(cx0, cy0, cx1, cy1)


@dataclass(frozen=True)
class Prepared:
    """A model input: ``array`` is ``(3, H, W)`` float32, normalised.

    ``roi`` is the resolved box in original-image pixels; ``content_box`` is
    ``(x0, y0, x1, y1)`` in model-input pixels where the ROI content lies
    (the whole input for ``stretch``; the letterboxed area for ``pad``; the
    ROI inside its surrounding image for ``context``).
    """

    array: np.ndarray
    roi: Roi
    content_box: tuple[int, int, int, int]


def _lookup_tables(spec: InputSpec) -> np.ndarray:
    """``(3, 256)`` float32: ``(v / 255 - mean[c]) / std[c]`` for every byte ``v``."""
    v = np.arange(256, dtype=np.float64) / 255.0
    mean = np.asarray(spec.mean, dtype=np.float64)[:, None]
    std = np.asarray(spec.std, dtype=np.float64)[:, None]
    return ((v[None, :] - mean) / std).astype(np.float32)


def _context_region(arr: np.ndarray, box: Roi, aspect: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The ROI grown along one side to ``aspect`` (width / height) with the image around it.

    The grown box keeps the ROI's centre where the image allows and is moved
    inward at an image edge, so the extra pixels are real image; only a box
    larger than the image is filled, by repeating the edge pixels.  Returns
    the region (uint8 ``(h, w, 3)``) and its top-left corner in image pixels
    (negative where the region starts outside the image).
    """
    height, width = arr.shape[:2]
    w, h = box.width, box.height
    if w / h < aspect:
        w = max(w, int(math.floor(h * aspect + 0.5)))
    else:
        h = max(h, int(math.floor(w / aspect + 0.5)))

    def place(lo: int, size: int, extent: int, limit: int) -> int:
        start = lo - (size - extent) // 2
        if size <= limit:
            return min(max(start, 0), limit - size)
        return start  # larger than the image: centred on the ROI, edges repeated

    x0, y0 = place(box.x0, w, box.width, width), place(box.y0, h, box.height, height)
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, width), min(y0 + h, height)
    region = arr[iy0:iy1, ix0:ix1]
    pads = ((iy0 - y0, y0 + h - iy1), (ix0 - x0, x0 + w - ix1), (0, 0))
    if any(a or b for a, b in pads[:2]):
        region = np.pad(region, pads, mode="edge")
    return np.ascontiguousarray(region), (x0, y0)


def prepare(rgb: np.ndarray, roi: Roi | None, spec: InputSpec) -> Prepared:
    """Crop ``roi`` from ``rgb`` (``(H, W, 3)`` uint8) and make a model input.

    Steps: resolve the ROI, crop, resize to ``spec.width`` x ``spec.height``
    with Pillow (``spec.interpolation``; letterbox for ``pad``; for
    ``context`` the ROI is first grown to the input's aspect ratio with the
    image around it, :func:`_context_region`), scale to
    [0, 1], subtract ``mean``, divide by ``std``, transpose to CHW float32.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"prepare() needs an (H, W, 3) uint8 array, got {arr.shape} {arr.dtype}.")
    height, width = arr.shape[:2]
    box = resolve_roi(roi, width, height)
    crop = Image.fromarray(np.ascontiguousarray(arr[box.y0 : box.y1, box.x0 : box.x1]))
    resample = RESAMPLE[spec.interpolation]
    out_w, out_h = spec.width, spec.height
    if spec.resize_mode == "stretch":
        resized = crop.resize((out_w, out_h), resample)
        content = (0, 0, out_w, out_h)
    elif spec.resize_mode == "context":
        region, (rx0, ry0) = _context_region(arr, box, out_w / out_h)
        resized = Image.fromarray(region).resize((out_w, out_h), resample)
        sx, sy = out_w / region.shape[1], out_h / region.shape[0]
        cx0 = min(out_w - 1, int(math.floor((box.x0 - rx0) * sx + 0.5)))
        cy0 = min(out_h - 1, int(math.floor((box.y0 - ry0) * sy + 0.5)))
        cx1 = max(cx0 + 1, min(out_w, int(math.floor((box.x1 - rx0) * sx + 0.5))))
        cy1 = max(cy0 + 1, min(out_h, int(math.floor((box.y1 - ry0) * sy + 0.5))))
        content = (cx0, cy0, cx1, cy1)
    else:
        scale = min(out_w / box.width, out_h / box.height)
        new_w = min(out_w, max(1, int(math.floor(box.width * scale + 0.5))))
        new_h = min(out_h, max(1, int(math.floor(box.height * scale + 0.5))))
        left, top = (out_w - new_w) // 2, (out_h - new_h) // 2
        resized = Image.new("RGB", (out_w, out_h), (spec.pad_value,) * 3)
        resized.paste(crop.resize((new_w, new_h), resample), (left, top))
        content = (left, top, left + new_w, top + new_h)
    pixels = np.asarray(resized)
    lut = _lookup_tables(spec)
    out = np.empty((3, out_h, out_w), dtype=np.float32)
    for c in range(3):
        np.take(lut[c], pixels[:, :, c], out=out[c])
    return Prepared(array=out, roi=box, content_box=content)


def _resize_float(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2-D float map to ``(height, width)`` float32."""
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    if img.size == (width, height):
        return np.array(img, dtype=np.float32)
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def cam_to_roi(cam: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Map a heatmap on the model input back onto the ROI.

    ``cam`` is 2-D at any resolution (it is first resized bilinearly to the
    model input ``(H, W)``); it is cropped to ``prepared.content_box`` and
    resized to ``(roi.height, roi.width)``.  Returns float32.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam_to_roi() needs a 2-D map, got shape {cam.shape}.")
    _, in_h, in_w = prepared.array.shape
    full = _resize_float(cam, in_w, in_h)
    x0, y0, x1, y1 = prepared.content_box
    roi = prepared.roi
    return _resize_float(full[y0:y1, x0:x1], roi.width, roi.height)


def paste_roi_map(roi_map: np.ndarray, roi: Roi, width: int, height: int, fill: float = 0.0) -> np.ndarray:
    """A ``(height, width)`` float32 map, ``fill`` everywhere except ``roi_map`` at ``roi``.

    ``roi_map`` must be ``(roi.height, roi.width)`` and ``roi`` must lie
    inside the image (as :func:`resolve_roi` returns it).
    """
    roi_map = np.asarray(roi_map, dtype=np.float32)
    if roi_map.shape != (roi.height, roi.width):
        raise ValueError(
            f"roi_map has shape {roi_map.shape} but ROI {roi.as_string()} needs ({roi.height}, {roi.width})."
        )
    if not (0 <= roi.x0 < roi.x1 <= width and 0 <= roi.y0 < roi.y1 <= height):
        raise RoiError(
            f"ROI {roi.as_string()} does not lie inside the {width} x {height} image; "
            "resolve it with resolve_roi() first."
        )
    out = np.full((int(height), int(width)), fill, dtype=np.float32)
    out[roi.y0 : roi.y1, roi.x0 : roi.x1] = roi_map
    return out


def draw_roi(rgb: np.ndarray, roi: Roi, *, colour: tuple[int, int, int] = ROI_COLOUR, width: int = 0) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) uint8 with ``roi`` outlined (line width scales with the image unless given)."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    line = width or max(2, round(max(img.size) / 300))
    draw = ImageDraw.Draw(img)
    draw.rectangle((roi.x0, roi.y0, roi.x1 - 1, roi.y1 - 1), outline=colour, width=line)
    return np.asarray(img)
