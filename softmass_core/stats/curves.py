"""Curves and sweeps for the dashboard: calibration (reliability) curve, metrics at many thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from softmass_core.errors import MetricsError
from softmass_core.stats.validation import as_scores, check_pair, show


def calibration_curve(labels: Any, scores: Any, *, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability diagram data with equal-width bins on [0, 1].

    ``scores`` must be probabilities in [0, 1]; bin i covers
    ``[i/n_bins, (i+1)/n_bins)`` and the last bin includes 1.0.  Returns
    ``{"mean_predicted", "fraction_positive", "count"}``, arrays of shape
    ``(k,)`` for the k non-empty bins in increasing order.
    """
    y, s = check_pair(labels, scores)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetricsError(f"n_bins must be a positive integer; got {show(n_bins)}.")
    outside = np.flatnonzero((s < 0.0) | (s > 1.0))
    if outside.size:
        i = int(outside[0])
        raise MetricsError(f"calibration_curve needs probabilities in [0, 1]; found {show(s[i])} at index {i}.")
    # Not sklearn.calibration.calibration_curve: its bins are closed on the right ((0.2, 0.3] holds
    # 0.3, here [0.3, 0.4) does, as documented above) and it returns no counts, which the dashboard
    # shows; tests/test_metrics.py::test_calibration_curve_agrees_with_sklearn_off_the_bin_edges.
    idx = np.minimum((s * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_pred = np.bincount(idx, weights=s, minlength=n_bins)
    sum_pos = np.bincount(idx, weights=y.astype(float), minlength=n_bins)
    keep = count > 0
    return {
        "mean_predicted": sum_pred[keep] / count[keep],
        "fraction_positive": sum_pos[keep] / count[keep],
        "count": count[keep],
    }


def threshold_sweep(labels: Any, scores: Any, thresholds: Any) -> pd.DataFrame:
    """Point metrics at many thresholds at once (fast enough for a live slider).

    Returns one row per threshold with columns ``threshold, tp, fp, fn, tn,
    sensitivity, specificity, ppv, npv, accuracy`` (fractions; positive when
    ``score >= threshold``).  Undefined values are NaN without a warning,
    since a sweep routinely reaches thresholds where nothing is called
    positive.  O((n + t) log n) for n cases and t thresholds.
    """
    y, s = check_pair(labels, scores)
    t = as_scores(np.atleast_1d(np.asarray(thresholds)), "thresholds")
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = pos.size - np.searchsorted(pos, t, side="left")
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn, tn = pos.size - tp, neg.size - fp

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    return pd.DataFrame(
        {
            "threshold": t,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "sensitivity": ratio(tp, tp + fn),
            "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp),
            "npv": ratio(tn, tn + fn),
            "accuracy": (tp + tn) / y.size,
        }
    )
