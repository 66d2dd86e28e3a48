"""Expected calibration error of an evaluation's predictions, per cohort and task.

DLM-1's ECE uses every case of a cohort (``y_malignant`` against
``p_malignant``); a sub-model's uses the cases of a known benign subtype
(``score_<subtype>`` against "is this subtype"), as its metrics do.  Bins:
:data:`softmass_core.stats.calibration.ECE_BINS` equal-width bins.  A task
without a case gets no entry.
"""

from __future__ import annotations

from typing import Any

from softmass_core.labels import DLM1, SUBTYPES
from softmass_core.stats.calibration import ECE_BINS, expected_calibration_error


def cohort_ece(predictions, cohorts=None) -> dict[str, dict[str, Any]]:
    """``{cohort: {"dlm1": ece, "dlm2": {subtype: ece}}}`` (floats) from a predictions table."""
    out: dict[str, dict[str, Any]] = {}
    names = cohorts if cohorts is not None else list(dict.fromkeys(predictions["cohort"].astype(str)))
    for cohort in names:
        sub = predictions[predictions["cohort"].astype(str) == str(cohort)]
        if not len(sub):
            continue
        entry: dict[str, Any] = {
            DLM1: expected_calibration_error(sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float))
        }
        benign = sub[sub["label"].isin(SUBTYPES)]
        dlm2 = {}
        for subtype in SUBTYPES:
            col = f"score_{subtype}"
            if col in benign and len(benign) and benign[col].notna().all():
                y = (benign["label"] == subtype).to_numpy(int)
                dlm2[subtype] = expected_calibration_error(y, benign[col].to_numpy(float))
        if dlm2:
            entry["dlm2"] = dlm2
        out[str(cohort)] = entry
    return out


def ece_note() -> str:
    return f"expected calibration error, {ECE_BINS} equal-width bins on [0, 1]"


def add_ece(cohorts: dict[str, Any], predictions) -> None:
    """Add ``"ece"`` to each task entry of ``metrics_json``'s ``cohorts`` (copies, the inputs stay as they were)."""
    for c, ece in cohort_ece(predictions, list(cohorts)).items():
        if cohorts[c].get(DLM1) is not None:
            cohorts[c][DLM1] = {**cohorts[c][DLM1], "ece": ece[DLM1]}
        dlm2 = cohorts[c].get("dlm2") or {}
        for subtype, value in (ece.get("dlm2") or {}).items():
            if dlm2.get(subtype) is not None:
                dlm2 = {**dlm2, subtype: {**dlm2[subtype], "ece": value}}
                cohorts[c]["dlm2"] = dlm2


def ece_caption(predictions, cohorts) -> str:
    """One line for the Cohort page: DLM-1's ECE per cohort, e.g. "Expected calibration error of DLM-1 (...): validation 0.041"."""
    ece = cohort_ece(predictions, cohorts)
    parts = [f"{c} {e[DLM1]:.3f}" for c, e in ece.items()]
    return f"Expected calibration error of DLM-1 ({ece_note()}; 0 = perfectly calibrated): " + (
        ", ".join(parts) if parts else "no case"
    )
