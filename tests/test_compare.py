"""The Cohort page's statistics, in the core: metrics at a chosen threshold, curves, and two sets compared."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from softmass_core.cohorts.compare import compare_sets, paired_predictions
from softmass_core.cohorts.curves import SWEEP_THRESHOLDS, calibration_bins, cohort_calibration, cohort_sweep
from softmass_core.cohorts.evaluate import (
    Evaluation,
    cohort_metrics,
    evaluation_at,
    metrics_at_threshold,
    operating_point_at,
)
from softmass_core.stats.roc import delong_test

OWN = "set's operating threshold (Youden's J)"


def _predictions() -> pd.DataFrame:
    """Cohort v: AUC 0.75 (one discordant pair of four); cohort w: malignant cases only."""
    return pd.DataFrame(
        {
            "case_id": ["v1", "v2", "v3", "v4", "w1", "w2"],
            "cohort": ["v", "v", "v", "v", "w", "w"],
            "label": ["lipoma", "lipoma", "malignant", "malignant", "malignant", "malignant"],
            "y_malignant": [0, 0, 1, 1, 1, 1],
            "p_malignant": [0.1, 0.4, 0.35, 0.8, 0.6, 0.2],
        }
    )


def _evaluation(threshold: float = 0.5) -> Evaluation:
    preds = _predictions()
    metrics, roc = cohort_metrics(preds, dlm1_threshold=threshold, n_boot=50, seed=0)
    return Evaluation(
        weight_set_id="a",
        weight_set_version="1",
        threshold=threshold,
        fusion_rule="mean",
        predictions=preds,
        metrics=metrics,
        roc=roc,
        operating_points={"dlm1": OWN},
        n_boot=50,
        seed=0,
    )


def _value(result, name):
    return result["metrics"][name]["value"]


def test_metrics_at_threshold_counts_and_rates():
    ev = _evaluation()
    at_03 = metrics_at_threshold(ev, 0.3)
    v = at_03["v"]
    # Called malignant at 0.3: 0.4 (benign), 0.35 and 0.8 (malignant).
    assert v["counts"] == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}
    assert v["threshold"] == 0.3
    assert _value(v, "sensitivity") == 1.0 and _value(v, "specificity") == 0.5
    assert _value(v, "auc") == 0.75  # the AUC does not follow the threshold
    at_05 = metrics_at_threshold(ev, 0.5)["v"]
    assert at_05["counts"] == {"tp": 1, "fp": 0, "fn": 1, "tn": 2}
    assert _value(at_05, "sensitivity") == 0.5 and _value(at_05, "specificity") == 1.0
    # At the set's own threshold the figures are the evaluation's own, F1 bootstrap included.
    assert at_05 == ev.metrics["v"]["dlm1"]
    # One class only: reported, not refused.
    w = at_03["w"]
    assert w["computable"] is False and "only one class" in w["reason"]
    assert _value(w, "auc") is None and _value(w, "sensitivity") == 0.5


def test_operating_point_and_evaluation_at_a_chosen_threshold():
    ev = _evaluation()
    assert operating_point_at(ev, 0.5) == OWN
    assert operating_point_at(ev, 0.3) == "chosen on this page (the set's own is 0.500)"
    at = evaluation_at(ev, 0.3, metrics_at_threshold(ev, 0.3), ["v"])
    assert list(at.metrics) == ["v"] and at.threshold == 0.3
    table = at.metrics_table()
    assert set(table["threshold"]) == {0.3}
    assert set(table["operating_point"]) == {"chosen on this page (the set's own is 0.500)"}
    sens = table.loc[table["metric"] == "sensitivity", "value"]
    assert sens.tolist() == [1.0]
    assert ev.threshold == 0.5 and ev.metrics["v"]["dlm1"]["threshold"] == 0.5  # the original is untouched


def test_evaluation_accessors():
    ev = _evaluation()
    assert ev.task_metrics("v", "dlm1")["n"] == 4
    assert ev.task_metrics("v", "lipoma") is None  # no DLM-2 in this evaluation
    assert ev.task_metrics("nowhere", "dlm1") is None
    roc = ev.task_roc("v", "dlm1")
    assert roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert ev.task_roc("w", "dlm1") is None  # one class: no curve
    assert any("not computable" in n for n in ev.notes("w")) and ev.notes("nowhere") == []


def test_cohort_sweep_and_calibration_rules():
    preds = _predictions()
    sweep = cohort_sweep(preds, "v")
    assert len(sweep) == len(SWEEP_THRESHOLDS) == 101
    assert SWEEP_THRESHOLDS[0] == 0.0 and SWEEP_THRESHOLDS[-1] == 1.0 and SWEEP_THRESHOLDS[35] == 0.35
    row = sweep.iloc[35]  # threshold 0.35: 0.35, 0.4 and 0.8 called malignant
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (2, 1, 0, 1)
    assert row["sensitivity"] == 1.0 and row["specificity"] == 0.5
    assert cohort_sweep(preds, "w") is None  # malignant cases only

    assert calibration_bins(99) == 5 and calibration_bins(100) == 10 and calibration_bins(1000) == 10
    cal = cohort_calibration(preds, ["v", "w"])
    assert list(cal) == ["v", "w"]
    # Five bins of width 0.2: 0.1 -> bin 0, 0.35 -> 1, 0.4 -> 2, 0.8 -> 4.
    np.testing.assert_allclose(cal["v"]["mean_predicted"], [0.1, 0.35, 0.4, 0.8])
    np.testing.assert_array_equal(cal["v"]["fraction_positive"], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(cal["v"]["count"], [1, 1, 1, 1])
    tens = pd.DataFrame({"cohort": ["big"] * 100, "y_malignant": [0, 1] * 50, "p_malignant": np.linspace(0, 1, 100)})
    assert len(cohort_calibration(tens, ["big"])["big"]["count"]) == 10


def test_compare_sets_pairs_by_case_and_tests_each_cohort():
    a = _predictions()
    # B ranks cohort v perfectly, comes in another order and misses case v2 and has one case A lacks.
    b = pd.DataFrame(
        {
            "case_id": ["v4", "v3", "v1", "x9", "w1", "w2"],
            "p_malignant": [0.9, 0.8, 0.1, 0.5, 0.3, 0.4],
        }
    )
    paired = paired_predictions(a, b)
    assert paired["case_id"].tolist() == ["v1", "v3", "v4", "w1", "w2"]  # A's order, shared cases only
    out = compare_sets(a, b)
    assert [c.cohort for c in out] == ["v", "w"]
    v = out[0]
    assert (v.n, v.n_positive) == (3, 2)
    # On v1, v3, v4 both sets rank every malignant case above the benign one.
    assert v.auc_a.value == 1.0 and v.auc_b.value == 1.0
    assert v.difference.value == 0.0
    w = out[1]
    assert (w.n, w.n_positive) == (2, 2)
    assert math.isnan(w.auc_a.value) and math.isnan(w.p_value)  # one class: undefined, no warning raised
    assert [c.cohort for c in compare_sets(a, b, cohorts=["w"])] == ["w"]


def test_compare_sets_known_difference():
    a = pd.DataFrame(
        {
            "case_id": list("abcdef"),
            "cohort": "v",
            "y_malignant": [0, 0, 0, 1, 1, 1],
            "p_malignant": [0.1, 0.5, 0.3, 0.4, 0.8, 0.2],
        }
    )
    b = a.assign(p_malignant=[0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    (c,) = compare_sets(a, b)
    # A: pairs (pos > neg) 0.4>{0.1,0.3}, 0.8>all, 0.2>{0.1}: 6 of 9. B: 9 of 9.
    assert c.auc_a.value == pytest.approx(6 / 9) and c.auc_b.value == 1.0
    assert c.difference.value == pytest.approx(6 / 9 - 1)
    test = delong_test(a["y_malignant"], a["p_malignant"], b["p_malignant"])
    assert (c.z, c.p_value) == (pytest.approx(test["z"]), pytest.approx(test["p_value"]))
    assert c.difference.ci_low < c.difference.value < c.difference.ci_high
    assert 0.0 < c.p_value < 1.0 and c.z < 0


def _frame(p, scores_lipoma=None):
    """8 cases: 4 malignant, 2 lipoma, 2 hemangioma; DLM-1 scores ``p``."""
    labels = ["malignant"] * 4 + ["lipoma", "lipoma", "hemangioma", "hemangioma"]
    df = pd.DataFrame({"case_id": [f"c{i}" for i in range(8)], "cohort": "v", "label": labels,
                       "y_malignant": [1] * 4 + [0] * 4, "p_malignant": p})  # fmt: skip
    df["score_lipoma"] = scores_lipoma if scores_lipoma is not None else [0.5] * 8
    return df


def test_compare_tasks_known_counts():
    from softmass_core.cohorts.compare import compare_tasks

    a = _frame([0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.4, 0.6], [0, 0, 0, 0, 0.9, 0.8, 0.1, 0.2])
    b = _frame([0.9, 0.4, 0.3, 0.2, 0.1, 0.3, 0.4, 0.2], [0, 0, 0, 0, 0.3, 0.8, 0.4, 0.2])
    out = compare_tasks(a, b, {"dlm1": 0.5, "lipoma": 0.5}, {"dlm1": 0.5, "lipoma": 0.5})
    dlm1, lipoma = out
    assert (dlm1.task, dlm1.n, dlm1.n_positive) == ("dlm1", 8, 4)
    # A calls 3 of 4 cancers and 3 of 4 benign right; B calls 1 cancer and all 4 benign right.
    assert dlm1.accuracy_a == 6 / 8 and dlm1.accuracy_b == 5 / 8
    # discordant: A right/B wrong on c1, c2; A wrong/B right on c7
    assert (dlm1.mcnemar["b"], dlm1.mcnemar["c"], dlm1.mcnemar["method"]) == (2, 1, "exact binomial")
    assert dlm1.auc_a.value == pytest.approx(13 / 16) and dlm1.difference.value == pytest.approx(
        dlm1.auc_a.value - dlm1.auc_b.value
    )
    # lipoma is one-vs-rest on the 4 benign cases of known subtype
    assert (lipoma.task, lipoma.n, lipoma.n_positive) == ("lipoma", 4, 2)
    assert lipoma.auc_a.value == 1.0 and lipoma.auc_b.value == pytest.approx(0.75)
    assert set(lipoma.to_dict()) >= {"auc_a", "auc_b", "difference", "p_delong", "mcnemar"}


def test_compare_command_on_two_tiny_sets(tmp_path, capsys):
    from softmass_core.cli import main
    from tests.conftest import make_tiny_weight_set
    from tests.test_train import _tiny_cohort

    a, b = make_tiny_weight_set(tmp_path / "a", seed=1), make_tiny_weight_set(tmp_path / "b", seed=2)
    (tmp_path / "c").mkdir()
    csv = _tiny_cohort(tmp_path / "c")
    assert main(["compare", "--weights", str(a), "--weights", str(b), "--cohort", str(csv), "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tasks = {(c["cohort"], c["task"]) for c in out["comparisons"]}
    assert ("validation", "dlm1") in tasks and ("training", "lipoma") in tasks
    assert main(["compare", "--weights", str(a), "--cohort", str(csv)]) == 2
    assert "exactly twice" in capsys.readouterr().err
    assert main(["compare", "--weights", str(a), "--weights", str(b), "--cohort", str(csv), "--quiet"]) == 0
    assert "McNemar compares" in capsys.readouterr().out
