"""Hypothesis tests of reader studies and baseline tables: McNemar, chi-square, one-way ANOVA.

Each returns a plain dict with the statistic and the p-value; an undefined
statistic is NaN with :class:`~softmass_core.stats.estimate.UndefinedMetricWarning`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from softmass_core.errors import MetricsError
from softmass_core.stats.validation import as_binary, as_scores, show, warn_undefined

#: McNemar's test switches from the exact binomial test to chi-square here.
MCNEMAR_EXACT_BELOW = 25


def mcnemar_test(before_correct: Any, after_correct: Any, *, exact: bool | None = None) -> dict[str, Any]:
    """McNemar's test for paired accuracy (e.g. a reader without, then with, the DLM).

    ``before_correct`` and ``after_correct`` are 0/1 or bool arrays of shape
    ``(n,)``, one entry per case.  ``b`` counts cases correct before and wrong
    after, ``c`` cases wrong before and correct after.

    By default (``exact=None``) the exact two-sided binomial test is used when
    ``b + c < 25`` (``statistic = min(b, c)``, ``p = min(1, 2 P[X <= min(b, c)])``
    with X ~ Binomial(b + c, 1/2)), otherwise the chi-square test with
    continuity correction, ``statistic = (|b - c| - 1)^2 / (b + c)`` on 1 df.
    ``exact=True``/``False`` forces one or the other.  Both are
    ``statsmodels.stats.contingency_tables.mcnemar``.  Returns ``{"n", "b",
    "c", "statistic", "p_value", "method"}``.
    """
    before = as_binary(before_correct, "before_correct")
    after = as_binary(after_correct, "after_correct")
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
    both = int(np.count_nonzero(before & after))
    table = [[both, b], [c, before.shape[0] - both - b - c]]
    if use_exact:
        test = mcnemar(table, exact=True)
        out.update(statistic=float(test.statistic), p_value=float(test.pvalue), method="exact binomial")
        return out
    method = "chi-square with continuity correction"
    if b + c == 0:
        # statsmodels would divide 0 by 0 (a RuntimeWarning and NaN); say why instead.
        warn_undefined("No discordant pairs (b = c = 0): the chi-square statistic is undefined.")
        out.update(statistic=math.nan, p_value=math.nan, method=method)
        return out
    test = mcnemar(table, exact=False, correction=True)
    out.update(statistic=float(test.statistic), p_value=float(test.pvalue), method=method)
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
        raise MetricsError(f"table must hold finite counts >= 0; found {show(t[i, j])} at row {i}, column {j}.")
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.shape[0] < 2 or t.shape[1] < 2:
        warn_undefined(
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
        arr = as_scores(g, f"group {i}")
        if arr.size == 0:
            raise MetricsError(f"group {i} is empty; drop it before the ANOVA.")
        arrays.append(arr)
    total = sum(arr.size for arr in arrays)
    if total <= len(arrays):
        warn_undefined("ANOVA needs more values than groups; F is undefined.")
        return {"statistic": math.nan, "p_value": math.nan}
    values = np.concatenate(arrays)
    if np.all(values == values[0]):
        warn_undefined("All values are equal; the ANOVA F statistic is undefined.")
        return {"statistic": math.nan, "p_value": math.nan}
    res = stats.f_oneway(*arrays)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}
