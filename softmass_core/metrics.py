"""Diagnostic-accuracy statistics as journals report them, with confidence intervals.

Conventions (after ``sklearn.metrics``): data are positional, options are
keyword-only, and ``*_curve`` functions return arrays while the others return
numbers, :class:`Estimate` objects or plain dicts.

* ``labels`` are 0/1 integers or booleans, 1 (True) meaning *positive*
  (e.g. malignant).  Shape ``(n,)``.
* ``scores`` are finite floats of any range, larger meaning "more positive".
  A case is called positive when ``score >= threshold``.  Shape ``(n,)``.
* A metric that is undefined for the data at hand (one class only, no
  predicted positives, ...) returns NaN and emits :class:`UndefinedMetricWarning`;
  it never raises.  Malformed input (wrong shape, labels other than 0/1,
  NaN scores) raises :class:`~softmass_core.errors.MetricsError` with a
  message that quotes the bad value.

Intervals follow the usual reporting conventions (MedCalc's diagnostic test
module): Clopper-Pearson for sensitivity, specificity and accuracy; the
Mercaldo et al. (2007) standard logit interval for PPV and NPV; DeLong for the
AUC; a percentile bootstrap for F1.  Fractions are in [0, 1], never percent.

Only numpy, scipy and (for the two table helpers) pandas are used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from softmass_core.errors import MetricsError
from softmass_core.labels import COHORT_LABELS, display_name

__all__ = [
    "Estimate",
    "UndefinedMetricWarning",
    "anova_oneway",
    "auc_bootstrap",
    "auc_delong",
    "baseline_table",
    "binary_metrics",
    "calibration_curve",
    "chi_square_test",
    "clopper_pearson_ci",
    "confusion_counts",
    "delong_test",
    "empty_metrics",
    "f1_bootstrap",
    "logit_ci",
    "mcnemar_test",
    "roc_curve",
    "threshold_sweep",
]

#: McNemar's test switches from the exact binomial test to chi-square here.
MCNEMAR_EXACT_BELOW = 25

# Bootstrap work is done in blocks of at most this many matrix cells, so that
# memory stays bounded (about 64 MB of float64) whatever n and n_boot are.
_BOOT_BLOCK_CELLS = 8_000_000


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for these data (e.g. one class only) and is NaN."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval.

    ``value``, ``ci_low`` and ``ci_high`` are floats (NaN when undefined);
    ``method`` names how the interval was computed (e.g. ``"DeLong"``).
    """

    value: float
    ci_low: float
    ci_high: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict ``{"value", "ci_low", "ci_high", "method"}``; NaN -> None."""
        return {
            "value": _json_float(self.value),
            "ci_low": _json_float(self.ci_low),
            "ci_high": _json_float(self.ci_high),
            "method": self.method,
        }


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _json_float(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every float NaN (in nested dicts, lists and tuples) replaced by None, for standard JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_none(v) for v in obj]
    return obj


def _show(value: Any) -> str:
    """repr() of a user's value, without numpy's ``np.float64(...)`` wrapper."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _is_number(value: Any) -> bool:
    if value is None:
        return True  # reported as a missing (NaN) score below
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _warn(message: str) -> None:
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)


def _as_1d(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as err:  # ragged nested lists and similar
        raise MetricsError(f"{name} could not be read as an array: {err}") from err
    if arr.ndim != 1:
        raise MetricsError(f"{name} must be a 1-D sequence with one value per case; got an array of shape {arr.shape}.")
    return arr


def _as_binary(values: Any, name: str = "labels") -> np.ndarray:
    """Validate 0/1 or bool values; return a bool array of shape (n,)."""
    arr = _as_1d(values, name)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):
            bad = next((i, v) for i, v in enumerate(arr.tolist()) if not isinstance(v, (bool, int, float, np.number)))
            raise MetricsError(
                f"{name} must be 0/1 or True/False (1 = positive); found {_show(bad[1])} at index {bad[0]}."
            ) from None
    if arr.dtype.kind not in "iuf":
        example = arr[0] if arr.size else None
        raise MetricsError(
            f"{name} must be 0/1 or True/False (1 = positive); got values of type "
            f"{arr.dtype} such as {_show(example)}. Convert them first, e.g. "
            f"(labels == 'malignant')."
        )
    if arr.dtype.kind == "f":
        nan_at = np.flatnonzero(np.isnan(arr))
        if nan_at.size:
            raise MetricsError(
                f"{name} contain NaN at index {int(nan_at[0])} "
                f"({nan_at.size} missing in all); drop cases without a "
                f"reference value first."
            )
    bad_at = np.flatnonzero((arr != 0) & (arr != 1))
    if bad_at.size:
        i = int(bad_at[0])
        raise MetricsError(f"{name} must be 0/1 or True/False (1 = positive); found {_show(arr[i])} at index {i}.")
    return arr.astype(bool)


def _as_scores(values: Any, name: str = "scores") -> np.ndarray:
    """Validate finite numeric scores; return float64 of shape (n,)."""
    arr = _as_1d(values, name)
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind in "US" and not isinstance(values, np.ndarray):
            arr = np.asarray(values, dtype=object)  # undo numpy's mixed-list coercion to str
        values_list = arr.tolist()
        bad = next(
            ((i, v) for i, v in enumerate(values_list) if isinstance(v, (str, bytes)) or not _is_number(v)),
            None,
        )
        if bad is not None:
            raise MetricsError(f"{name} must be numbers; found {_show(bad[1])} at index {bad[0]}.")
        arr = np.array([math.nan if v is None else float(v) for v in values_list], dtype=np.float64)
    arr = arr.astype(np.float64, copy=False)
    bad_at = np.flatnonzero(~np.isfinite(arr))
    if bad_at.size:
        i = int(bad_at[0])
        raise MetricsError(
            f"{name} must be finite numbers; found {_show(arr[i])} at index {i} "
            f"({bad_at.size} non-finite in all). Remove or re-score these "
            f"cases before computing metrics."
        )
    return arr


def _check_pair(
    labels: Any, other: Any, other_name: str = "scores", *, binary_other: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    y = _as_binary(labels, "labels")
    x = _as_binary(other, other_name) if binary_other else _as_scores(other, other_name)
    if y.shape[0] != x.shape[0]:
        raise MetricsError(
            f"labels and {other_name} must have the same length; got {y.shape[0]} labels and {x.shape[0]} {other_name}."
        )
    if y.shape[0] == 0:
        raise MetricsError("No cases: labels and scores are empty.")
    return y, x


def _check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise MetricsError(f"alpha must be a number in (0, 1); got {_show(alpha)}.") from None
    if not 0.0 < a < 1.0:
        raise MetricsError(f"alpha must be in (0, 1), e.g. 0.05 for 95% CIs; got {_show(alpha)}.")
    return a


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise MetricsError(f"threshold must be a number; got {_show(threshold)}.") from None
    if not math.isfinite(t):
        raise MetricsError(f"threshold must be finite; got {_show(threshold)}.")
    return t


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise MetricsError(f"n_boot must be a positive integer, e.g. 2000; got {_show(n_boot)}.")
    return int(n_boot)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise MetricsError(f"{name} must be a whole number; got {_show(value)}.")
    whole = isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    )
    if not whole:
        raise MetricsError(f"{name} must be a whole number; got {_show(value)}.")
    out = int(value)
    if out < 0:
        raise MetricsError(f"{name} must be >= 0; got {_show(value)}.")
    return out


def _check_k_n(k: Any, n: Any) -> tuple[int, int]:
    k_i, n_i = _check_count(k, "k"), _check_count(n, "n")
    if k_i > n_i:
        raise MetricsError(f"k must not exceed n; got k={k_i}, n={n_i}.")
    return k_i, n_i


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


def _percentile_ci(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------
# ROC and AUC
# ---------------------------------------------------------------------------


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve.

    Returns ``(fpr, tpr, thresholds)``, three float arrays of shape ``(k + 1,)``
    where k is the number of distinct scores.  ``thresholds`` decrease from
    ``+inf`` (nothing positive: the point (0, 0)) to the smallest score
    (everything positive: the point (1, 1)); tied scores move the curve in one
    diagonal step.  ``fpr``/``tpr`` are NaN (with a warning) when there are no
    negatives/positives.

    >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    y, s = _check_pair(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[ends].astype(float)
    fps = (ends + 1) - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    n1, n0 = tps[-1], fps[-1]
    if n1 == 0:
        _warn("No positive cases: the true positive rate is undefined (NaN).")
        tpr = np.full_like(tps, np.nan)
    else:
        tpr = tps / n1
    if n0 == 0:
        _warn("No negative cases: the false positive rate is undefined (NaN).")
        fpr = np.full_like(fps, np.nan)
    else:
        fpr = fps / n0
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


def _auc_only(y: np.ndarray, s: np.ndarray) -> float:
    m = int(y.sum())
    n = y.size - m
    ranks = stats.rankdata(s)
    return float((ranks[y].sum() - m * (m + 1) / 2.0) / (m * n))


def _auc_delong(y: np.ndarray, s: np.ndarray, alpha: float) -> tuple[Estimate, str | None]:
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return (
            Estimate(math.nan, math.nan, math.nan, "DeLong"),
            f"AUC is undefined with only one class present ({n1} positive, {n0} negative).",
        )
    if n1 < 2 or n0 < 2:
        auc = _auc_only(y, s)
        return (
            Estimate(auc, math.nan, math.nan, "DeLong"),
            f"DeLong CI of the AUC needs at least 2 positives and 2 negatives "
            f"({n1} positive, {n0} negative); the interval is NaN.",
        )
    aucs, cov = _delong(y, s[np.newaxis, :])
    auc = float(aucs[0])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    half = _z(alpha) * se
    return Estimate(auc, max(0.0, auc - half), min(1.0, auc + half), "DeLong"), None


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney rank sum (ties count half); NaN if one class is empty.

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
    y, s = _check_pair(labels, scores)
    est, problem = _auc_delong(y, s, _check_alpha(alpha))
    if problem:
        _warn(problem)
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
    y, s = _check_pair(labels, scores)
    a = _check_alpha(alpha)
    n_boot = _check_n_boot(n_boot)
    n1 = int(y.sum())
    n0 = y.size - n1
    method = "bootstrap percentile (stratified)"
    if n1 == 0 or n0 == 0:
        _warn(f"AUC is undefined with only one class present ({n1} positive, {n0} negative).")
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
    lo, hi = _percentile_ci(aucs, a)
    return Estimate(_auc_only(y, s), lo, hi, method)


def delong_test(labels: Any, scores_a: Any, scores_b: Any, *, alpha: float = 0.05) -> dict[str, Any]:
    """Paired DeLong test of two AUCs measured on the same cases.

    Returns ``{"auc_a", "auc_b", "auc_difference", "ci_low", "ci_high", "z",
    "p_value", "method"}`` with ``auc_difference = auc_a - auc_b``, its
    ``1 - alpha`` Wald interval, the z statistic and the two-sided p-value.
    Identical score columns give difference 0, z 0 and p 1.  A zero variance
    with a non-zero difference, or one class only, gives NaN CI, z and p with
    :class:`UndefinedMetricWarning`.  All inputs have shape ``(n,)``.
    """
    y, sa = _check_pair(labels, scores_a, "scores_a")
    _, sb = _check_pair(labels, scores_b, "scores_b")
    a = _check_alpha(alpha)
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
        _warn(f"AUCs are undefined with only one class present ({n1} positive, {n0} negative).")
        return out
    if n1 < 2 or n0 < 2:
        out["auc_a"], out["auc_b"] = _auc_only(y, sa), _auc_only(y, sb)
        out["auc_difference"] = out["auc_a"] - out["auc_b"]
        _warn(
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
            _warn(
                "The variance of the AUC difference is zero although the AUCs "
                "differ; the DeLong test is undefined (CI, z and p are NaN)."
            )
        return out
    se = math.sqrt(var)
    z = diff / se
    half = _z(a) * se
    out.update(
        ci_low=diff - half,
        ci_high=diff + half,
        z=z,
        p_value=float(2.0 * stats.norm.sf(abs(z))),
    )
    return out


# ---------------------------------------------------------------------------
# Counts and binomial intervals
# ---------------------------------------------------------------------------


def _counts(y: np.ndarray, predicted: np.ndarray) -> dict[str, int]:
    tp = int(np.count_nonzero(y & predicted))
    fp = int(np.count_nonzero(~y & predicted))
    fn = int(np.count_nonzero(y & ~predicted))
    tn = int(y.size - tp - fp - fn)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def confusion_counts(labels: Any, scores: Any, *, threshold: float = 0.5) -> dict[str, int]:
    """``{"tp", "fp", "fn", "tn"}`` calling a case positive when ``score >= threshold``.

    >>> confusion_counts([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    {'tp': 2, 'fp': 1, 'fn': 0, 'tn': 1}
    """
    y, s = _check_pair(labels, scores)
    return _counts(y, s >= _check_threshold(threshold))


def clopper_pearson_ci(k: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) binomial interval for the proportion k/n.

    ``lower = Beta(alpha/2; k, n - k + 1)`` (0 when k = 0) and
    ``upper = Beta(1 - alpha/2; k + 1, n - k)`` (1 when k = n).
    Returns ``(nan, nan)`` when ``n == 0``.

    >>> [round(x, 4) for x in clopper_pearson_ci(0, 10)]
    [0.0, 0.3085]
    """
    k, n = _check_k_n(k, n)
    a = _check_alpha(alpha)
    if n == 0:
        return math.nan, math.nan
    lower = 0.0 if k == 0 else float(stats.beta.ppf(a / 2.0, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1.0 - a / 2.0, k + 1, n - k))
    return lower, upper


def logit_ci(
    k: int,
    n: int,
    *,
    alpha: float = 0.05,
    n_positive: int | None = None,
    n_negative: int | None = None,
) -> tuple[float, float]:
    """Logit (Wald-on-the-log-odds) interval for k/n, as used for PPV and NPV.

    With ``p = k / n`` and ``z = z(1 - alpha/2)`` the interval is::

        expit( logit(p) ± z · sqrt(V) )

    * Plain proportion (default): ``V = 1/k + 1/(n - k)``.
    * Predictive value, passing ``n_positive`` (cases with the condition,
      TP + FN) and ``n_negative`` (cases without, FP + TN): the *standard
      logit* interval of Mercaldo, Lau & Zhou (Stat Med 2007;26:2170), with
      the prevalence taken from the sample, which is what MedCalc reports::

          V = 1/k + 1/(n - k) - 1/n_positive - 1/n_negative

      For PPV pass ``k = TP, n = TP + FP``; for NPV ``k = TN, n = TN + FN``.
      This equals Mercaldo's ``(1-Se)/(n1·Se) + Sp/(n0·(1-Sp))`` for PPV and
      ``Se/(n1·(1-Se)) + (1-Sp)/(n0·Sp)`` for NPV.

    At exactly 0% or 100% (k = 0 or k = n) the logit is infinite and the
    Clopper-Pearson interval is returned instead, as MedCalc does.
    Returns ``(nan, nan)`` when ``n == 0``.

    >>> [round(x, 3) for x in logit_ci(2, 3, n_positive=5, n_negative=151)]
    [0.177, 0.949]
    """
    k, n = _check_k_n(k, n)
    a = _check_alpha(alpha)
    if (n_positive is None) != (n_negative is None):
        raise MetricsError(
            "Pass both n_positive and n_negative (for Mercaldo's predictive-value "
            f"interval) or neither; got n_positive={_show(n_positive)}, n_negative={_show(n_negative)}."
        )
    if n == 0:
        return math.nan, math.nan
    if k == 0 or k == n:
        return clopper_pearson_ci(k, n, alpha=a)
    var = 1.0 / k + 1.0 / (n - k)
    if n_positive is not None and n_negative is not None:
        n_pos = _check_count(n_positive, "n_positive")
        n_neg = _check_count(n_negative, "n_negative")
        if n_pos == 0 or n_neg == 0:
            raise MetricsError(f"n_positive and n_negative must both be > 0; got {n_pos} and {n_neg}.")
        var -= 1.0 / n_pos + 1.0 / n_neg
        if var < -1e-12:
            raise MetricsError(
                f"n_positive={n_pos} and n_negative={n_neg} are inconsistent with "
                f"k={k}, n={n}: for PPV pass k=TP, n=TP+FP; for NPV k=TN, n=TN+FN, "
                f"with n_positive=TP+FN and n_negative=FP+TN."
            )
        var = max(var, 0.0)
    centre = math.log(k / (n - k))
    half = _z(a) * math.sqrt(var)
    return float(special.expit(centre - half)), float(special.expit(centre + half))


def _f1(tp: Any, fp: Any, fn: Any) -> Any:
    return 2.0 * tp / (2.0 * tp + fp + fn)


def _f1_bootstrap(
    y: np.ndarray, predicted: np.ndarray, n_boot: int, seed: int | None, alpha: float
) -> tuple[Estimate, str | None]:
    method = "bootstrap percentile"
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0:
        return (
            Estimate(math.nan, math.nan, math.nan, method),
            "F1 is undefined without positive cases (sensitivity is undefined).",
        )
    c = _counts(y, predicted)
    value = float(_f1(c["tp"], c["fp"], c["fn"]))
    # Stratified resampling with replacement: the number of predicted
    # positives among n1 resampled positives is exactly Binomial(n1, TP/n1),
    # and among n0 resampled negatives Binomial(n0, FP/n0), independently.
    # Drawing those counts is the same bootstrap, in O(n_boot) time.
    rng = np.random.default_rng(seed)
    tp_b = rng.binomial(n1, c["tp"] / n1, size=n_boot)
    fp_b = rng.binomial(n0, c["fp"] / n0, size=n_boot) if n0 else np.zeros(n_boot, int)
    f1_b = _f1(tp_b, fp_b, n1 - tp_b)  # denominator >= n1 > 0
    lo, hi = _percentile_ci(f1_b, alpha)
    return Estimate(value, lo, hi, method), None


def f1_bootstrap(
    labels: Any,
    predictions: Any,
    *,
    n_boot: int = 2000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> Estimate:
    """F1 score, ``2TP / (2TP + FP + FN)``, with a percentile-bootstrap CI.

    ``labels`` and ``predictions`` are 0/1 or bool arrays of shape ``(n,)``.
    The bootstrap is stratified by true class (positives and negatives are
    resampled separately, ``n_boot`` times, seeded with
    ``numpy.random.default_rng(seed)``) and fully vectorised.  No positive
    cases -> NaN with :class:`UndefinedMetricWarning`.
    """
    y, p = _check_pair(labels, predictions, "predictions", binary_other=True)
    est, problem = _f1_bootstrap(y, p, _check_n_boot(n_boot), seed, _check_alpha(alpha))
    if problem:
        _warn(problem)
    return est


def _proportion(k: int, n: int, alpha: float) -> Estimate:
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, "Clopper-Pearson")
    lo, hi = clopper_pearson_ci(k, n, alpha=alpha)
    return Estimate(k / n, lo, hi, "Clopper-Pearson")


def _predictive_value(k: int, n: int, n1: int, n0: int, alpha: float) -> Estimate:
    if n == 0 or k == 0 or k == n:
        return _proportion(k, n, alpha)  # Mercaldo's logit is infinite here
    lo, hi = logit_ci(k, n, alpha=alpha, n_positive=n1, n_negative=n0)
    if hi - lo < 1e-12:
        # Mercaldo's variance vanishes when sensitivity or specificity is 0 or 1 (e.g. nothing called
        # positive): the interval would collapse to a point.  Use the plain logit interval of k/n instead.
        lo, hi = logit_ci(k, n, alpha=alpha)
        return Estimate(k / n, lo, hi, "logit (plain; Mercaldo degenerate)")
    return Estimate(k / n, lo, hi, "logit (Mercaldo)")


def binary_metrics(
    labels: Any,
    scores: Any,
    *,
    threshold: float = 0.5,
    n_boot: int = 2000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Every headline metric of a binary test with its confidence interval.

    ``labels`` (0/1 or bool, 1 = positive) and ``scores`` (floats, any range)
    have shape ``(n,)``; a case is called positive when ``score >= threshold``.
    Returns this JSON-safe structure (fractions in [0, 1]; None for NaN)::

        {"n": int, "n_positive": int, "threshold": float,
         "counts": {"tp", "fp", "fn", "tn"},
         "metrics": {name: {"value", "ci_low", "ci_high", "method"}},
         "undefined": {name: reason}}

    for ``name`` in auc (DeLong), accuracy, sensitivity, specificity
    (Clopper-Pearson), ppv, npv (Mercaldo logit; Clopper-Pearson at 0% or
    100%) and f1 (stratified percentile bootstrap).  Undefined metrics (e.g.
    the AUC when only one class is present) are None, ``undefined`` says
    why for each (empty when every metric is defined), and one
    :class:`UndefinedMetricWarning` names them all.

    >>> out = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7], threshold=0.5)
    >>> out["metrics"]["sensitivity"]["value"], out["undefined"]["specificity"]
    (0.6666666666666666, 'no negative cases')
    """
    y, s = _check_pair(labels, scores)
    t = _check_threshold(threshold)
    a = _check_alpha(alpha)
    n_boot = _check_n_boot(n_boot)
    predicted = s >= t
    c = _counts(y, predicted)
    n = int(y.size)
    n1 = c["tp"] + c["fn"]
    n0 = c["fp"] + c["tn"]
    problems: list[str] = []

    undefined: dict[str, str] = {}
    auc, problem = _auc_delong(y, s, a)
    if problem:
        problems.append(problem)
        if math.isnan(auc.value):
            undefined["auc"] = f"only one class present ({n1} positive, {n0} negative)"
    f1, problem = _f1_bootstrap(y, predicted, n_boot, seed, a)
    if problem:
        problems.append(problem)
        if math.isnan(f1.value):
            undefined["f1"] = "no positive cases"
    metrics = {
        "auc": auc,
        "accuracy": _proportion(c["tp"] + c["tn"], n, a),
        "sensitivity": _proportion(c["tp"], n1, a),
        "specificity": _proportion(c["tn"], n0, a),
        "ppv": _predictive_value(c["tp"], c["tp"] + c["fp"], n1, n0, a),
        "npv": _predictive_value(c["tn"], c["tn"] + c["fn"], n1, n0, a),
        "f1": f1,
    }
    reasons = {
        "sensitivity": "no positive cases",
        "specificity": "no negative cases",
        "ppv": f"no case scored >= {t:g}",
        "npv": f"every case scored >= {t:g}",
    }
    for name, why in reasons.items():
        if math.isnan(metrics[name].value):
            problems.append(f"{name} is undefined ({why}).")
            undefined[name] = why
    if problems:
        _warn("Some metrics are undefined and reported as None: " + " ".join(problems))
    return {
        "n": n,
        "n_positive": n1,
        "threshold": t,
        "counts": c,
        "metrics": {name: est.to_dict() for name, est in metrics.items()},
        "undefined": {name: undefined[name] for name in metrics if name in undefined},
    }


#: Interval method of each metric of :func:`binary_metrics`, for results that could not be computed.
METRIC_METHODS: dict[str, str] = {
    "auc": "DeLong",
    "accuracy": "Clopper-Pearson",
    "sensitivity": "Clopper-Pearson",
    "specificity": "Clopper-Pearson",
    "ppv": "logit (Mercaldo)",
    "npv": "logit (Mercaldo)",
    "f1": "bootstrap percentile",
}


def empty_metrics(*, threshold: float, reason: str) -> dict[str, Any]:
    """The :func:`binary_metrics` structure for zero cases: every metric None, ``reason`` for each.

    For a task with no case at all (e.g. no benign case of known subtype in a
    cohort), where :func:`binary_metrics` would refuse the empty input.

    >>> empty_metrics(threshold=0.5, reason="no case")["metrics"]["auc"]["value"] is None
    True
    """
    return {
        "n": 0,
        "n_positive": 0,
        "threshold": _check_threshold(threshold),
        "counts": {"tp": 0, "fp": 0, "fn": 0, "tn": 0},
        "metrics": {
            name: {"value": None, "ci_low": None, "ci_high": None, "method": method}
            for name, method in METRIC_METHODS.items()
        },
        "undefined": dict.fromkeys(METRIC_METHODS, reason),
    }


# ---------------------------------------------------------------------------
# Hypothesis tests for reader studies and baseline tables
# ---------------------------------------------------------------------------


def mcnemar_test(before_correct: Any, after_correct: Any, *, exact: bool | None = None) -> dict[str, Any]:
    """McNemar's test for paired accuracy (e.g. a reader without, then with, the DLM).

    ``before_correct`` and ``after_correct`` are 0/1 or bool arrays of shape
    ``(n,)``, one entry per case.  ``b`` counts cases correct before and wrong
    after, ``c`` cases wrong before and correct after.

    By default (``exact=None``) the exact two-sided binomial test is used when
    ``b + c < 25`` (``statistic = min(b, c)``, ``p = min(1, 2 P[X <= min(b, c)])``
    with X ~ Binomial(b + c, 1/2)), otherwise the chi-square test with
    continuity correction, ``statistic = (|b - c| - 1)^2 / (b + c)`` on 1 df.
    ``exact=True``/``False`` forces one or the other.  Returns ``{"n", "b",
    "c", "statistic", "p_value", "method"}``.
    """
    before = _as_binary(before_correct, "before_correct")
    after = _as_binary(after_correct, "after_correct")
    if before.shape[0] != after.shape[0]:
        raise MetricsError(
            "before_correct and after_correct must describe the same cases; "
            f"got {before.shape[0]} and {after.shape[0]} entries."
        )
    if before.shape[0] == 0:
        raise MetricsError("No cases: before_correct and after_correct are empty.")
    b = int(np.count_nonzero(before & ~after))
    c = int(np.count_nonzero(~before & after))
    use_exact = (b + c) < MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    out: dict[str, Any] = {"n": int(before.shape[0]), "b": b, "c": c}
    if use_exact:
        k = min(b, c)
        p = 1.0 if b + c == 0 else min(1.0, 2.0 * float(stats.binom.cdf(k, b + c, 0.5)))
        out.update(statistic=float(k), p_value=p, method="exact binomial")
        return out
    method = "chi-square with continuity correction"
    if b + c == 0:
        _warn("No discordant pairs (b = c = 0): the chi-square statistic is undefined.")
        out.update(statistic=math.nan, p_value=math.nan, method=method)
        return out
    stat = (abs(b - c) - 1.0) ** 2 / (b + c)
    out.update(statistic=stat, p_value=float(stats.chi2.sf(stat, 1)), method=method)
    return out


def chi_square_test(table: Any, *, correction: bool = True) -> dict[str, Any]:
    """Pearson's chi-square test of independence for an r x c contingency table.

    ``table`` holds non-negative counts, shape ``(r, c)`` (e.g. sex by cohort).
    Rows and columns that are all zero are dropped first.  As in
    ``scipy.stats.chi2_contingency`` (which the paper used), Yates' continuity
    correction is applied only to 2 x 2 tables unless ``correction=False``.
    Returns ``{"statistic", "dof", "p_value"}``; NaN (with a warning) when
    fewer than 2 non-empty rows or columns remain.
    """
    try:
        t = np.asarray(table, dtype=float)
    except (TypeError, ValueError) as err:
        raise MetricsError(f"table must hold numeric counts: {err}") from None
    if t.ndim != 2:
        raise MetricsError(f"table must be 2-D (rows x columns); got shape {t.shape}.")
    bad = np.argwhere(~np.isfinite(t) | (t < 0))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise MetricsError(f"table must hold finite counts >= 0; found {_show(t[i, j])} at row {i}, column {j}.")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        _warn(
            f"The chi-square test needs at least 2 non-empty rows and columns; "
            f"the table has {t.shape[0]} x {t.shape[1]} after dropping empty ones."
        )
        return {"statistic": math.nan, "dof": 0, "p_value": math.nan}
    res = stats.chi2_contingency(t, correction=correction)
    return {"statistic": float(res.statistic), "dof": int(res.dof), "p_value": float(res.pvalue)}


def anova_oneway(*groups: Sequence[float]) -> dict[str, float]:
    """One-way ANOVA F test that every group has the same mean (e.g. age by cohort).

    Each group is a 1-D sequence of finite numbers.  Returns
    ``{"statistic", "p_value"}``; NaN (with a warning) when the F statistic
    is undefined (every value equal, or no within-group degrees of freedom).
    """
    if len(groups) < 2:
        raise MetricsError(f"anova_oneway needs at least 2 groups; got {len(groups)}.")
    arrays = []
    for i, g in enumerate(groups):
        arr = _as_scores(g, f"group {i}")
        if arr.size == 0:
            raise MetricsError(f"group {i} is empty; drop it before the ANOVA.")
        arrays.append(arr)
    total = sum(arr.size for arr in arrays)
    if total <= len(arrays):
        _warn("ANOVA needs more values than groups; F is undefined.")
        return {"statistic": math.nan, "p_value": math.nan}
    values = np.concatenate(arrays)
    if np.all(values == values[0]):
        _warn("All values are equal; the ANOVA F statistic is undefined.")
        return {"statistic": math.nan, "p_value": math.nan}
    res = stats.f_oneway(*arrays)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


def _format_p(p: float, test: str) -> str:
    if math.isnan(p):
        return f"n/a ({test})"
    return f"{'<0.001' if p < 0.001 else f'{p:.3f}'} ({test})"


_SEX_CODES = {"m": True, "male": True, "man": True, "f": False, "female": False, "woman": False}


def _sex_is_male(values: pd.Series, column: str) -> pd.Series:
    """True for male, False for female, None where unknown; raises on other codes."""
    out = []
    for v in values.tolist():
        key = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        key = key.strip().lower()
        if key in ("", "nan", "<na>", "none"):
            out.append(None)
        elif key in _SEX_CODES:
            out.append(_SEX_CODES[key])
        else:
            raise MetricsError(
                f"Column {column!r} must hold 'male'/'female' (or 'M'/'F'); found {_show(v)}. Leave unknown sex empty."
            )
    return pd.Series(out, index=values.index, dtype="object")


def baseline_table(
    df: pd.DataFrame,
    *,
    group_col: str = "cohort",
    age_col: str = "age",
    sex_col: str = "sex",
    label_col: str = "label",
    label_title: str = "Class",
) -> pd.DataFrame:
    """Patient and tumour baseline characteristics, shaped like the paper's Table 1.

    One column per cohort (in order of first appearance) plus ``"p"``, which
    names the test.  Rows (strings, ready to print):

    * ``n``: cases per cohort;
    * ``Age (years), mean ± SD``: one-way ANOVA across cohorts;
    * ``Male, n (%)``: percent of cases with known sex; chi-square test;
    * ``"<label_title>, n"`` (e.g. ``Class, n``): the cases with a label in
      each cohort and the chi-square p-value of label by cohort, then one
      ``"<label>, n (%)"`` row per label present (percent of the cohort).

    Missing columns, or columns that are entirely empty, skip their rows;
    individual missing ages or sexes are left out of that row only.
    """
    if not isinstance(df, pd.DataFrame):
        raise MetricsError(f"baseline_table needs a pandas DataFrame; got {type(df).__name__}.")
    if group_col not in df.columns:
        raise MetricsError(f"Column {group_col!r} not found; available columns: {list(df.columns)}.")
    if len(df) == 0:
        raise MetricsError("baseline_table got an empty table.")
    if df[group_col].isna().any():
        raise MetricsError(
            f"Column {group_col!r} has {int(df[group_col].isna().sum())} empty cells; every case needs a cohort."
        )
    groups = [str(g) for g in pd.unique(df[group_col].astype(str))]
    group = df[group_col].astype(str)
    rows: dict[str, list[str]] = {}

    rows["n"] = [str(int((group == g).sum())) for g in groups] + [""]

    if age_col in df.columns and df[age_col].notna().any():
        age = pd.to_numeric(df[age_col], errors="coerce")
        bad = df[age_col].notna() & age.isna()
        if bad.any():
            raise MetricsError(f"Column {age_col!r} must hold numbers; found {_show(df[age_col][bad].iloc[0])}.")
        cells, samples = [], []
        for g in groups:
            a = age[(group == g) & age.notna()].to_numpy(float)
            if a.size:
                sd = f"{np.std(a, ddof=1):.1f}" if a.size > 1 else "n/a"
                cells.append(f"{a.mean():.1f} ± {sd}")
                samples.append(a)
            else:
                cells.append("n/a")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = anova_oneway(*samples)["p_value"] if len(samples) >= 2 else math.nan
        rows["Age (years), mean ± SD"] = cells + [_format_p(p, "ANOVA")]

    if sex_col in df.columns and df[sex_col].notna().any():
        male = _sex_is_male(df[sex_col], sex_col)
        cells, table = [], []
        for g in groups:
            known = [v for v in male[group == g].tolist() if v is not None]
            k, n = sum(known), len(known)
            cells.append(f"{k} ({100.0 * k / n:.1f}%)" if n else "n/a")
            table.append([k, n - k])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = chi_square_test(np.array(table).T)["p_value"]
        rows["Male, n (%)"] = cells + [_format_p(p, "chi-square")]

    if label_col in df.columns and df[label_col].notna().any():
        label = df[label_col].astype("string")
        present = [str(v) for v in pd.unique(label.dropna())]
        ordered = [x for x in COHORT_LABELS if x in present]
        ordered += sorted(x for x in present if x not in COHORT_LABELS)
        counts = np.array([[int(((group == g) & (label == x)).sum()) for g in groups] for x in ordered])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            p = chi_square_test(counts)["p_value"]
        sizes = [int((group == g).sum()) for g in groups]
        labelled = [str(int(k)) for k in counts.sum(axis=0)]
        rows[f"{label_title}, n"] = labelled + [_format_p(p, "chi-square")]
        for x, row in zip(ordered, counts, strict=True):
            rows[f"{display_name(x)}, n (%)"] = [
                f"{k} ({100.0 * k / n:.1f}%)" for k, n in zip(row, sizes, strict=True)
            ] + [""]

    out = pd.DataFrame.from_dict(rows, orient="index", columns=[*groups, "p"])
    out.index.name = "Characteristic"
    return out


# ---------------------------------------------------------------------------
# Curves and sweeps for the dashboard
# ---------------------------------------------------------------------------


def calibration_curve(labels: Any, scores: Any, *, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability diagram data with equal-width bins on [0, 1].

    ``scores`` must be probabilities in [0, 1]; bin i covers
    ``[i/n_bins, (i+1)/n_bins)`` and the last bin includes 1.0.  Returns
    ``{"mean_predicted", "fraction_positive", "count"}``, arrays of shape
    ``(k,)`` for the k non-empty bins in increasing order.
    """
    y, s = _check_pair(labels, scores)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise MetricsError(f"n_bins must be a positive integer; got {_show(n_bins)}.")
    outside = np.flatnonzero((s < 0.0) | (s > 1.0))
    if outside.size:
        i = int(outside[0])
        raise MetricsError(f"calibration_curve needs probabilities in [0, 1]; found {_show(s[i])} at index {i}.")
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
    y, s = _check_pair(labels, scores)
    t = _as_scores(np.atleast_1d(np.asarray(thresholds)), "thresholds")
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
