"""A simple, honest non-CNN baseline: ROI intensity histograms + logistic regression.

It shows how much of a cohort can be told apart from grey-level statistics and
the amount of colour-Doppler signal alone, as a floor for the CNN.  Plain
numpy/scipy: L2-regularised logistic regression, one-vs-rest, fitted on one
cohort and scored (rank AUC) on the others.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import minimize

from softmass_core.errors import CohortError, ImageError, RoiError
from softmass_core.labels import MALIGNANT, SUBTYPES
from softmass_core.stats.roc import rank_auc  # noqa: F401 - the baseline scores with it; re-exported

N_BINS = 16
_REQUIRED = ("case_id", "cohort", "label", "gray_path", "cdfi_path", "gray_roi", "cdfi_roi")


def histogram_features(rgb: np.ndarray, roi: Sequence[int], *, bins: int = N_BINS) -> np.ndarray:
    """Grey-level histogram, mean, sd and colour-pixel fraction inside ``roi``.

    Args:
        rgb: (H, W, 3) uint8 image.
        roi: (x0, y0, x1, y1) in pixels, x1/y1 exclusive.
        bins: histogram bins over 0..255.

    Returns:
        float64 vector of length ``bins + 3``: histogram (fractions summing to 1),
        mean and sd of the grey level (0..1) and the fraction of coloured pixels
        (channel spread > 40, i.e. Doppler colour, not a grey tint).

    Example:
        >>> img = np.zeros((10, 10, 3), np.uint8); img[:, :5] = 255
        >>> f = histogram_features(img, (0, 0, 10, 10), bins=2)
        >>> f[:2].tolist(), round(float(f[2]), 2), float(f[-1])
        ([0.5, 0.5], 0.5, 0.0)
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ImageError(f"Expected an (H, W, 3) RGB image, got shape {arr.shape}.")
    x0, y0, x1, y1 = (int(v) for v in roi)
    h, w = arr.shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise RoiError(f"ROI {tuple(roi)} does not fit a {w}x{h} image: use 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H.")
    crop = arr[y0:y1, x0:x1, :3].astype(np.int16)
    grey = crop.mean(axis=2)
    hist, _ = np.histogram(grey, bins=bins, range=(0.0, 256.0))
    hist = hist / max(1, grey.size)
    spread = crop.max(axis=2) - crop.min(axis=2)
    colour = float((spread > 40).mean())
    g = grey / 255.0
    return np.concatenate([hist, [g.mean(), g.std(), colour]]).astype(np.float64)


def fit_logistic(X: np.ndarray, y: np.ndarray, *, l2: float = 1e-2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2 logistic regression on standardised features.

    Returns:
        (weights with the bias last, feature means, feature sds) for :func:`predict_logistic`.
    """
    mu = X.mean(axis=0)
    sd = X.std(axis=0) + 1e-8
    Z = np.hstack([(X - mu) / sd, np.ones((X.shape[0], 1))])
    t = np.where(np.asarray(y).astype(bool), 1.0, -1.0)
    n = Z.shape[0]
    # class-balanced weights so that rare classes (malignant) are not ignored
    wpos = 0.5 / max(1, (t > 0).sum())
    wneg = 0.5 / max(1, (t < 0).sum())
    cw = np.where(t > 0, wpos, wneg) * n

    def loss(wv: np.ndarray) -> tuple[float, np.ndarray]:
        m = t * (Z @ wv)
        lo = np.logaddexp(0.0, -m)
        grad_m = -cw * t / (1.0 + np.exp(m))
        reg = wv.copy()
        reg[-1] = 0.0
        f = float((cw * lo).mean() + 0.5 * l2 * (reg @ reg))
        g = Z.T @ grad_m / n + l2 * reg
        return f, g

    res = minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B")
    return res.x, mu, sd


def predict_logistic(model: tuple[np.ndarray, np.ndarray, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Decision scores (log-odds) of a model from :func:`fit_logistic`."""
    w, mu, sd = model
    return ((X - mu) / sd) @ w[:-1] + w[-1]


def _parse_roi(text: str) -> tuple[int, int, int, int]:
    parts = [int(float(p)) for p in str(text).replace(" ", "").split(",")]
    if len(parts) != 4:
        raise ValueError(text)
    return parts[0], parts[1], parts[2], parts[3]


def load_features(cohort_csv: str | Path) -> tuple[list[dict[str, str]], np.ndarray]:
    """Rows of a cohort CSV and their features (grey ROI + CDFI ROI), shape (n, 2 * (N_BINS + 3))."""
    path = Path(cohort_csv)
    if not path.is_file():
        raise CohortError(f"Cohort CSV {path} not found: generate one with `python -m softmass_core phantom`.")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CohortError(f"Cohort CSV {path} lacks column(s) {', '.join(missing)}.")
        rows = list(reader)
    feats, problems = [], []
    for i, row in enumerate(rows, start=2):
        try:
            vec = []
            for kind in ("gray", "cdfi"):
                with Image.open(path.parent / row[f"{kind}_path"]) as im:
                    arr = np.asarray(im.convert("RGB"))
                vec.append(histogram_features(arr, _parse_roi(row[f"{kind}_roi"])))
            feats.append(np.concatenate(vec))
        except (OSError, ValueError, RoiError, ImageError) as err:
            problems.append(f"line {i} ({row.get('case_id', '?')}): {err}")
    if problems:
        raise CohortError(f"Cohort CSV {path} has unreadable rows; fix or regenerate them.", problems)
    return rows, np.asarray(feats)


def histogram_baseline(
    cohort_csv: str | Path,
    *,
    train_cohort: str = "training",
    eval_cohorts: Sequence[str] = ("validation", "test_a", "test_b"),
) -> dict[str, dict[str, float]]:
    """Fit the histogram baseline on ``train_cohort`` and score the others.

    Tasks: ``malignant`` (malignant vs all benign cases) and each subtype
    one-vs-rest among the benign cases.

    Returns:
        ``{task: {cohort: auc}}`` for the training cohort and every evaluated cohort
        present in the CSV (NaN where a cohort lacks positives or negatives).
    """
    rows, X = load_features(cohort_csv)
    cohorts = np.array([r["cohort"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    if not (cohorts == train_cohort).any():
        raise CohortError(f"Cohort CSV {cohort_csv} has no {train_cohort!r} rows to fit the baseline on.")
    shown = [train_cohort] + [c for c in eval_cohorts if (cohorts == c).any() and c != train_cohort]
    benign = np.isin(labels, SUBTYPES)
    tasks: list[tuple[str, np.ndarray, np.ndarray]] = [(MALIGNANT, np.ones(len(rows), bool), labels == MALIGNANT)]
    tasks += [(sub, benign, labels == sub) for sub in SUBTYPES]
    out: dict[str, dict[str, float]] = {}
    for name, use, positive in tasks:
        fit_rows = use & (cohorts == train_cohort)
        out[name] = {}
        if positive[fit_rows].all() or not positive[fit_rows].any():
            out[name] = {c: float("nan") for c in shown}
            continue
        model = fit_logistic(X[fit_rows], positive[fit_rows])
        for c in shown:
            sel = use & (cohorts == c)
            out[name][c] = rank_auc(positive[sel], predict_logistic(model, X[sel])) if sel.any() else float("nan")
    return out
