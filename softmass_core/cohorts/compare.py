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


@dataclass(frozen=True)
class TaskComparison:
    """Weight sets A and B on one task of one cohort, on the same cases.

    AUCs with DeLong CIs and their paired DeLong difference (A - B); McNemar's
    test of the two sets' correct calls, each at its own threshold
    (``threshold_a``, ``threshold_b``), with each set's accuracy there.
    """

    cohort: str
    task: str
    n: int
    n_positive: int
    auc_a: Estimate
    auc_b: Estimate
    difference: Estimate
    p_delong: float
    threshold_a: float
    threshold_b: float
    accuracy_a: float
    accuracy_b: float
    mcnemar: dict

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("cohort", "task", "n", "n_positive", "p_delong", "threshold_a",
                                             "threshold_b", "accuracy_a", "accuracy_b")}  # fmt: skip
        for name in ("auc_a", "auc_b", "difference"):
            est = getattr(self, name)
            out[name] = {"value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high, "method": est.method}
        out["mcnemar"] = dict(self.mcnemar)
        return out


def _task_columns(task: str) -> tuple[str, str | None]:
    """The score column of ``task`` ("dlm1" or a subtype) and the subtype its cases must have."""
    return ("p_malignant", None) if task == "dlm1" else (f"score_{task}", task)


def compare_tasks(
    a: pd.DataFrame,
    b: pd.DataFrame,
    thresholds_a: dict[str, float],
    thresholds_b: dict[str, float],
    *,
    cohorts=None,
) -> list[TaskComparison]:
    """Every task both sets have, per cohort: paired DeLong of the AUCs and McNemar of the calls.

    ``a``/``b`` are full predictions tables (``predict_cohort``: case_id,
    cohort, label, y_malignant, p_malignant, score_<subtype>);
    ``thresholds_x`` maps ``"dlm1"`` and each subtype to that set's
    threshold.  DLM-1 uses every case; a subtype's one-vs-rest task uses the
    benign cases of a known subtype, as the paper's Table 3 does.  A task
    without both classes in a cohort is left out.
    """
    from softmass_core.labels import SUBTYPES
    from softmass_core.stats.hypothesis_tests import mcnemar_test

    tasks = [t for t in ("dlm1", *SUBTYPES) if t in thresholds_a and t in thresholds_b]
    keep = ["case_id", "cohort", "label", "y_malignant"]
    cols = [_task_columns(t)[0] for t in tasks]
    paired = a[keep + cols].merge(b[["case_id", *cols]], on="case_id", suffixes=("_a", "_b"), validate="one_to_one")
    if cohorts is not None:
        paired = paired[paired["cohort"].astype(str).isin([str(c) for c in cohorts])]
    out: list[TaskComparison] = []
    for cohort, df in paired.groupby("cohort", sort=False):
        for task in tasks:
            col, subtype = _task_columns(task)
            rows = df if subtype is None else df[df["label"].isin(SUBTYPES)]
            y = rows["y_malignant"].to_numpy(int) if subtype is None else (rows["label"] == subtype).to_numpy(int)
            if len(np.unique(y)) < 2:
                continue
            pa, pb = rows[f"{col}_a"].to_numpy(float), rows[f"{col}_b"].to_numpy(float)
            ta, tb = float(thresholds_a[task]), float(thresholds_b[task])
            right_a, right_b = (pa >= ta) == (y == 1), (pb >= tb) == (y == 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                test = delong_test(y, pa, pb)
                auc_a, auc_b = auc_delong(y, pa), auc_delong(y, pb)
                mc = mcnemar_test(right_a, right_b)
            out.append(
                TaskComparison(
                    cohort=str(cohort), task=task, n=len(y), n_positive=int(y.sum()), auc_a=auc_a, auc_b=auc_b,
                    difference=Estimate(test["auc_difference"], test["ci_low"], test["ci_high"], test["method"]),
                    p_delong=float(test["p_value"]), threshold_a=ta, threshold_b=tb,
                    accuracy_a=float(right_a.mean()), accuracy_b=float(right_b.mean()), mcnemar=mc,
                )
            )  # fmt: skip
    return out
