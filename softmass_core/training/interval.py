"""DLM-1's score interval and operating points, measured on the validation cohort (``retune``, ``train``).

The interval is split-conformal calibration of the score's reproducibility
under the change a user really makes: drawing the ROI again.  For each
validation case every image's ROI is re-drawn with each side moved by a
random 0-15% of the box's width or height, inwards or outwards (clamped to the
image); the nonconformity is ``|logit p(re-drawn) - logit p(as given)|`` of the
fused DLM-1 score, and the half-width is the conformal quantile (the
``ceil((n+1)(1-alpha))``-th smallest of the n nonconformities).  A case's
interval is ``sigmoid(logit p +- halfwidth)``: under exchangeability a fresh
re-drawing of a new case lands inside it with probability >= 1 - alpha.  It
costs nothing at inference.  It does NOT cover the model's own uncertainty
(other training runs or data would score differently), nor other
acquisitions of the mass.

Coverage on other cohorts is measured with FRESH re-drawings (another seed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softmass_core.errors import SoftmassError
from softmass_core.io.roi import Roi, prepare, resolve_roi
from softmass_core.labels import DLM1, MODALITIES
from softmass_core.weights.operating import choose_operating_points, logit

METHOD = "split-conformal, ROI re-drawn (each side moved by a random 0-15% of the box)"
ALPHA = 0.1
MAX_SHIFT = 0.15
TEST_SEED_OFFSET = 1000
NOT_COVERED = (
    "It covers how much the score moves when the ROI is drawn again; it does not cover the model's own "
    "uncertainty (another training run or more data would score differently; ensembles come later) nor "
    "another acquisition of the mass."
)


def perturb_roi(roi: Roi | None, width: int, height: int, rng: np.random.Generator, frac: float = MAX_SHIFT) -> Roi:
    """``roi`` (None: the whole image) with each side moved by a random 0-``frac`` of the box size, in or out."""
    box = resolve_roi(roi, width, height)
    w, h = box.width, box.height
    d = rng.uniform(0.0, frac, 4) * rng.choice([-1.0, 1.0], 4)
    x0 = min(max(round(box.x0 + d[0] * w), 0), width)
    x1 = min(max(round(box.x1 + d[1] * w), 0), width)
    y0 = min(max(round(box.y0 + d[2] * h), 0), height)
    y1 = min(max(round(box.y1 + d[3] * h), 0), height)
    try:
        return resolve_roi(Roi(x0, y0, x1, y1), width, height)
    except SoftmassError:
        return box  # too small once clamped: keep the box as drawn


def conformal_halfwidth(scores, alpha: float = ALPHA) -> float:
    """The split-conformal quantile: the ceil((n+1)(1-alpha))-th smallest score (inf when n is too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = len(s)
    k = math.ceil((n + 1) * (1 - alpha))
    if n == 0 or k > n:
        return math.inf
    return float(s[k - 1])


def _fused(cascade, per_image: dict[str, float]) -> float:
    from softmass_core.inference.cascade import fuse

    return fuse(per_image, cascade.fusion_rule)


def redraw_scores(cascade, rows, *, seed: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Fused DLM-1 scores ``(as given, ROI re-drawn)`` of cohort ``rows`` (one re-drawing per case)."""
    import torch

    from softmass_core.io.images import load_image

    spec = cascade.weight_set.input_spec
    rng = np.random.default_rng(seed)
    given, drawn = [], []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        arrays, index = [], []
        for i, row in enumerate(batch):
            for m in MODALITIES:
                if m not in row.paths:
                    continue
                rgb = load_image(row.paths[m]).rgb
                h, w = rgb.shape[:2]
                new = perturb_roi(row.rois.get(m), w, h, rng)
                arrays += [prepare(rgb, row.rois.get(m), spec).array, prepare(rgb, new, spec).array]
                index.append((i, m))
        probs, _ = cascade.probabilities(DLM1, torch.from_numpy(np.stack(arrays)))
        for i in range(len(batch)):
            a = {m: float(probs[2 * j]) for j, (k, m) in enumerate(index) if k == i}
            b = {m: float(probs[2 * j + 1]) for j, (k, m) in enumerate(index) if k == i}
            given.append(_fused(cascade, a))
            drawn.append(_fused(cascade, b))
    return np.asarray(given), np.asarray(drawn)


def nonconformity(given, drawn) -> np.ndarray:
    return np.abs(np.array([logit(b) - logit(a) for a, b in zip(given, drawn)], dtype=float))


def coverage(scores, halfwidth: float) -> float:
    s = np.asarray(scores, dtype=float)
    return float(np.mean(s <= halfwidth)) if s.size else float("nan")


def measure_dlm1(
    cascade, cohort, val_cohort: str, val_predictions, *, seed: int = 0, alpha: float = ALPHA
) -> dict[str, Any]:
    """``{"operating_points", "interval"}`` for ``models.dlm1``, chosen and calibrated on ``val_cohort``.

    ``val_predictions`` are :func:`predict_cohort`'s rows of ``val_cohort``
    (the scores the thresholds were chosen on).  Test coverage is measured
    on every other cohort of ``cohort`` with fresh re-drawings.
    """
    y = val_predictions["y_malignant"].to_numpy(dtype=int)
    s = val_predictions["p_malignant"].to_numpy(dtype=float)
    # None (no operating points) when validation lacks a class: its threshold is a default 0.5 then
    points = choose_operating_points(y, s, cascade.weight_set.entry(DLM1).threshold) if len(set(y)) == 2 else None
    rows = [r for r in cohort.rows if r.cohort == val_cohort]
    if not rows:
        raise SoftmassError(f"No case in the {val_cohort!r} cohort to calibrate the score interval on.")
    val = nonconformity(*redraw_scores(cascade, rows, seed=seed))
    hw = conformal_halfwidth(val, alpha)
    interval: dict[str, Any] = {
        "method": METHOD,
        "alpha": alpha,
        "logit_halfwidth": hw,
        "validation_coverage": coverage(val, hw),
        "n": len(rows),
        "cohort": val_cohort,
        "seed": seed,
        "not_covered": NOT_COVERED,
        "test_coverage": {},
    }
    if math.isinf(hw):
        interval["logit_halfwidth"] = None  # JSON has no infinity
        interval["note"] = (
            f"{len(rows)} validation cases are too few for a {1 - alpha:.0%} conformal interval (it needs "
            f"{math.ceil(1 / alpha) - 1}); every case's interval is [0, 1]"
        )
    for name in cohort.names:
        if name == val_cohort:
            continue
        rows = [r for r in cohort.rows if r.cohort == name]
        nc = nonconformity(*redraw_scores(cascade, rows, seed=seed + TEST_SEED_OFFSET))
        interval["test_coverage"][name] = {"coverage": coverage(nc, hw), "n": len(rows)}
    return {"operating_points": points, "interval": interval}
