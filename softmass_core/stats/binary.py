"""Every headline metric of a binary test with its confidence interval, as the paper's Table 2 reports them."""

from __future__ import annotations

import math
from typing import Any

from softmass_core.stats.counts import outcome_counts
from softmass_core.stats.intervals import f1_estimate, predictive_value_estimate, proportion_estimate
from softmass_core.stats.roc import delong_estimate
from softmass_core.stats.validation import check_alpha, check_n_boot, check_pair, check_threshold, warn_undefined


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
    y, s = check_pair(labels, scores)
    t = check_threshold(threshold)
    a = check_alpha(alpha)
    n_boot = check_n_boot(n_boot)
    predicted = s >= t
    c = outcome_counts(y, predicted)
    n = int(y.size)
    n1 = c["tp"] + c["fn"]
    n0 = c["fp"] + c["tn"]
    problems: list[str] = []

    undefined: dict[str, str] = {}
    auc, problem = delong_estimate(y, s, a)
    if problem:
        problems.append(problem)
        if math.isnan(auc.value):
            undefined["auc"] = f"only one class present ({n1} positive, {n0} negative)"
    f1, problem = f1_estimate(y, predicted, n_boot, seed, a)
    if problem:
        problems.append(problem)
        if math.isnan(f1.value):
            undefined["f1"] = "no positive cases"
    metrics = {
        "auc": auc,
        "accuracy": proportion_estimate(c["tp"] + c["tn"], n, a),
        "sensitivity": proportion_estimate(c["tp"], n1, a),
        "specificity": proportion_estimate(c["tn"], n0, a),
        "ppv": predictive_value_estimate(c["tp"], c["tp"] + c["fp"], n1, n0, a),
        "npv": predictive_value_estimate(c["tn"], c["tn"] + c["fn"], n1, n0, a),
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
        warn_undefined("Some metrics are undefined and reported as None: " + " ".join(problems))
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
        "threshold": check_threshold(threshold),
        "counts": {"tp": 0, "fp": 0, "fn": 0, "tn": 0},
        "metrics": {
            name: {"value": None, "ci_low": None, "ci_high": None, "method": method}
            for name, method in METRIC_METHODS.items()
        },
        "undefined": dict.fromkeys(METRIC_METHODS, reason),
    }
