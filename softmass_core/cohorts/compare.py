"""Two weight sets on the same cases: DLM-1's AUCs side by side and the paired DeLong test.

:func:`paired_predictions` joins two predictions tables (as
:func:`softmass_core.cohorts.evaluate.predict_cohort` makes them) by ``case_id``;
:func:`compare_sets` gives, per cohort, each set's AUC with its DeLong 95%
CI, the difference A - B with its CI, z and the two-sided p-value
(:func:`softmass_core.stats.roc.delong_test`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from softmass_core.stats.estimate import Estimate, UndefinedMetricWarning
from softmass_core.stats.roc import auc_delong, delong_test


@dataclass(frozen=True)
class SetComparison:
    """DLM-1 of weight sets A and B on one cohort's shared cases.

    ``difference`` is AUC(A) - AUC(B) with its Wald CI; ``z`` and
    ``p_value`` (two-sided) are NaN where the test is undefined (one class
    only, or zero variance with a non-zero difference).
    """

    cohort: str
    n: int
    n_positive: int
    auc_a: Estimate
    auc_b: Estimate
    difference: Estimate
    z: float
    p_value: float


def paired_predictions(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two weight sets' predictions on the same cases, joined by case_id.

    Returns columns case_id, cohort, y_malignant, p_a, p_b (cases present in
    both tables only, in ``a``'s order).
    """
    left = a[["case_id", "cohort", "y_malignant", "p_malignant"]].rename(columns={"p_malignant": "p_a"})
    right = b[["case_id", "p_malignant"]].rename(columns={"p_malignant": "p_b"})
    return left.merge(right, on="case_id", how="inner", validate="one_to_one")


def compare_sets(a: pd.DataFrame, b: pd.DataFrame, *, cohorts=None) -> list[SetComparison]:
    """Paired DeLong comparison of DLM-1, weight set A (``a``) vs B (``b``), one entry per cohort.

    ``a`` and ``b`` are predictions tables (columns case_id, cohort,
    y_malignant, p_malignant); only cases in both count.  ``cohorts`` keeps
    those cohorts (default: every cohort of ``a``), in ``a``'s order.

    >>> t = pd.DataFrame({"case_id": list("abcd"), "cohort": "v", "y_malignant": [0, 0, 1, 1],
    ...                   "p_malignant": [0.1, 0.4, 0.35, 0.8]})
    >>> c = compare_sets(t, t)[0]
    >>> c.auc_a.value, c.difference.value, c.p_value
    (0.75, 0.0, 1.0)
    """
    paired = paired_predictions(a, b)
    if cohorts is not None:
        paired = paired[paired["cohort"].astype(str).isin([str(c) for c in cohorts])]
    out = []
    for cohort, df in paired.groupby("cohort", sort=False):
        y = df["y_malignant"].to_numpy(dtype=int)
        pa, pb = df["p_a"].to_numpy(float), df["p_b"].to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            test = delong_test(y, pa, pb)
            auc_a, auc_b = auc_delong(y, pa), auc_delong(y, pb)
        out.append(
            SetComparison(
                cohort=str(cohort),
                n=len(df),
                n_positive=int(np.sum(y)),
                auc_a=auc_a,
                auc_b=auc_b,
                difference=Estimate(test["auc_difference"], test["ci_low"], test["ci_high"], test["method"]),
                z=float(test["z"]),
                p_value=float(test["p_value"]),
            )
        )
    return out
