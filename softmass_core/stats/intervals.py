"""Confidence intervals of proportions: Clopper-Pearson, the Mercaldo logit interval of PPV/NPV, bootstrap F1.

Fractions are in [0, 1]; ``alpha`` 0.05 gives 95% intervals.  DeLong's
interval of the AUC is in :mod:`softmass_core.stats.roc`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special, stats

from softmass_core.errors import MetricsError
from softmass_core.stats.counts import outcome_counts
from softmass_core.stats.estimate import Estimate
from softmass_core.stats.validation import (
    check_alpha,
    check_count,
    check_k_n,
    check_n_boot,
    check_pair,
    percentile_ci,
    show,
    warn_undefined,
    z_value,
)


def clopper_pearson_ci(k: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) binomial interval for the proportion k/n.

    ``lower = Beta(alpha/2; k, n - k + 1)`` (0 when k = 0) and
    ``upper = Beta(1 - alpha/2; k + 1, n - k)`` (1 when k = n), from
    ``scipy.stats.beta``.  Returns ``(nan, nan)`` when ``n == 0``.

    >>> [round(x, 4) for x in clopper_pearson_ci(0, 10)]
    [0.0, 0.3085]
    """
    k, n = check_k_n(k, n)
    a = check_alpha(alpha)
    if n == 0:
        return math.nan, math.nan
    # The same Beta quantiles as scipy.stats.binomtest(k, n).proportion_ci(method="exact") (to about
    # 1e-13, tested), called directly: binomtest costs ~40 ms per interval here, and an evaluation
    # computes hundreds of intervals.  n = 0 stays NaN, where binomtest refuses.
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
    k, n = check_k_n(k, n)
    a = check_alpha(alpha)
    if (n_positive is None) != (n_negative is None):
        raise MetricsError(
            "Pass both n_positive and n_negative (for Mercaldo's predictive-value "
            f"interval) or neither; got n_positive={show(n_positive)}, n_negative={show(n_negative)}."
        )
    if n == 0:
        return math.nan, math.nan
    if k == 0 or k == n:
        return clopper_pearson_ci(k, n, alpha=a)
    var = 1.0 / k + 1.0 / (n - k)
    if n_positive is not None and n_negative is not None:
        n_pos = check_count(n_positive, "n_positive")
        n_neg = check_count(n_negative, "n_negative")
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
    half = z_value(a) * math.sqrt(var)
    return float(special.expit(centre - half)), float(special.expit(centre + half))


def _f1(tp: Any, fp: Any, fn: Any) -> Any:
    return 2.0 * tp / (2.0 * tp + fp + fn)


def f1_estimate(
    y: np.ndarray, predicted: np.ndarray, n_boot: int, seed: int | None, alpha: float
) -> tuple[Estimate, str | None]:
    """F1 with its bootstrap interval on validated ``y`` and ``predicted``, and why it is undefined (or None)."""
    method = "bootstrap percentile"
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0:
        return (
            Estimate(math.nan, math.nan, math.nan, method),
            "F1 is undefined without positive cases (sensitivity is undefined).",
        )
    c = outcome_counts(y, predicted)
    value = float(_f1(c["tp"], c["fp"], c["fn"]))
    # Stratified resampling with replacement: the number of predicted
    # positives among n1 resampled positives is exactly Binomial(n1, TP/n1),
    # and among n0 resampled negatives Binomial(n0, FP/n0), independently.
    # Drawing those counts is the same bootstrap, in O(n_boot) time.
    rng = np.random.default_rng(seed)
    tp_b = rng.binomial(n1, c["tp"] / n1, size=n_boot)
    fp_b = rng.binomial(n0, c["fp"] / n0, size=n_boot) if n0 else np.zeros(n_boot, int)
    f1_b = _f1(tp_b, fp_b, n1 - tp_b)  # denominator >= n1 > 0
    lo, hi = percentile_ci(f1_b, alpha)
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
    y, p = check_pair(labels, predictions, "predictions", binary_other=True)
    est, problem = f1_estimate(y, p, check_n_boot(n_boot), seed, check_alpha(alpha))
    if problem:
        warn_undefined(problem)
    return est


def proportion_estimate(k: int, n: int, alpha: float) -> Estimate:
    """k/n with its Clopper-Pearson interval (NaN when n = 0)."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, "Clopper-Pearson")
    lo, hi = clopper_pearson_ci(k, n, alpha=alpha)
    return Estimate(k / n, lo, hi, "Clopper-Pearson")


def predictive_value_estimate(k: int, n: int, n1: int, n0: int, alpha: float) -> Estimate:
    """PPV or NPV k/n with Mercaldo's logit interval; n1, n0: cases with and without the condition."""
    if n == 0 or k == 0 or k == n:
        return proportion_estimate(k, n, alpha)  # Mercaldo's logit is infinite here
    lo, hi = logit_ci(k, n, alpha=alpha, n_positive=n1, n_negative=n0)
    if hi - lo < 1e-12:
        # Mercaldo's variance vanishes when sensitivity or specificity is 0 or 1 (e.g. nothing called
        # positive): the interval would collapse to a point.  Use the plain logit interval of k/n instead.
        lo, hi = logit_ci(k, n, alpha=alpha)
        return Estimate(k / n, lo, hi, "logit (plain; Mercaldo degenerate)")
    return Estimate(k / n, lo, hi, "logit (Mercaldo)")
