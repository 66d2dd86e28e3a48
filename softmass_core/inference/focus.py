"""How far the model's focus coincides with the radiologist's (paper, Table 4).

Long et al. (BMC Medicine 2023) had two radiologists mark their area of most
concern on 130 cases and graded how it coincided with the Grad-CAM area of most
concern: *complete* (100%), *most* (50-99%), *partial* (1-49%) or *not at all*
(0).  The paper does not say how the percentage was measured, so this module
fixes one reproducible definition:

* **Reader area** ``R``: the pixels the reader drew (a box, a closed free-hand
  path or the union of several), as a boolean mask.
* **Model area** ``C``: the Grad-CAM is min-max normalised to [0, 1] and
  ``C = cam >= threshold`` (default 0.5, i.e. the upper half of the response,
  the "red" part of the paper's Fig. 4).  A constant CAM carries no
  localisation at all, so its region is empty.
* **Coincidence**: ``reader_coverage = |R & C| / |R|``, the share of the
  reader's area that the model also focused on.  It is the reader's area that
  the grade is anchored to because the question the paper asks is whether the
  model looked where the radiologist looked; a model region larger than the
  reader's does not lower the grade.  ``cam_coverage = |R & C| / |C|`` and the
  intersection over union are reported alongside for the other direction.
* **Grade**: ``percent`` is ``reader_coverage`` in whole percent, rounded half
  up (exact integer arithmetic), then binned like the paper: 100 -> complete,
  50-99 -> most, 1-49 -> partial, 0 -> none.  An overlap under 0.5% of the
  reader's area therefore counts as none, and one of 99.5% or more as complete,
  as a person reading the percentage off the screen would grade it.

The reader mask and the CAM must be in the same pixel grid: the caller maps
the CAM onto the ROI or image first.  Coordinates are pixels, x to the right
and y down, with (0, 0) the top-left pixel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from softmass_core import labels
from softmass_core.errors import MetricsError, RoiError

#: Grades of coincidence in the paper's column order (Table 4).
GRADES: tuple[str, ...] = ("complete", "most", "partial", "none")

#: Column headers of Table 4 for each grade.
GRADE_TITLES: dict[str, str] = {
    "complete": "Complete (100%)",
    "most": "Most (50-99%)",
    "partial": "Partial (1-49%)",
    "none": "Not at all (0)",
}

#: Row order of Table 4: the five benign subtypes, then sarcoma (malignant).
LESION_ORDER: tuple[str, ...] = (*labels.SUBTYPES, labels.MALIGNANT, labels.BENIGN)

TOTAL = "total"


def _check_size(height: int, width: int) -> tuple[int, int]:
    h, w = int(height), int(width)
    if h <= 0 or w <= 0 or h != height or w != width:
        raise RoiError(f"image size must be positive whole pixels, got height={height!r}, width={width!r}")
    return h, w


def reader_mask_from_box(box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Boolean mask (height, width) of a rectangle ``box = (left, top, right, bottom)``.

    Pixel coordinates; ``right`` and ``bottom`` are exclusive (as in
    ``PIL.Image.crop``), so the box covers ``(right - left) * (bottom - top)``
    pixels.  Swapped corners are normalised and parts outside the image
    clipped.  Raises RoiError for a box with no area or one entirely outside
    the image.
    """
    h, w = _check_size(height, width)
    if len(box) != 4:
        raise RoiError(f"a box is (left, top, right, bottom), got {box!r}")
    try:
        left, top, right, bottom = (int(round(float(v))) for v in box)
    except (TypeError, ValueError, OverflowError):
        raise RoiError(f"a box needs four finite pixel coordinates, got {box!r}") from None
    left, right = sorted((left, right))
    top, bottom = sorted((top, bottom))
    if right == left or bottom == top:
        raise RoiError(f"box {tuple(box)!r} has no area; draw the box again")
    x0, x1 = max(left, 0), min(right, w)
    y0, y1 = max(top, 0), min(bottom, h)
    if x1 <= x0 or y1 <= y0:
        raise RoiError(f"box {tuple(box)!r} lies outside the {w} x {h} image; draw it again")
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _draw_polygon(draw: ImageDraw.ImageDraw, points: Sequence[tuple[float, float]]) -> None:
    pts = [(float(p[0]), float(p[1])) for p in points]
    if len(pts) < 3:
        raise RoiError(
            f"a free-hand area needs at least 3 points, got {len(pts)}; draw a closed "
            "outline around the area you looked at"
        )
    if not np.all(np.isfinite(np.asarray(pts))):
        raise RoiError("a free-hand area has a point that is not a finite number")
    draw.polygon(pts, fill=1, outline=1)


def reader_mask_from_polygon(points: Sequence[tuple[float, float]], height: int, width: int) -> np.ndarray:
    """Boolean mask (height, width) of a free-hand path ``[(x, y), ...]`` closed into a polygon.

    The last point is joined to the first.  Pixels on the outline count as
    inside (a 0..9 right triangle covers 10 + 9 + ... + 1 = 55 pixels).
    Parts outside the image are clipped.  Raises RoiError for fewer than 3
    points or a polygon that covers no pixel of the image.
    """
    return reader_mask_from_paths([points], height, width)


def reader_mask_from_paths(
    paths: Iterable[Sequence[tuple[float, float]]],
    height: int,
    width: int,
    *,
    boxes: Iterable[tuple[int, int, int, int]] = (),
) -> np.ndarray:
    """Union (height, width) of several free-hand polygons and boxes.

    ``paths`` as in :func:`reader_mask_from_polygon`, ``boxes`` as in
    :func:`reader_mask_from_box`.  Raises RoiError if nothing was drawn or
    the union covers no pixel of the image.
    """
    h, w = _check_size(height, width)
    canvas = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    n_shapes = 0
    for points in paths:
        _draw_polygon(draw, points)
        n_shapes += 1
    mask = np.array(canvas, dtype=bool)
    for box in boxes:
        mask |= reader_mask_from_box(box, h, w)
        n_shapes += 1
    if n_shapes == 0:
        raise RoiError("nothing was drawn: draw the area you looked at first")
    if not mask.any():
        raise RoiError(f"the drawn area lies outside the {w} x {h} image; draw it again")
    return mask


def normalise_cam(cam: np.ndarray) -> np.ndarray | None:
    """Min-max normalise a 2-D CAM to float64 in [0, 1]; None if it is constant.

    A CAM whose range is below 1e-12 of its magnitude is treated as constant.
    Raises RoiError for a CAM that is not 2-D or holds NaN or infinity.
    """
    arr = np.asarray(cam, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise RoiError(f"a CAM must be a non-empty 2-D array (height, width), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise RoiError("the CAM holds NaN or infinite values; recompute it")
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        return None
    return (arr - lo) / (hi - lo)


def cam_region(cam: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask (height, width) of the CAM's high-response area.

    The CAM is min-max normalised to [0, 1] first and the region is
    ``cam >= threshold``.  A constant CAM (no localisation) gives an empty
    region.  ``threshold`` must lie in [0, 1].
    """
    t = _check_threshold(threshold)
    norm = normalise_cam(cam)
    if norm is None:
        return np.zeros(np.shape(cam), dtype=bool)
    return norm >= t


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise RoiError(f"the CAM threshold must lie between 0 and 1, got {threshold!r}")
    return t


def grade_from_percent(percent: int) -> str:
    """Table 4 bin of a whole percentage: 100 complete, 50-99 most, 1-49 partial, 0 none."""
    p = int(percent)
    if not 0 <= p <= 100:
        raise RoiError(f"a coincidence percentage lies between 0 and 100, got {percent!r}")
    if p == 100:
        return "complete"
    if p >= 50:
        return "most"
    if p >= 1:
        return "partial"
    return "none"


@dataclass(frozen=True)
class FocusComparison:
    """The reader's area against the model's high-response area (see module docstring).

    Coverages and ``iou`` are fractions in [0, 1]; ``percent`` is
    ``reader_coverage`` in whole percent; pixel counts are of the two masks.
    """

    grade: str  # one of GRADES
    reader_coverage: float  # |R & C| / |R|
    cam_coverage: float  # |R & C| / |C|, 0.0 when C is empty
    iou: float  # |R & C| / |R | C|
    percent: int  # reader_coverage in whole percent, rounded half up
    threshold: float
    reader_pixels: int
    cam_pixels: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-ready)."""
        return dataclasses.asdict(self)


def compare_focus(reader_mask: np.ndarray, cam: np.ndarray, *, threshold: float = 0.5) -> FocusComparison:
    """Grade how the reader's area (height, width) coincides with the CAM's.

    ``reader_mask`` is boolean (or 0/1) and ``cam`` any real map of the same
    shape, both in the same pixel grid.  Raises RoiError for an empty reader
    mask or mismatched shapes.

    >>> r = np.zeros((10, 10), bool); r[0:10, 0:4] = True
    >>> cam = np.zeros((10, 10)); cam[:, 0:2] = 1.0
    >>> compare_focus(r, cam).grade
    'most'
    """
    t = _check_threshold(threshold)
    reader = np.asarray(reader_mask)
    cam_arr = np.asarray(cam)
    if reader.shape != cam_arr.shape:
        raise RoiError(
            f"the reader's mask has shape {reader.shape} but the CAM has shape "
            f"{cam_arr.shape}; map the CAM onto the same image first"
        )
    if reader.ndim != 2:
        raise RoiError(f"the reader's mask must be 2-D (height, width), got shape {reader.shape}")
    if reader.dtype != bool:
        if not np.isin(reader, (0, 1)).all():
            raise RoiError("the reader's mask must be boolean or hold only 0 and 1")
        reader = reader.astype(bool)
    n_reader = int(reader.sum())
    if n_reader == 0:
        raise RoiError("the reader's area is empty: draw the area you looked at first")
    region = cam_region(cam_arr, threshold=t)
    n_cam = int(region.sum())
    inter = int(np.logical_and(reader, region).sum())
    union = int(np.logical_or(reader, region).sum())
    # Half-up rounding of 100 * inter / n_reader in exact integers.
    percent = (200 * inter + n_reader) // (2 * n_reader)
    return FocusComparison(
        grade=grade_from_percent(percent),
        reader_coverage=inter / n_reader,
        cam_coverage=inter / n_cam if n_cam else 0.0,
        iou=inter / union,
        percent=int(percent),
        threshold=t,
        reader_pixels=n_reader,
        cam_pixels=n_cam,
    )


def _cell(n: int, total: int) -> str:
    if total == 0:
        return f"{n} (-)"
    return f"{n} ({100.0 * n / total:.1f}%)"


def summarise_grades(rows: Iterable[tuple[str, str]], *, lesion_types: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 4 layout from ``(lesion_type, grade)`` pairs, one pair per graded case.

    Lesion types are labels from :mod:`softmass_core.labels` (sarcoma is
    ``"malignant"``); grades are from :data:`GRADES`.  Rows: the lesion types
    present, in the paper's order (or exactly ``lesion_types`` when given),
    then ``"total"``.  Columns: one per grade with the cell ``"n (p%)"``
    (p = share of that row, one decimal; ``"0 (-)"`` for an empty row), then
    numeric ``n_<grade>`` and ``pct_<grade>`` (NaN for an empty row) and ``n``.
    Raises MetricsError for an unknown lesion type or grade.
    """
    counts: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    for i, pair in enumerate(rows):
        try:
            lesion, grade = pair
        except (TypeError, ValueError):
            bad.append(f"row {i}: expected (lesion_type, grade), got {pair!r}")
            continue
        if lesion not in labels.COHORT_LABELS:
            bad.append(f"row {i}: unknown lesion type {lesion!r}")
            continue
        if grade not in GRADES:
            bad.append(f"row {i}: unknown grade {grade!r} (expected one of {', '.join(GRADES)})")
            continue
        counts.setdefault(lesion, dict.fromkeys(GRADES, 0))[grade] += 1
    if bad:
        raise MetricsError("cannot summarise the focus grades:\n" + "\n".join(bad[:20]))

    if lesion_types is None:
        order = [t for t in LESION_ORDER if t in counts]
    else:
        order = list(lesion_types)
        unknown = [t for t in order if t not in labels.COHORT_LABELS]
        if unknown:
            raise MetricsError(f"unknown lesion types requested: {unknown!r}")
        missing = [t for t in counts if t not in order]
        if missing:
            raise MetricsError(f"graded lesion types {missing!r} are not among the requested rows {order!r}")
    table_counts = {t: counts.get(t, dict.fromkeys(GRADES, 0)) for t in order}
    table_counts[TOTAL] = {g: sum(c[g] for c in table_counts.values()) for g in GRADES}

    records = []
    for c in table_counts.values():
        total = sum(c.values())
        rec: dict[str, Any] = {g: _cell(c[g], total) for g in GRADES}
        for g in GRADES:
            rec[f"n_{g}"] = c[g]
            rec[f"pct_{g}"] = 100.0 * c[g] / total if total else float("nan")
        rec["n"] = total
        records.append(rec)
    frame = pd.DataFrame.from_records(records, index=list(table_counts))
    frame.index.name = "lesion_type"
    return frame


def summarise_grades_by_model(
    rows: Iterable[tuple[str, str, str]], *, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """One Table 4 per model from ``(model, lesion_type, grade)`` triples, stacked.

    A case graded for two models (say DLM-1 and SM-1) is one case in each
    model's table; there is no total across models, which would count it
    twice.  Rows are indexed by ``(model, lesion_type)``, each model's block
    ending with its ``"total"`` row; columns as :func:`summarise_grades`.
    Models come in the order of ``models`` (default ``labels.MODEL_IDS``,
    then any other id in sorted order); models without a grade are left out.
    Raises MetricsError for a malformed triple, unknown lesion type or grade.
    """
    by_model: dict[str, list[tuple[str, str]]] = {}
    for i, triple in enumerate(rows):
        try:
            model, lesion, grade = triple
        except (TypeError, ValueError):
            raise MetricsError(
                f"cannot summarise the focus grades: row {i}: expected (model, lesion_type, grade), got {triple!r}"
            ) from None
        by_model.setdefault(str(model), []).append((lesion, grade))
    order = list(models) if models is not None else list(labels.MODEL_IDS)
    order += sorted(m for m in by_model if m not in order)
    blocks = {m: summarise_grades(by_model[m]) for m in order if m in by_model}
    if not blocks:
        columns = summarise_grades([]).columns
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=["model", "lesion_type"]))
    return pd.concat(blocks, names=["model", "lesion_type"])
