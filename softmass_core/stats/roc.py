"""ROC analysis: the ROC curve, the AUC with its DeLong interval, and the paired DeLong test of two AUCs.

``labels`` (0/1 or bool, 1 = positive) and ``scores`` (finite floats, larger
= more positive) have shape ``(n,)``; see :mod:`softmass_core.stats`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats
from sklearn import metrics as skmetrics
from sklearn.exceptions import UndefinedMetricWarning as skmetrics_warning

from softmass_core.stats.estimate import Estimate
from softmass_core.stats.validation import (
    check_alpha,
    check_n_boot,
    check_pair,
    percentile_ci,
    warn_undefined,
    z_value,
)

# Bootstrap work is done in blocks of at most this many matrix cells, so that
# memory stays bounded (about 64 MB of float64) whatever n and n_boot are.
_BOOT_BLOCK_CELLS = 8_000_000


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve.

    Returns ``(fpr, tpr, thresholds)``, three float arrays of shape ``(k + 1,)``
    where k is the number of distinct scores.  ``thresholds`` decrease from
    ``+inf`` (nothing positive: the point (0, 0)) to the smallest score
    (everything positive: the point (1, 1)); tied scores move the curve in one
    diagonal step.  ``fpr``/``tpr`` are NaN (with a warning) when there are no
    negatives/positives.  Computed by ``sklearn.metrics.roc_curve`` with every
    threshold kept (``drop_intermediate=False``).

    >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y, s = check_pair(labels, scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    with warnings.catch_warnings():
        # scikit-learn warns in its own words and class; ours follow below.
        warnings.simplefilter("ignore", skmetrics_warning)
        fpr, tpr, thresholds = skmetrics.roc_curve(y.astype(int), s, drop_intermediate=False)
    fpr, tpr, thresholds = fpr.astype(float), tpr.astype(float), thresholds.astype(float)
    if n1 == 0:
        warn_undefined("No positive cases: the true positive rate is undefined (NaN).")
        tpr = np.full_like(tpr, np.nan)
    if n0 == 0:
        warn_undefined("No negative cases: the false positive rate is undefined (NaN).")
        fpr = np.full_like(fpr, np.nan)
    return fpr, tpr, thresholds


def youden_threshold(y: np.ndarray, s: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity - 1 (midpoint between scores)."""
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, s)
    j = tpr - fpr
    best = int(np.argmax(j[1:])) + 1 if len(j) > 1 else 0
    t = float(thr[best])
    if not math.isfinite(t):
        return 0.5
    below = s[s < t]
    mid = (t + float(below.max())) / 2 if below.size else t
    return float(min(max(mid, 0.0), 1.0))


def _delong(y: np.ndarray, score_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix (fast midrank algorithm).

    ``score_rows`` has shape ``(k, n)``: k score vectors on the same n cases.
    Returns ``aucs`` of shape ``(k,)`` and ``cov`` of shape ``(k, k)``
    (Sun & Xu 2014, IEEE Signal Process. Lett. 21:1389).  The caller makes
    sure there are at least 2 positives and 2 negatives.
    """
    pos, neg = score_rows[:, y], score_rows[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    rank_pos = stats.rankdata(pos, axis=1)  # midranks within positives
    rank_neg = stats.rankdata(neg, axis=1)  # midranks within negatives
    rank_all = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (rank_all[:, :m] - rank_pos) / n  # placement of each positive
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m  # placement of each negative
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def delong_estimate(y: np.ndarray, s: np.ndarray, alpha: float) -> tuple[Estimate, str | None]:
    """AUC with its DeLong interval on validated ``y`` (bool) and ``s``, and why it is undefined (or None)."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return (
            Estimate(math.nan, math.nan, math.nan, "DeLong"),
            f"AUC is undefined with only one class present ({n1} positive, {n0} negative).",
        )
    if n1 < 2 or n0 < 2:
        auc = rank_auc(y, s)
        return (
            Estimate(auc, math.nan, math.nan, "DeLong"),
            f"DeLong CI of the AUC needs at least 2 positives and 2 negatives "
            f"({n1} positive, {n0} negative); the interval is NaN.",
        )
    aucs, cov = _delong(y, s[np.newaxis, :])
    auc = float(aucs[0])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    half = z_value(alpha) * se
    return Estimate(auc, max(0.0, auc - half), min(1.0, auc + half), "DeLong"), None


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank sum (ties count half); NaN if one class is empty.

    ``labels`` and ``scores`` have shape ``(n,)`` and are not validated (the
    callers have).  This is the AUC the DeLong functions report.
    ``sklearn.metrics.roc_auc_score`` gives the same area by the trapezoid
    rule, but rounds differently: it differs by one unit in the last place in
    about a third of random tied samples.  The rank sum is kept so that an AUC
    equals the DeLong AUC of the same data bit for bit and the validation AUCs
    that choose a training checkpoint stay those of earlier runs;
    ``tests/test_metrics.py::test_rank_auc_agrees_with_sklearn_and_delong``
    checks both.

    Example:
        >>> rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = stats.rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_delong(labels: Any, scores: Any, *, alpha: float = 0.05) -> Estimate:
    """AUC with the DeLong (1988) confidence interval.

    The AUC is the Mann-Whitney probability P(score_pos > score_neg) + 0.5
    P(tie).  Its variance is DeLong's structural-components estimate, computed
    with the midrank algorithm of Sun & Xu (2014) in O(n log n); the interval
    is ``AUC ± z(1 - alpha/2) · SE`` clipped to [0, 1], as pROC reports it.
    ``labels``/``scores`` have shape ``(n,)``.

    One class only -> NaN everywhere; fewer than 2 cases in a class -> NaN
    interval (both with :class:`UndefinedMetricWarning`).

    >>> est = auc_delong([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> est.value, est.method
    (0.75, 'DeLong')
    """
    y, s = check_pair(labels, scores)
    est, problem = delong_estimate(y, s, check_alpha(alpha))
    if problem:
        warn_undefined(problem)
    return est


def auc_bootstrap(
    labels: Any, scores: Any, *, n_boot: int = 2000, seed: int | None = 0, alpha: float = 0.05
) -> Estimate:
    """AUC with a stratified percentile-bootstrap confidence interval.

    Positives and negatives are resampled separately (so every resample has
    both classes), ``n_boot`` times with ``numpy.random.default_rng(seed)``.
    Vectorised: each resample's AUC comes from per-score counts, O(n) each.
    ``labels``/``scores`` have shape ``(n,)``.
    """
    y, s = check_pair(labels, scores)
    a = check_alpha(alpha)
    n_boot = check_n_boot(n_boot)
    n1 = int(y.sum())
    n0 = y.size - n1
    method = "bootstrap percentile (stratified)"
    if n1 == 0 or n0 == 0:
        warn_undefined(f"AUC is undefined with only one class present ({n1} positive, {n0} negative).")
        return Estimate(math.nan, math.nan, math.nan, method)
    uniq, codes = np.unique(s, return_inverse=True)
    k = uniq.size
    pos_codes, neg_codes = codes[y], codes[~y]
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_BLOCK_CELLS // max(k, y.size))
    aucs = np.empty(n_boot)
    for start in range(0, n_boot, block):  # loops over blocks, not resamples
        b = min(block, n_boot - start)
        offsets = (np.arange(b) * k)[:, np.newaxis]
        pos_draw = pos_codes[rng.integers(0, n1, size=(b, n1))] + offsets
        neg_draw = neg_codes[rng.integers(0, n0, size=(b, n0))] + offsets
        pos_count = np.bincount(pos_draw.ravel(), minlength=b * k).reshape(b, k)
        neg_count = np.bincount(neg_draw.ravel(), minlength=b * k).reshape(b, k)
        neg_below = np.cumsum(neg_count, axis=1) - neg_count
        wins = (pos_count * (neg_below + 0.5 * neg_count)).sum(axis=1)
        aucs[start : start + b] = wins / (n1 * n0)
    lo, hi = percentile_ci(aucs, a)
    return Estimate(rank_auc(y, s), lo, hi, method)


def delong_test(labels: Any, scores_a: Any, scores_b: Any, *, alpha: float = 0.05) -> dict[str, Any]:
    """Paired DeLong test of two AUCs measured on the same cases.

    Returns ``{"auc_a", "auc_b", "auc_difference", "ci_low", "ci_high", "z",
    "p_value", "method"}`` with ``auc_difference = auc_a - auc_b``, its
    ``1 - alpha`` Wald interval, the z statistic and the two-sided p-value.
    Identical score columns give difference 0, z 0 and p 1.  A zero variance
    with a non-zero difference, or one class only, gives NaN CI, z and p with
    :class:`UndefinedMetricWarning`.  All inputs have shape ``(n,)``.
    """
    y, sa = check_pair(labels, scores_a, "scores_a")
    _, sb = check_pair(labels, scores_b, "scores_b")
    a = check_alpha(alpha)
    n1 = int(y.sum())
    n0 = y.size - n1
    nan = math.nan
    out: dict[str, Any] = {
        "auc_a": nan,
        "auc_b": nan,
        "auc_difference": nan,
        "ci_low": nan,
        "ci_high": nan,
        "z": nan,
        "p_value": nan,
        "method": "DeLong paired",
    }
    if n1 == 0 or n0 == 0:
        warn_undefined(f"AUCs are undefined with only one class present ({n1} positive, {n0} negative).")
        return out
    if n1 < 2 or n0 < 2:
        out["auc_a"], out["auc_b"] = rank_auc(y, sa), rank_auc(y, sb)
        out["auc_difference"] = out["auc_a"] - out["auc_b"]
        warn_undefined(
            f"The DeLong test needs at least 2 positives and 2 negatives "
            f"({n1} positive, {n0} negative); z and p are NaN."
        )
        return out
    aucs, cov = _delong(y, np.vstack([sa, sb]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    out.update(auc_a=float(aucs[0]), auc_b=float(aucs[1]), auc_difference=diff)
    scale = max(abs(float(cov[0, 0])), abs(float(cov[1, 1])), 1e-300)
    if var <= 1e-12 * scale:
        if abs(diff) <= 1e-12:
            out.update(ci_low=0.0, ci_high=0.0, z=0.0, p_value=1.0)
        else:
            warn_undefined(
                "The variance of the AUC difference is zero although the AUCs "
                "differ; the DeLong test is undefined (CI, z and p are NaN)."
            )
        return out
    se = math.sqrt(var)
    z = diff / se
    half = z_value(a) * se
    out.update(
        ci_low=diff - half,
        ci_high=diff + half,
        z=z,
        p_value=float(2.0 * stats.norm.sf(abs(z))),
    )
    return out
