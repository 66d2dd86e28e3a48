"""Chart builders (ui/charts.py) and the Cohort page's tables (ui/cohort_tables.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from softmass_core.cohorts.compare import compare_sets, paired_predictions
from softmass_core.labels import SUBTYPES
from softmass_core.stats.binary import binary_metrics
from softmass_core.stats.curves import calibration_curve, threshold_sweep
from softmass_core.stats.reader_study import reader_study_summary
from softmass_core.stats.roc import auc_delong, roc_curve
from ui import charts, cohort_tables


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_format_estimate():
    assert charts.format_estimate({"value": 0.912, "ci_low": 0.85, "ci_high": 0.97}) == "0.912 [0.850, 0.970]"
    assert charts.format_estimate({"value": 0.875, "ci_low": 0.847, "ci_high": 0.9}, percent=True) == (
        "87.5 [84.7, 90.0]"
    )
    assert charts.format_estimate({"value": 0.75, "ci_low": None, "ci_high": None}) == "0.750"
    assert charts.format_estimate({"value": None, "ci_low": None, "ci_high": None}) == "n/a"
    assert charts.format_estimate(None) == "n/a"


def test_table2_reproduces_the_papers_validation_column():
    # Paper, Table 2, validation cohort: 154 cases, 8 malignant; 8 TP, 2 FP, 144 TN.
    y = np.r_[np.ones(8), np.zeros(146)].astype(int)
    s = np.r_[np.full(8, 0.9), np.full(2, 0.8), np.full(144, 0.1)]
    table = cohort_tables.table2({"Validation cohort": _quiet(binary_metrics, y, s, threshold=0.5)})
    col = table["Validation cohort"]
    assert col["Cases (malignant)"] == "154 (8)"
    assert col["ACC (%)"] == "98.7 [95.4, 99.8]"
    assert col["Sensitivity (%)"] == "100.0 [63.1, 100.0]"
    assert col["PPV (%)"] == "80.0 [50.2, 94.1]"
    assert col["F1-score"].startswith("0.889 [")
    assert col["TP / FP / FN / TN"] == "8 / 2 / 0 / 144"
    assert list(table.index[1:8]) == [r for _, r, _ in cohort_tables.METRIC_ROWS]


def test_table3_rows_per_subtype_and_cohort():
    rng = np.random.default_rng(0)
    metrics = {}
    for cohort in ("validation", "test_a"):
        y = rng.integers(0, 2, 30)
        y[:2] = [0, 1]
        dlm2 = {st: _quiet(binary_metrics, y, rng.random(30), threshold=0.5, n_boot=50) for st in SUBTYPES}
        metrics[cohort] = {"dlm1": None, "dlm2": dlm2}
    table = cohort_tables.table3(metrics)
    assert len(table) == 10
    assert list(table["Subtype"][:2]) == ["Lipoma", "Lipoma"] and list(table["Cohort"][:2]) == ["validation", "test_a"]
    assert table["ACC (%)"].str.match(r"^\d+\.\d \[\d+\.\d, \d+\.\d\]$").all()


def test_roc_chart_puts_auc_and_ci_in_the_legend():
    y, s = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    fpr, tpr, _ = roc_curve(y, s)
    auc = auc_delong(y, s).to_dict()
    curves = [
        {"name": "validation", "fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": auc},
        {"name": "one class", "fpr": [np.nan, np.nan], "tpr": [0.0, 1.0], "auc": None},  # left out
    ]
    frame = charts.roc_frame(curves)
    label = f"validation: AUC {charts.format_estimate(auc)}"
    assert set(frame["series"]) == {label}
    assert frame["fpr"].tolist() == fpr.tolist() and frame["tpr"].tolist() == tpr.tolist()
    spec = charts.roc_chart(curves, title="ROC", dashed=["validation"]).to_dict()  # validates the Vega-Lite spec
    assert spec["title"] == "ROC" and len(spec["layer"]) == 2
    assert "AUC 0.889" in label  # 8 of the 9 positive-negative pairs are ordered correctly


def test_calibration_threshold_and_score_charts():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    p = np.array([0.05, 0.15, 0.85, 0.95, 0.55, 0.45, 0.65, 0.35])
    cal = calibration_curve(y, p, n_bins=2)
    frame = charts.calibration_frame({"test_a": cal})
    assert frame["count"].tolist() == [4, 4]
    assert frame["fraction_positive"].tolist() == [0.0, 1.0]
    charts.calibration_chart({"test_a": cal}).to_dict()

    sweep = threshold_sweep(y, p, [0.0, 0.5, 1.0])
    long = charts.threshold_frame(sweep)
    assert set(long["metric"]) == {"Sensitivity", "Specificity"}
    assert long.query("metric == 'Sensitivity' and threshold == 0.0")["value"].item() == 1.0
    charts.threshold_chart(sweep, threshold=0.5).to_dict()

    scores = {"lipoma": 0.7, "hemangioma": 0.1, "neurinoma": 0.05}
    bars = charts.score_frame(scores, highlight="lipoma")
    assert bars["name"].tolist() == ["Lipoma", "Hemangioma", "Neurinoma (schwannoma)"]
    assert bars["chosen"].tolist() == [True, False, False]
    spec = charts.score_bars(scores, threshold=0.5, highlight="lipoma").to_dict()
    assert len(spec["layer"]) == 3  # bars, labels, threshold rule


def test_reader_accuracy_chart_from_a_real_summary():
    reads = pd.DataFrame(
        {
            "reader_id": [1, 1, 1],
            "reader_name": ["R1"] * 3,
            "case_id": ["a", "b", "c"],
            "blind_malignant": [True, False, False],
            "blind_subtype": [None, "lipoma", "neurinoma"],
            "assisted_malignant": [True, False, False],
            "assisted_subtype": [None, "lipoma", "lipoma"],
        }
    )
    truth = {"a": "malignant", "b": "lipoma", "c": "lipoma"}
    summary = reader_study_summary(reads, truth)
    frame = charts.reader_accuracy_frame(summary)
    assert len(frame) == 4  # 1 reader x 2 tasks x (before, after)
    subtype = frame[frame["task"] == "Benign subtype"].set_index("when")
    assert subtype.loc["Blind (images only)", "accuracy"] == pytest.approx(0.5)
    assert subtype.loc["With the DLM", "accuracy"] == pytest.approx(1.0)
    assert subtype.loc["With the DLM", "n"] == 2
    charts.reader_accuracy_chart(summary).to_dict()


def test_paired_delong_table_and_baseline_blocks():
    rng = np.random.default_rng(3)
    n = 40
    a = pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "cohort": ["test_a"] * n,
            "y_malignant": rng.integers(0, 2, n),
            "p_malignant": rng.random(n),
        }
    )
    b = a.sample(frac=1.0, random_state=1).reset_index(drop=True)  # same cases, another order
    paired = paired_predictions(a, b)
    assert (paired["p_a"] == paired["p_b"]).all() and len(paired) == n
    table = cohort_tables.delong_table(compare_sets(a, b), "A", "B")
    row = table.iloc[0]
    assert row["Difference (A - B)"].startswith("0.000") and row["p (DeLong)"] == "1.000"
    assert row["AUC A"] == row["AUC B"]

    cases = pd.DataFrame(
        {
            "cohort": ["v", "v", "t", "t", "v", "t"],
            "label": ["malignant", "lipoma", "malignant", "lipoma", "hemangioma", "hemangioma"],
            "age": [60, 30, 50, 35, 40, 28],
            "sex": ["M", "F", "F", "M", "F", "F"],
        }
    )
    assert cohort_tables.has_demographics(cases)
    blocks = cohort_tables.baseline_tables(cases)
    assert list(blocks) == ["Malignant", "Benign"]
    assert blocks["Malignant"].loc["n"].tolist()[:2] == ["1", "1"]
    assert "Lipoma, n (%)" in blocks["Benign"].index
    # No row of empty cells: the subtype heading row counts the benign cases and carries the test.
    assert blocks["Benign"].loc["Benign subtype, n"].tolist() == ["2", "2", "1.000 (chi-square)"]
    for block in blocks.values():
        cells = block.drop(columns=["p"])
        assert not (cells == "").all(axis=1).any(), block
    assert not cohort_tables.has_demographics(cases.assign(age=None))


def _task(n, n_pos, *, threshold=0.5, reason=None):
    import warnings

    from softmass_core.stats.binary import binary_metrics, empty_metrics
    from softmass_core.stats.estimate import UndefinedMetricWarning

    if n == 0:
        out = empty_metrics(threshold=threshold, reason=reason)
    else:
        y = [1] * n_pos + [0] * (n - n_pos)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            out = binary_metrics(y, np.linspace(0.1, 0.9, n), threshold=threshold, n_boot=50)
    out.update(computable=reason is None, reason=reason)
    return out


def test_table3_keeps_not_computable_sub_models_with_their_reason_and_full_names():
    from softmass_core.labels import SUBTYPES

    why = "no case of a known benign subtype in this cohort"
    metrics = {
        "validation": {"dlm1": _task(8, 3), "dlm2": {s: _task(0, 0, reason=why) for s in SUBTYPES}},
        "test_a": {
            "dlm1": _task(6, 2),
            "dlm2": {s: _task(5, 2, threshold=0.4) for s in SUBTYPES},
        },
    }
    t3 = cohort_tables.table3(metrics, operating_points={s: "set's operating threshold (Youden's J)" for s in SUBTYPES})
    assert len(t3) == 10
    val = t3[t3["Cohort"] == "validation"]
    assert set(val["Note"]) == {f"Not computable: {why}."} and set(val["AUC"]) == {"n/a"}
    assert set(val["Cases (positive)"]) == {"0 (0)"}
    assert set(t3.loc[t3["Cohort"] == "test_a", "Note"]) == {""}
    assert set(t3.loc[t3["Cohort"] == "test_a", "Threshold"]) == {"0.400"}
    assert "Calcifying epithelioma (pilomatricoma)" in set(t3["Subtype"])  # the full name, never cut here
    assert set(t3["Operating point"]) == {"set's operating threshold (Youden's J)"}
    assert [c for c, t, _ in cohort_tables.not_computable(metrics)] == ["validation"] * 5

    one_class = {"only": {"dlm1": _task(4, 4, reason="only one class present: 4 malignant, 0 benign")}}
    t2 = cohort_tables.table2({"only": one_class["only"]["dlm1"]}, operating_point="chosen on this page")
    assert t2.loc["Note", "only"] == "Not computable: only one class present: 4 malignant, 0 benign."
    assert t2.loc["Operating point", "only"] == "chosen on this page"
    assert t2.loc["AUC", "only"] == "n/a"
    assert "Note" not in cohort_tables.table2({"v": metrics["validation"]["dlm1"]}).index


def test_data_note_never_claims_clinical_performance():
    note = cohort_tables.data_note("simulated", demo=True)
    assert "simulated cases" in note and "**not**" in note and "soft-tissue masses" in note
    assert "breast ultrasound" in cohort_tables.data_note("breast_ultrasound", demo=False)


def test_decision_chart_shows_dlm1_treat_all_and_treat_none():
    curve = [
        {"threshold": 0.1, "net_benefit": 0.25, "treat_all": 0.2},
        {"threshold": 0.9, "net_benefit": 0.05, "treat_all": -6.0},
    ]
    frame = charts.decision_frame(curve)
    assert len(frame) == 6 and set(frame["strategy"]) == {"DLM-1", "Treat all", "Treat none"}
    assert frame.loc[frame["strategy"] == "Treat none", "net_benefit"].eq(0.0).all()
    spec = charts.decision_chart(curve, title="t").to_dict()
    assert spec["encoding"]["x"]["field"] == "threshold" and spec["encoding"]["y"]["field"] == "net_benefit"
    # treat all's plunge at high thresholds is clipped to the axis so the curves near 0 stay readable
    values = [r["net_benefit"] for r in spec["datasets"][next(iter(spec["datasets"]))]]
    assert min(values) >= spec["encoding"]["y"]["scale"]["domain"][0]
