"""Curves of an evaluation's predictions, per cohort: DLM-1's sensitivity / specificity sweep and calibration.

The page's figures follow these rules, so the CLI or a notebook can draw the
same: the sweep runs over :data:`SWEEP_THRESHOLDS`; a calibration curve has
:func:`calibration_bins` equal-width bins.  ``predictions`` is a table as
:func:`softmass_core.cohorts.evaluate.predict_cohort` makes it (columns cohort,
y_malignant, p_malignant).
"""

from __future__ import annotations

import numpy as np

from softmass_core.stats.curves import calibration_curve, threshold_sweep

#: Thresholds of the sensitivity / specificity sweep: 0, 0.01, ..., 1.
SWEEP_THRESHOLDS = tuple(i / 100 for i in range(101))


def cohort_sweep(predictions, cohort: str):
    """DLM-1's point metrics of one cohort at :data:`SWEEP_THRESHOLDS` (``stats.curves.threshold_sweep``'s table).

    None when the cohort holds one class only (sensitivity and specificity
    cannot both exist).
    """
    sub = predictions[predictions["cohort"].astype(str) == str(cohort)]
    if sub["y_malignant"].nunique() != 2:
        return None
    return threshold_sweep(sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float), SWEEP_THRESHOLDS)


def calibration_bins(n_cases: int) -> int:
    """Equal-width bins of a calibration curve: 10 from 100 cases on, else 5 (so bins are not near empty)."""
    return 10 if n_cases >= 100 else 5


def cohort_calibration(predictions, cohorts) -> dict[str, dict[str, np.ndarray]]:
    """DLM-1's calibration curve (``stats.curves.calibration_curve``) per cohort, :func:`calibration_bins` bins each."""
    out = {}
    for cohort in cohorts:
        sub = predictions[predictions["cohort"].astype(str) == str(cohort)]
        y, p = sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float)
        out[str(cohort)] = calibration_curve(y, p, n_bins=calibration_bins(len(sub)))
    return out
