"""Tables of the Cohort page in the form of the paper's Tables 1-3 (pandas only, no Streamlit).

Cells read like the paper's: ``"0.912 [0.850, 0.970]"`` for AUC and F1,
``"87.5 [84.7, 90.0]"`` (percent) for ACC, sensitivity, specificity, PPV
and NPV, the brackets holding the 95% confidence interval.  Inputs are the
plain dicts of :func:`softmass_core.stats.binary.binary_metrics` and the
``metrics`` of :class:`softmass_core.cohorts.evaluate.Evaluation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from softmass_core.labels import MALIGNANT, SUBTYPES, display_name
from softmass_core.stats.formatting import format_p
from softmass_core.stats.tables import baseline_table
from softmass_core.weights.card_data import METRIC_ROWS
from ui.charts import format_estimate

if TYPE_CHECKING:  # the tables need no model code
    from softmass_core.cohorts.compare import SetComparison
    from softmass_core.cohorts.evaluate import Evaluation


def _cells(result: Mapping[str, Any]) -> dict[str, str]:
    m = result["metrics"]
    return {row: format_estimate(m.get(key), percent=pct) for key, row, pct in METRIC_ROWS}


def _counts(result: Mapping[str, Any]) -> str:
    c = result["counts"]
    return f"{c['tp']} / {c['fp']} / {c['fn']} / {c['tn']}"


def _note(result: Mapping[str, Any]) -> str:
    """Why a task's metrics are incomplete ("" when both classes are present)."""
    if result.get("computable", True):
        return ""
    return f"Not computable: {result.get('reason') or 'one class only'}."


def table2(dlm1: Mapping[str, Mapping[str, Any]], *, operating_point: str = "") -> pd.DataFrame:
    """DLM-1 performance like the paper's Table 2: rows metrics, one column per cohort.

    ``dlm1`` maps cohort name -> ``binary_metrics(...)`` result (with
    ``computable``/``reason`` as :func:`softmass_core.cohorts.evaluate.cohort_metrics`
    adds them).  Extra rows give the number of cases (malignant), the
    threshold, where it came from (``operating_point``, when given), the
    confusion counts TP / FP / FN / TN, and a ``Note`` row when a cohort's
    metrics are not all computable (e.g. one class only).
    """
    columns: dict[str, dict[str, str]] = {}
    notes = {str(c): _note(r) for c, r in dlm1.items()}
    for cohort, result in dlm1.items():
        col = {"Cases (malignant)": f"{result['n']} ({result['n_positive']})"}
        col.update(_cells(result))
        col["Threshold"] = f"{result['threshold']:.3f}"
        if operating_point:
            col["Operating point"] = operating_point
        col["TP / FP / FN / TN"] = _counts(result)
        if any(notes.values()):
            col["Note"] = notes[str(cohort)]
        columns[str(cohort)] = col
    out = pd.DataFrame(columns)
    out.index.name = "DLM-1"
    return out


#: Columns of :func:`table3`.
TABLE3_COLUMNS = ["Subtype", "Cohort", "Cases (positive)", *[r for _, r, _ in METRIC_ROWS], "Threshold", "Note"]


def table3(metrics: Mapping[str, Mapping[str, Any]], *, operating_points: Mapping[str, str] | None = None):
    """DLM-2 performance like the paper's Table 3: one row per (subtype, cohort), columns metrics.

    ``metrics`` is ``Evaluation.metrics`` (cohort -> {"dlm2": {subtype:
    binary_metrics result}}).  A sub-model that could not be measured on a
    cohort (no benign case of known subtype, or one class only) keeps its row,
    with "n/a" cells and the reason under ``Note``.  With
    ``operating_points`` (subtype -> text) an ``Operating point`` column
    says where each threshold came from.  Empty when no cohort has DLM-2
    results.
    """
    rows = []
    for subtype in SUBTYPES:
        for cohort, entry in metrics.items():
            result = (entry.get("dlm2") or {}).get(subtype)
            if result is None:
                continue
            row = {
                "Subtype": display_name(subtype),
                "Cohort": str(cohort),
                "Cases (positive)": f"{result['n']} ({result['n_positive']})",
                **_cells(result),
                "Threshold": f"{result['threshold']:.3f}",
                "Note": _note(result),
            }
            if operating_points is not None:
                row["Operating point"] = operating_points.get(subtype, "")
            rows.append(row)
    columns = TABLE3_COLUMNS + (["Operating point"] if operating_points is not None else [])
    return pd.DataFrame(rows, columns=columns)


def not_computable(metrics: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """``(cohort, task, reason)`` for every task of ``Evaluation.metrics`` that could not be measured."""
    out = []
    for cohort, entry in metrics.items():
        tasks = [("DLM-1", entry.get("dlm1"))] + [(display_name(s), r) for s, r in (entry.get("dlm2") or {}).items()]
        out += [(str(cohort), t, r.get("reason") or "") for t, r in tasks if r and not r.get("computable", True)]
    return out


def baseline_tables(cases: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Table 1 in the paper's two blocks: ``{"Malignant": ..., "Benign": ...}`` by cohort.

    ``cases`` has columns cohort, label, age, sex.  Each block is
    :func:`softmass_core.stats.tables.baseline_table` (ANOVA for age, chi-square
    for sex and, for benign masses, subtype) on that block's cases; a block
    with no case is left out.
    """
    out: dict[str, pd.DataFrame] = {}
    malignant = cases[cases["label"] == MALIGNANT]
    benign = cases[cases["label"] != MALIGNANT]
    if len(malignant):
        out["Malignant"] = baseline_table(malignant.drop(columns=["label"]))
    if len(benign):
        out["Benign"] = baseline_table(benign, label_title="Benign subtype")
    return out


def has_demographics(cases: pd.DataFrame) -> bool:
    """True when the cases carry both age and sex (for at least one case each)."""
    return all(c in cases.columns and cases[c].notna().any() for c in ("age", "sex"))


def delong_table(comparisons: Sequence[SetComparison], name_a: str, name_b: str) -> pd.DataFrame:
    """Paired DeLong test of DLM-1's AUC, weight set A vs B, one row per cohort.

    ``comparisons`` as from :func:`softmass_core.cohorts.compare.compare_sets`.
    Columns: Cohort, Cases, AUC of A and of B with DeLong 95% CIs, the
    difference A - B with its CI, z and the two-sided p-value.
    """
    rows = [
        {
            "Cohort": c.cohort,
            "Cases (malignant)": f"{c.n} ({c.n_positive})",
            f"AUC {name_a}": format_estimate(c.auc_a.to_dict()),
            f"AUC {name_b}": format_estimate(c.auc_b.to_dict()),
            "Difference (A - B)": format_estimate(c.difference.to_dict()),
            "z": "n/a" if math.isnan(c.z) else f"{c.z:.2f}",
            "p (DeLong)": format_p(c.p_value),
        }
        for c in comparisons
    ]
    return pd.DataFrame(rows)


def roc_curves(ev: Evaluation, task: str, *, cohorts: Sequence[str], prefix: str = "") -> list[dict[str, Any]]:
    """ROC series per cohort of ``ev`` for ``task`` ("dlm1" or a subtype), ready for ``charts.roc_chart``.

    ``prefix`` goes before each cohort's name (e.g. a weight set's id); a
    cohort without both classes (no ROC curve) is left out.
    """
    out = []
    for cohort in cohorts:
        points = ev.task_roc(cohort, task)
        if not points:
            continue
        result = ev.task_metrics(cohort, task)
        auc = result["metrics"]["auc"] if result else None
        out.append({"name": f"{prefix}{cohort}", "fpr": points["fpr"], "tpr": points["tpr"], "auc": auc})
    return out


#: What a weight set learned, by its manifest's ``data_kind``.
DATA_KINDS_TEXT: dict[str, str] = {
    "simulated": "simulated ultrasound images (the phantom)",
    "breast_ultrasound": "breast ultrasound images (BUSI)",
    "soft_tissue_ultrasound": "soft-tissue ultrasound images",
    "test": "nothing (random test weights)",
}


def data_note(data_kind: str, *, demo: bool) -> str:
    """One paragraph saying what the figures on the page measure (Markdown)."""
    learned = DATA_KINDS_TEXT.get(data_kind, data_kind)
    cases = (
        "**simulated cases** from three simulated hospitals (no patient data)"
        if demo
        else "the cases of the cohort file you chose"
    )
    return (
        f"These figures measure a weight set that learned **{learned}**, run on {cases}. "
        "They show how the software and this weight set behave on these data; they are **not** the "
        "diagnostic performance of any model on real superficial soft-tissue masses, and the paper's "
        "figures are not reproduced by them."
    )
