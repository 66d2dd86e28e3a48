"""Tests of softmass_core.stats against published known answers.

Sources of the known answers (each number below was checked against them):

* Long et al., BMC Medicine 2023 (``/work/shared/seed/paper.md``), Table 2:
  accuracy, sensitivity, specificity (Clopper-Pearson), PPV and NPV (MedCalc /
  Mercaldo logit) with 95% CIs for DLM-1.  The 2x2 counts are reconstructed
  from the published percentages and the cohort sizes in the table footnote.
* pROC (Robin et al., BMC Bioinformatics 2011;12:77) on its aSAH data set:
  the s100b AUC 0.7314 with DeLong 95% CI 0.6301-0.8326 printed in its
  documentation, and the DeLong variances, CI and paired ``roc.test`` results
  asserted in pROC's own test suite (tests/testthat/test-var.R,
  test-ci.auc.R, test-roc.test.R).
* Hanley & McNeil, Radiology 1982;143:29-36: CT ratings of 109 patients,
  AUC 0.893.
* Armitage & Berry (1994, p. 127) via the StatsDirect manual: McNemar's test
  on two culture media, exact P = 0.0129, Yates chi-square 5.785714, P = 0.0162.
* McDonald, Handbook of Biological Statistics (one-way ANOVA, mussel shell
  data, also the scipy.stats.f_oneway example): F = 7.12, P = 2.8e-4.
* scikit-learn's ``roc_curve`` documentation example.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from softmass_core.errors import MetricsError
from softmass_core.stats.binary import binary_metrics, empty_metrics
from softmass_core.stats.counts import confusion_counts
from softmass_core.stats.curves import calibration_curve, threshold_sweep
from softmass_core.stats.estimate import Estimate, UndefinedMetricWarning
from softmass_core.stats.hypothesis_tests import anova_oneway, chi_square_test, mcnemar_test
from softmass_core.stats.intervals import clopper_pearson_ci, f1_bootstrap, logit_ci
from softmass_core.stats.roc import auc_bootstrap, auc_delong, delong_test, roc_curve
from softmass_core.stats.tables import baseline_table

# ---------------------------------------------------------------------------
# Published data sets
# ---------------------------------------------------------------------------

# pROC's aSAH data (41 "Poor" outcomes = positives, 72 "Good" = negatives), in
# pROC's row order.  The scores are rank codes rebuilt from the DeLong
# placements that pROC publishes for each patient in
# tests/testthat/helper-deLongPlacementsCpp-expected.R; the rebuilt codes
# reproduce those placements exactly, and the AUC and DeLong statistics depend
# on nothing else.  For wfns the codes are the WFNS grades 1-5 themselves.
ASAH_POS = {
    "ndka": [38, 25, 29, 36, 4, 10, 19, 44, 48, 44, 44, 15, 33, 40, 6, 8, 31, 2, 52, 40, 17, 19, 23, 31, 42, 27, 40, 8, 50, 35, 4, 13, 40, 4, 12, 44, 21, 33, 46, 19, 36],
    "wfns": [3, 2, 4, 5, 5, 5, 5, 2, 5, 2, 1, 2, 5, 4, 4, 2, 5, 5, 5, 2, 5, 2, 5, 2, 4, 5, 4, 4, 1, 4, 4, 2, 2, 5, 5, 2, 2, 5, 5, 5, 5],
    "s100b": [9, 6, 12, 8, 26, 31, 29, 3, 20, 5, 3, 24, 22, 28, 31, 16, 31, 31, 31, 3, 31, 18, 1, 5, 14, 31, 16, 31, 4, 16, 9, 6, 7, 14, 31, 10, 31, 19, 31, 31, 26],
}  # fmt: skip
ASAH_NEG = {
    "ndka": [1, 9, 7, 18, 5, 35, 5, 39, 30, 39, 37, 47, 11, 5, 24, 5, 5, 51, 26, 14, 14, 39, 3, 7, 5, 13, 28, 7, 34, 45, 7, 5, 24, 11, 7, 28, 43, 41, 16, 22, 49, 5, 37, 14, 18, 18, 34, 3, 37, 24, 11, 18, 39, 18, 22, 7, 14, 18, 43, 9, 24, 27, 45, 20, 24, 11, 43, 16, 32, 41, 5, 30],
    "wfns": [1, 1, 1, 1, 5, 1, 2, 2, 1, 2, 2, 1, 1, 1, 2, 1, 2, 1, 1, 3, 4, 1, 4, 1, 5, 5, 1, 1, 2, 4, 1, 1, 2, 2, 1, 2, 1, 2, 2, 1, 1, 1, 1, 2, 1, 2, 1, 1, 3, 2, 4, 2, 1, 4, 1, 1, 5, 4, 2, 2, 1, 1, 1, 3, 1, 2, 2, 4, 4, 1, 1, 1],
    "s100b": [9, 10, 6, 2, 27, 13, 6, 6, 2, 4, 2, 5, 7, 3, 13, 3, 7, 9, 13, 2, 12, 10, 21, 5, 30, 27, 12, 3, 25, 27, 7, 4, 5, 4, 2, 9, 6, 10, 11, 2, 2, 5, 2, 5, 4, 12, 5, 4, 20, 7, 17, 3, 6, 19, 3, 2, 15, 23, 6, 11, 4, 10, 6, 3, 2, 13, 11, 27, 13, 11, 30, 28],
}  # fmt: skip
ASAH_LABELS = np.r_[np.ones(41, dtype=int), np.zeros(72, dtype=int)]


def asah(marker: str) -> np.ndarray:
    return np.r_[ASAH_POS[marker], ASAH_NEG[marker]].astype(float)


# Hanley & McNeil (1982), Table 1: CT ratings 1 (definitely normal) .. 5
# (definitely abnormal) of 58 normal and 51 abnormal patients.
HM_NORMAL = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
HM_ABNORMAL = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
HM_LABELS = np.r_[np.zeros(58, dtype=int), np.ones(51, dtype=int)]
HM_SCORES = np.r_[HM_NORMAL, HM_ABNORMAL].astype(float)

# Long et al. 2023, Table 2 (DLM-1), as (value, CI low, CI high) in percent,
# with the 2x2 counts that reproduce it.  Cohort sizes follow the footnote
# (training 617, validation 155, test A 156).  Test cohort B is left out: its
# accuracy and specificity fit 122 cases but its PPV/NPV intervals fit 123.
PAPER_TABLE2 = {
    "training": {
        "counts": {"tp": 27, "fp": 72, "fn": 5, "tn": 513},
        "accuracy": (87.5, 84.7, 90.0),
        "sensitivity": (84.4, 67.2, 94.7),
        "specificity": (87.7, 84.8, 90.2),
        "ppv": (27.3, 22.4, 32.8),
        "npv": (99.0, 97.9, 99.6),
        "f1": 0.412,
    },
    "validation": {
        "counts": {"tp": 8, "fp": 2, "fn": 0, "tn": 145},
        "accuracy": (98.7, 95.4, 99.8),
        "sensitivity": (100.0, 63.1, 100.0),
        "specificity": (98.6, 95.2, 99.8),
        "ppv": (80.0, 50.2, 94.1),
        # NPV 100% is printed as [100.0, 100.0]; MedCalc (and this module)
        # give the Clopper-Pearson interval at 100% instead, so only the
        # point value is compared.
        "npv": (100.0, None, None),
        "f1": 0.889,
    },
    "test_a": {
        "counts": {"tp": 2, "fp": 1, "fn": 3, "tn": 150},
        "accuracy": (97.4, 93.6, 99.3),
        "sensitivity": (40.0, 5.3, 85.3),
        "specificity": (99.3, 96.4, 100.0),
        "ppv": (66.7, 17.7, 94.9),
        "npv": (98.0, 96.1, 99.0),
        "f1": 0.5,
    },
}


def cases_from_counts(tp: int, fp: int, fn: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores (0.9 = called positive, 0.1 = called negative)."""
    labels = np.r_[np.ones(tp + fn, int), np.zeros(fp + tn, int)]
    scores = np.r_[np.full(tp, 0.9), np.full(fn, 0.1), np.full(fp, 0.9), np.full(tn, 0.1)]
    return labels, scores


def brute_force_delong_var(labels: np.ndarray, scores: np.ndarray) -> float:
    """DeLong (1988) variance from its definition, O(n1 * n0)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


# ---------------------------------------------------------------------------
# Estimate
# ---------------------------------------------------------------------------


def test_estimate_to_dict_is_json_safe_and_frozen():
    est = Estimate(0.5, math.nan, 0.9, "DeLong")
    assert est.to_dict() == {"value": 0.5, "ci_low": None, "ci_high": 0.9, "method": "DeLong"}
    json.dumps(est.to_dict(), allow_nan=False)
    with pytest.raises(AttributeError):
        est.value = 0.7  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Binomial intervals
# ---------------------------------------------------------------------------


def test_clopper_pearson_all_or_nothing_has_closed_form():
    # For k = 0 the upper bound is 1 - (alpha/2)^(1/n); 0/10 -> 0.3085.
    lo, hi = clopper_pearson_ci(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)
    assert hi == pytest.approx(0.3085, abs=5e-5)
    lo, hi = clopper_pearson_ci(10, 10)
    assert (lo, hi) == (pytest.approx(0.025 ** (1 / 10), abs=1e-12), 1.0)


@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 5), (8, 8), (27, 32), (513, 585), (17, 300)])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_clopper_pearson_matches_scipy_exact(k, n, alpha):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
    lo, hi = clopper_pearson_ci(k, n, alpha=alpha)
    assert lo == pytest.approx(expected.low, abs=1e-10)
    assert hi == pytest.approx(expected.high, abs=1e-10)


def test_clopper_pearson_empty_and_bad_input():
    assert all(math.isnan(x) for x in clopper_pearson_ci(0, 0))
    with pytest.raises(MetricsError, match="k must not exceed n"):
        clopper_pearson_ci(5, 3)
    with pytest.raises(MetricsError, match="2.5"):
        clopper_pearson_ci(2.5, 10)
    with pytest.raises(MetricsError, match="alpha"):
        clopper_pearson_ci(1, 10, alpha=5)


def test_logit_ci_mercaldo_reproduces_paper_ppv_and_npv():
    # Test cohort A: TP=2, FP=1, FN=3, TN=150 -> PPV 66.7 [17.7, 94.9], NPV 98.0 [96.1, 99.0].
    lo, hi = logit_ci(2, 3, n_positive=5, n_negative=151)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (17.7, 94.9)
    lo, hi = logit_ci(150, 153, n_positive=5, n_negative=151)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (96.1, 99.0)


def test_logit_ci_formulas():
    z = stats.norm.ppf(0.975)
    # Plain logit interval: Var(logit p) = 1/k + 1/(n - k).
    half = z * math.sqrt(1 / 30 + 1 / 70)
    expected = (1 / (1 + math.exp(-(math.log(30 / 70) - half))), 1 / (1 + math.exp(-(math.log(30 / 70) + half))))
    assert logit_ci(30, 100) == pytest.approx(expected, abs=1e-12)
    # Mercaldo's PPV variance written with Se and Sp: (1-Se)/(n1 Se) + Sp/(n0 (1-Sp)).
    tp, fn, fp, tn = 40, 10, 20, 130
    se, sp = tp / (tp + fn), tn / (tn + fp)
    var = (1 - se) / ((tp + fn) * se) + sp / ((fp + tn) * (1 - sp))
    centre = math.log(tp / fp)
    expected = tuple(1 / (1 + math.exp(-(centre + s * z * math.sqrt(var)))) for s in (-1, 1))
    assert logit_ci(tp, tp + fp, n_positive=tp + fn, n_negative=fp + tn) == pytest.approx(expected, abs=1e-12)


def test_logit_ci_falls_back_to_clopper_pearson_at_0_and_100_percent():
    assert logit_ci(0, 12, n_positive=5, n_negative=20) == clopper_pearson_ci(0, 12)
    assert logit_ci(12, 12) == clopper_pearson_ci(12, 12)
    assert all(math.isnan(x) for x in logit_ci(0, 0))


def test_logit_ci_rejects_inconsistent_class_counts():
    with pytest.raises(MetricsError, match="both n_positive and n_negative"):
        logit_ci(3, 10, n_positive=5)
    with pytest.raises(MetricsError, match="inconsistent"):
        logit_ci(3, 10, n_positive=2, n_negative=2)


# ---------------------------------------------------------------------------
# binary_metrics against the paper's Table 2
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cohort", sorted(PAPER_TABLE2))
def test_binary_metrics_reproduces_paper_table2(cohort):
    row = PAPER_TABLE2[cohort]
    labels, scores = cases_from_counts(**row["counts"])
    out = binary_metrics(labels, scores, threshold=0.5, n_boot=200)
    assert out["counts"] == row["counts"]
    for name in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        got = out["metrics"][name]
        for key, published in zip(("value", "ci_low", "ci_high"), row[name], strict=True):
            if published is not None:
                assert 100 * got[key] == pytest.approx(published, abs=0.05 + 1e-9), (name, key)
    assert out["metrics"]["f1"]["value"] == pytest.approx(row["f1"], abs=5e-4)


def test_binary_metrics_structure_and_methods():
    labels, scores = cases_from_counts(tp=27, fp=72, fn=5, tn=513)
    out = binary_metrics(labels, scores, threshold=0.5)
    json.dumps(out, allow_nan=False)
    assert set(out) == {"n", "n_positive", "threshold", "counts", "metrics", "undefined"}
    assert out["undefined"] == {}
    assert (out["n"], out["n_positive"], out["threshold"]) == (617, 32, 0.5)
    assert set(out["metrics"]) == {"auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"}
    methods = {k: v["method"] for k, v in out["metrics"].items()}
    assert methods == {
        "auc": "DeLong",
        "accuracy": "Clopper-Pearson",
        "sensitivity": "Clopper-Pearson",
        "specificity": "Clopper-Pearson",
        "ppv": "logit (Mercaldo)",
        "npv": "logit (Mercaldo)",
        "f1": "bootstrap percentile",
    }
    for est in out["metrics"].values():
        assert set(est) == {"value", "ci_low", "ci_high", "method"}
        assert 0.0 <= est["ci_low"] <= est["value"] <= est["ci_high"] <= 1.0


def test_binary_metrics_accepts_bools_and_any_score_range():
    labels = ASAH_LABELS.astype(bool)
    scores = asah("s100b") * 10.0 - 100.0  # far outside [0, 1]
    out = binary_metrics(labels, scores, threshold=-10.0)
    expected = confusion_counts(ASAH_LABELS, scores, threshold=-10.0)
    assert out["counts"] == expected
    assert out["metrics"]["auc"]["value"] == pytest.approx(0.7314, abs=5e-5)


def test_binary_metrics_is_seeded():
    labels, scores = cases_from_counts(tp=20, fp=7, fn=9, tn=60)
    a = binary_metrics(labels, scores, seed=3)
    b = binary_metrics(labels, scores, seed=3)
    c = binary_metrics(labels, scores, seed=4)
    assert a == b
    assert a["metrics"]["f1"] != c["metrics"]["f1"]


def test_binary_metrics_single_class_warns_and_returns_none():
    with pytest.warns(UndefinedMetricWarning, match="auc|AUC"):
        out = binary_metrics([0, 0, 0, 0], [0.1, 0.7, 0.3, 0.2])
    m = out["metrics"]
    assert m["auc"]["value"] is None and m["auc"]["ci_low"] is None
    assert m["sensitivity"]["value"] is None
    assert m["f1"]["value"] is None
    assert m["specificity"]["value"] == 0.75
    assert m["ppv"]["value"] == 0.0  # 0 of 1 called positive: defined, 0%
    json.dumps(out, allow_nan=False)


def test_binary_metrics_no_predicted_positive_makes_ppv_undefined():
    with pytest.warns(UndefinedMetricWarning, match="ppv"):
        out = binary_metrics([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], threshold=0.9)
    assert out["metrics"]["ppv"]["value"] is None
    assert out["metrics"]["f1"]["value"] == 0.0
    assert out["metrics"]["npv"]["value"] == 0.5


# ---------------------------------------------------------------------------
# AUC and DeLong
# ---------------------------------------------------------------------------


def test_auc_delong_matches_proc_documentation_for_asah_s100b():
    est = auc_delong(ASAH_LABELS, asah("s100b"))
    # pROC prints "Area under the curve: 0.7314, 95% CI: 0.6301-0.8326 (DeLong)".
    assert (round(est.value, 4), round(est.ci_low, 4), round(est.ci_high, 4)) == (0.7314, 0.6301, 0.8326)
    assert est.method == "DeLong"


@pytest.mark.parametrize(
    ("marker", "auc", "var"),
    [
        # pROC tests/testthat/test-var.R and test-roc.test.R
        ("wfns", 0.823678861788618, 0.00146991470882363),
        ("ndka", 0.611957994579946, 0.0031908105493913),
        ("s100b", 0.731368563685637, 0.00266868245717244),
    ],
)
def test_auc_delong_variance_matches_proc(marker, auc, var):
    est = auc_delong(ASAH_LABELS, asah(marker))
    assert est.value == pytest.approx(auc, abs=1e-12)
    z = stats.norm.ppf(0.975)
    se = (est.ci_high - est.ci_low) / (2 * z)
    assert se**2 == pytest.approx(var, rel=1e-9)
    assert brute_force_delong_var(ASAH_LABELS, asah(marker)) == pytest.approx(var, rel=1e-9)


def test_auc_delong_ci_matches_proc_ndka():
    # pROC tests/testthat/test-ci.auc.R: ci.auc(r.ndka)
    est = auc_delong(ASAH_LABELS, asah("ndka"))
    assert (est.ci_low, est.value, est.ci_high) == pytest.approx(
        (0.501244999271703, 0.611957994579946, 0.722670989888189), abs=1e-12
    )
    est90 = auc_delong(ASAH_LABELS, asah("ndka"), alpha=0.1)
    assert est90.ci_low > est.ci_low and est90.ci_high < est.ci_high


def test_auc_hanley_mcneil_ct_data():
    est = auc_delong(HM_LABELS, HM_SCORES)
    assert round(est.value, 3) == 0.893  # Hanley & McNeil 1982
    u = stats.mannwhitneyu(HM_ABNORMAL, HM_NORMAL).statistic
    assert est.value == pytest.approx(u / (51 * 58), abs=1e-12)
    se = math.sqrt(brute_force_delong_var(HM_LABELS, HM_SCORES))
    z = stats.norm.ppf(0.975)
    assert (est.ci_low, est.ci_high) == pytest.approx((est.value - z * se, est.value + z * se), abs=1e-12)


def test_auc_equals_mann_whitney_u_on_random_ties():
    rng = np.random.default_rng(7)
    labels = rng.random(300) < 0.4
    scores = rng.integers(0, 12, size=300).astype(float) + labels
    u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert auc_delong(labels, scores).value == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)


def test_auc_delong_ci_is_clipped_to_unit_interval():
    labels = [0, 0, 0, 1, 1, 1]
    est = auc_delong(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert (est.value, est.ci_low, est.ci_high) == (1.0, 1.0, 1.0)
    est = auc_delong(labels, [0.1, 0.2, 0.75, 0.7, 0.8, 0.9])
    assert est.ci_high == 1.0 and est.ci_low < est.value < 1.0


def test_auc_delong_undefined_cases_warn():
    with pytest.warns(UndefinedMetricWarning, match="one class"):
        est = auc_delong([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(est.value) and math.isnan(est.ci_low)
    with pytest.warns(UndefinedMetricWarning, match="at least 2 positives"):
        est = auc_delong([1, 0, 0, 0], [0.9, 0.1, 0.5, 0.95])
    assert est.value == pytest.approx(2 / 3) and math.isnan(est.ci_high)


def test_auc_bootstrap_is_seeded_and_close_to_delong():
    a = auc_bootstrap(HM_LABELS, HM_SCORES, n_boot=2000, seed=11)
    b = auc_bootstrap(HM_LABELS, HM_SCORES, n_boot=2000, seed=11)
    assert a == b
    assert a.value == pytest.approx(auc_delong(HM_LABELS, HM_SCORES).value, abs=1e-12)
    delong = auc_delong(HM_LABELS, HM_SCORES)
    assert a.ci_low < a.value < a.ci_high
    assert a.ci_low == pytest.approx(delong.ci_low, abs=0.02)
    assert a.ci_high == pytest.approx(delong.ci_high, abs=0.02)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(auc_bootstrap([0, 0], [0.1, 0.2]).value)


def test_delong_test_matches_proc_roc_test():
    # pROC tests/testthat/test-roc.test.R: roc.test(r.wfns, r.s100b) etc.
    res = delong_test(ASAH_LABELS, asah("wfns"), asah("s100b"))
    assert res["z"] == pytest.approx(2.20898359144091, abs=1e-10)
    assert res["p_value"] == pytest.approx(0.0271757822291882, abs=1e-12)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((0.0104061769564846, 0.174214419249478), abs=1e-12)
    assert res["auc_difference"] == pytest.approx(res["auc_a"] - res["auc_b"])
    assert res["method"] == "DeLong paired"
    res = delong_test(ASAH_LABELS, asah("wfns"), asah("ndka"))
    assert (res["z"], res["p_value"]) == pytest.approx((2.79777591868904, 0.00514557970691098), abs=1e-10)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((0.0634011709339876, 0.3600405634833566), abs=1e-12)
    res = delong_test(ASAH_LABELS, asah("ndka"), asah("s100b"))
    assert (res["z"], res["p_value"]) == pytest.approx((-1.39077002573558, 0.164295175223054), abs=1e-10)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((-0.2876917446341914, 0.0488706064228094), abs=1e-12)


def test_delong_test_identical_columns_and_symmetry():
    res = delong_test(ASAH_LABELS, asah("wfns"), asah("wfns"))
    assert (res["auc_difference"], res["z"], res["p_value"]) == (0.0, 0.0, 1.0)
    ab = delong_test(ASAH_LABELS, asah("s100b"), asah("wfns"))
    ba = delong_test(ASAH_LABELS, asah("wfns"), asah("s100b"))
    assert ab["z"] == pytest.approx(-ba["z"]) and ab["p_value"] == pytest.approx(ba["p_value"])


def test_delong_test_degenerate_variance_warns():
    labels = [0, 0, 0, 1, 1, 1]
    perfect = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    with pytest.warns(UndefinedMetricWarning, match="variance"):
        res = delong_test(labels, perfect, [0.5] * 6)
    assert res["auc_difference"] == 0.5 and math.isnan(res["p_value"])


# ---------------------------------------------------------------------------
# ROC curve and counts
# ---------------------------------------------------------------------------


def test_roc_curve_sklearn_documentation_example():
    fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [math.inf, 0.8, 0.4, 0.35, 0.1]


def test_roc_curve_ties_and_area():
    fpr, tpr, thr = roc_curve(HM_LABELS, HM_SCORES)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thr.size == 6  # +inf and the five ratings: tied ratings are one diagonal step
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    # Trapezoidal area under the empirical curve equals the Mann-Whitney AUC.
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(auc_delong(HM_LABELS, HM_SCORES).value, abs=1e-12)
    # The curve passes through the counts at each threshold (score >= threshold).
    for f, t, th in zip(fpr[1:], tpr[1:], thr[1:], strict=True):
        c = confusion_counts(HM_LABELS, HM_SCORES, threshold=th)
        assert (f, t) == (c["fp"] / 58, c["tp"] / 51)


def test_roc_curve_single_class_warns():
    with pytest.warns(UndefinedMetricWarning):
        fpr, tpr, _ = roc_curve([1, 1], [0.3, 0.6])
    assert np.isnan(fpr).all() and tpr[-1] == 1.0


def test_confusion_counts_uses_greater_or_equal():
    assert confusion_counts([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == {"tp": 2, "fp": 1, "fn": 0, "tn": 1}
    assert confusion_counts([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], threshold=0.51) == {"tp": 1, "fp": 0, "fn": 1, "tn": 2}


# ---------------------------------------------------------------------------
# F1 bootstrap
# ---------------------------------------------------------------------------


def test_f1_bootstrap_matches_an_explicit_stratified_resampling():
    labels, scores = cases_from_counts(tp=25, fp=10, fn=15, tn=50)
    predictions = scores >= 0.5
    est = f1_bootstrap(labels, predictions, n_boot=4000, seed=1)
    assert est.value == pytest.approx(2 * 25 / (2 * 25 + 10 + 15))
    # Resample cases by index, positives and negatives separately.
    rng = np.random.default_rng(99)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    ip = pos[rng.integers(0, pos.size, size=(4000, pos.size))]
    ineg = neg[rng.integers(0, neg.size, size=(4000, neg.size))]
    tp = predictions[ip].sum(axis=1)
    fp = predictions[ineg].sum(axis=1)
    f1 = 2 * tp / (2 * tp + fp + (pos.size - tp))
    lo, hi = np.percentile(f1, [2.5, 97.5])
    assert est.ci_low == pytest.approx(lo, abs=0.02)
    assert est.ci_high == pytest.approx(hi, abs=0.02)


def test_f1_bootstrap_seeded_and_edge_cases():
    labels = [1, 1, 1, 0, 0, 0, 0]
    preds = [1, 0, 1, 1, 0, 0, 0]
    assert f1_bootstrap(labels, preds, seed=5) == f1_bootstrap(labels, preds, seed=5)
    perfect = f1_bootstrap(labels, labels)
    assert (perfect.value, perfect.ci_low, perfect.ci_high) == (1.0, 1.0, 1.0)
    with pytest.warns(UndefinedMetricWarning, match="positive"):
        assert math.isnan(f1_bootstrap([0, 0, 0], [1, 0, 0]).value)
    with pytest.raises(MetricsError, match="predictions"):
        f1_bootstrap([1, 0], [0.3, 0.7])
    with pytest.raises(MetricsError, match="n_boot"):
        f1_bootstrap(labels, preds, n_boot=0)


# ---------------------------------------------------------------------------
# Reader-study and baseline tests
# ---------------------------------------------------------------------------


def _paired(a: int, b: int, c: int, d: int) -> tuple[list[int], list[int]]:
    """Pairs: a both correct, b correct->wrong, c wrong->correct, d both wrong."""
    before = [1] * a + [1] * b + [0] * c + [0] * d
    after = [1] * a + [0] * b + [1] * c + [0] * d
    return before, after


def test_mcnemar_armitage_berry_culture_media():
    # Armitage & Berry 1994 p.127 (StatsDirect manual): 20, 12 / 2, 16.
    before, after = _paired(20, 12, 2, 16)
    res = mcnemar_test(before, after)
    assert (res["n"], res["b"], res["c"]) == (50, 12, 2)
    assert res["method"] == "exact binomial"
    assert round(res["p_value"], 4) == 0.0129
    forced = mcnemar_test(before, after, exact=False)
    assert forced["statistic"] == pytest.approx(5.785714, abs=5e-7)
    assert round(forced["p_value"], 4) == 0.0162
    assert forced["method"] == "chi-square with continuity correction"


def test_mcnemar_exact_matches_binomial_test_and_switches_at_25():
    # Fagerland et al. 2013 (Bentur data): b=1, c=7, exact p = 2 * P(X <= 1), X ~ Bin(8, 1/2).
    res = mcnemar_test(*_paired(1, 1, 7, 12))
    assert res["p_value"] == pytest.approx(2 * (1 + 8) / 256)
    assert res["p_value"] == pytest.approx(stats.binomtest(1, 8).pvalue)
    assert mcnemar_test(*_paired(5, 3, 3, 5))["p_value"] == 1.0
    big = mcnemar_test(*_paired(40, 10, 15, 35))  # b + c = 25
    assert big["method"] == "chi-square with continuity correction"
    assert big["statistic"] == pytest.approx((15 - 10 - 1) ** 2 / 25)
    assert big["p_value"] == pytest.approx(stats.chi2.sf(16 / 25, 1))
    with pytest.raises(MetricsError, match="same cases"):
        mcnemar_test([1, 0], [1, 0, 1])


def test_chi_square_published_worked_example():
    # Gender x party (wizedu worked solution): chi2 = 6.891667643, p = 0.03187817.
    res = chi_square_test([[36, 45, 25], [51, 38, 13]])
    assert res["statistic"] == pytest.approx(6.891667643, abs=1e-8)
    assert res["p_value"] == pytest.approx(0.03187817, abs=1e-8)
    assert res["dof"] == 2


def test_chi_square_edge_cases():
    # All-zero rows/columns are dropped; 2x2 tables get Yates' correction like scipy.
    expected = stats.chi2_contingency([[10, 20], [30, 15]])
    res = chi_square_test([[10, 0, 20], [0, 0, 0], [30, 0, 15]])
    assert res["statistic"] == pytest.approx(expected.statistic) and res["dof"] == 1
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(chi_square_test([[5, 3], [0, 0]])["p_value"])
    with pytest.raises(MetricsError, match="-1"):
        chi_square_test([[1, -1], [2, 3]])


def test_anova_mcdonald_mussel_shells():
    tillamook = [0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836]
    newport = [0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725]
    petersburg = [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105]
    magadan = [0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689]
    tvarminne = [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045]
    res = anova_oneway(tillamook, newport, petersburg, magadan, tvarminne)
    assert round(res["statistic"], 2) == 7.12
    assert res["p_value"] == pytest.approx(2.8e-4, abs=5e-6)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(anova_oneway([1.0, 1.0], [1.0])["p_value"])
    with pytest.raises(MetricsError, match="nan"):
        anova_oneway([1.0, float("nan")], [2.0, 3.0])


def _cohort_frame() -> pd.DataFrame:
    rows = []
    spec = {"train": (30, 40.0, "lipoma"), "valid": (20, 50.0, "malignant"), "test_a": (10, 45.0, "hemangioma")}
    for cohort, (n, mean_age, main_label) in spec.items():
        for i in range(n):
            rows.append(
                {
                    "cohort": cohort,
                    "age": mean_age + (i % 5) - 2,
                    "sex": "M" if i % 2 == 0 else "female",
                    "label": main_label if i % 3 else "epidermal_cyst",
                }
            )
    return pd.DataFrame(rows)


def test_baseline_table_shape_values_and_tests():
    df = _cohort_frame()
    table = baseline_table(df)
    assert list(table.columns) == ["train", "valid", "test_a", "p"]
    assert table.loc["n", ["train", "valid", "test_a"]].tolist() == ["30", "20", "10"]
    assert table.loc["Age (years), mean ± SD", "train"] == "40.0 ± 1.4"
    assert table.loc["Male, n (%)", "valid"] == "10 (50.0%)"
    assert table.loc["Malignant, n (%)", "valid"] == "13 (65.0%)"
    assert table.loc["Epidermal cyst, n (%)", "train"] == "10 (33.3%)"
    ages = [df.age[df.cohort == c] for c in ("train", "valid", "test_a")]
    p_age = stats.f_oneway(*ages).pvalue
    assert table.loc["Age (years), mean ± SD", "p"] == ("<0.001 (ANOVA)" if p_age < 0.001 else f"{p_age:.3f} (ANOVA)")
    assert table.loc["Male, n (%)", "p"].endswith("(chi-square)")
    # The class row counts the labelled cases of each cohort (no empty cells) and holds the chi-square test.
    assert table.loc["Class, n"].tolist()[:3] == ["30", "20", "10"]
    assert table.loc["Class, n", "p"].startswith("<0.001") and "Label" not in table.index
    assert baseline_table(df, label_title="Benign subtype").index.tolist().count("Benign subtype, n") == 1
    # Labels follow the order of softmass_core.labels.COHORT_LABELS.
    label_rows = [r for r in table.index if r.endswith(", n (%)") and r != "Male, n (%)"]
    assert label_rows == ["Malignant, n (%)", "Lipoma, n (%)", "Hemangioma, n (%)", "Epidermal cyst, n (%)"]


def test_baseline_table_tolerates_missing_age_and_sex():
    df = _cohort_frame().drop(columns=["age"])
    df["sex"] = None
    table = baseline_table(df)
    assert "Age (years), mean ± SD" not in table.index
    assert "Male, n (%)" not in table.index
    df = _cohort_frame()
    df.loc[df.index[:5], "sex"] = np.nan
    df.loc[df.index[:3], "age"] = np.nan
    table = baseline_table(df)
    assert table.loc["Male, n (%)", "train"] == "12 (48.0%)"  # 25 with known sex
    with pytest.raises(MetricsError, match="'X'"):
        baseline_table(_cohort_frame().assign(sex="X"))
    with pytest.raises(MetricsError, match="cohort"):
        baseline_table(_cohort_frame().drop(columns=["cohort"]))


# ---------------------------------------------------------------------------
# Calibration and threshold sweep
# ---------------------------------------------------------------------------


def test_calibration_curve_bins():
    labels = [0, 0, 1, 1, 1, 0]
    scores = [0.05, 0.15, 0.12, 0.95, 1.0, 0.55]
    out = calibration_curve(labels, scores, n_bins=10)
    assert out["count"].tolist() == [1, 2, 1, 2]
    assert out["mean_predicted"] == pytest.approx([0.05, 0.135, 0.55, 0.975])
    assert out["fraction_positive"] == pytest.approx([0.0, 0.5, 0.0, 1.0])
    with pytest.raises(MetricsError, match="1.5"):
        calibration_curve([0, 1], [0.2, 1.5])


def test_threshold_sweep_matches_confusion_counts():
    labels, scores = ASAH_LABELS, asah("s100b") / 31.0
    thresholds = np.linspace(0.0, 1.05, 22)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sweep never warns
        table = threshold_sweep(labels, scores, thresholds)
    assert list(table.columns) == [
        "threshold", "tp", "fp", "fn", "tn", "sensitivity", "specificity", "ppv", "npv", "accuracy",
    ]  # fmt: skip
    for _, row in table.iterrows():
        c = confusion_counts(labels, scores, threshold=row.threshold)
        assert (row.tp, row.fp, row.fn, row.tn) == (c["tp"], c["fp"], c["fn"], c["tn"])
        assert row.sensitivity == pytest.approx(c["tp"] / 41)
        assert row.accuracy == pytest.approx((c["tp"] + c["tn"]) / 113)
    assert math.isnan(table.ppv.iloc[-1])  # nothing scores >= 1.05
    assert table.sensitivity.iloc[0] == 1.0


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([[0, 1], [1, 0]], [0.1, 0.2, 0.3, 0.4], "shape"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "found 2 at index 2"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "nan at index 1"),
        ([0, 1, 1], [0.1, 0.2, float("inf")], "inf at index 2"),
        (["benign", "malignant"], [0.1, 0.2], "'benign'"),
        ([0, 1, float("nan")], [0.1, 0.2, 0.3], "NaN at index 2"),
        ([0, 1], [0.1, 0.2, 0.3], "same length"),
        ([], [], "empty"),
        ([0, 1], ["a", "b"], "'a'"),
    ],
)
def test_malformed_input_raises_metrics_error(labels, scores, message):
    with pytest.raises(MetricsError, match=message):
        binary_metrics(labels, scores)


def test_bad_options_raise_metrics_error():
    with pytest.raises(MetricsError, match="alpha"):
        auc_delong([0, 1], [0.1, 0.2], alpha=0.0)
    with pytest.raises(MetricsError, match="threshold"):
        confusion_counts([0, 1], [0.1, 0.2], threshold=float("nan"))
    with pytest.raises(MetricsError, match="n_bins"):
        calibration_curve([0, 1], [0.1, 0.2], n_bins=0)
    with pytest.raises(TypeError):
        binary_metrics([0, 1], [0.1, 0.2], 0.5)  # options are keyword-only


def test_predictive_value_interval_never_collapses_when_nothing_is_called_positive():
    from softmass_core.stats.binary import binary_metrics

    y = np.array([1] * 5 + [0] * 95)
    s = np.zeros(100)  # nothing reaches the threshold
    with pytest.warns(UndefinedMetricWarning, match="ppv is undefined"):
        m = binary_metrics(y, s, threshold=0.5, n_boot=200)
    assert m["metrics"]["ppv"]["value"] is None
    npv = m["metrics"]["npv"]
    assert npv["value"] == pytest.approx(0.95)
    assert npv["ci_low"] < 0.95 < npv["ci_high"]
    assert "plain" in npv["method"]


def test_binary_metrics_says_why_each_undefined_metric_is_missing():
    with pytest.warns(UndefinedMetricWarning, match="specificity"):
        out = binary_metrics([1, 1, 1, 1], [0.9, 0.2, 0.7, 0.6], threshold=0.5, n_boot=50)
    assert out["metrics"]["sensitivity"]["value"] == pytest.approx(0.75)
    assert out["undefined"] == {
        "auc": "only one class present (4 positive, 0 negative)",
        "specificity": "no negative cases",
    }
    with pytest.warns(UndefinedMetricWarning, match="ppv"):
        out = binary_metrics([0, 0, 1], [0.1, 0.2, 0.3], threshold=0.9, n_boot=50)
    assert out["undefined"] == {"ppv": "no case scored >= 0.9"}
    assert out["metrics"]["f1"]["value"] == 0.0  # defined: no true positive among 1 positive


def test_empty_metrics_has_the_binary_metrics_shape_with_every_value_missing():
    full = binary_metrics(*cases_from_counts(tp=27, fp=72, fn=5, tn=513), n_boot=50)
    empty = empty_metrics(threshold=0.3, reason="no case of a known benign subtype in this cohort")
    json.dumps(empty, allow_nan=False)
    assert set(empty) == set(full) and set(empty["metrics"]) == set(full["metrics"])
    assert {k: v["method"] for k, v in empty["metrics"].items()} == {k: v["method"] for k, v in full["metrics"].items()}
    assert all(v["value"] is None and v["ci_low"] is None for v in empty["metrics"].values())
    assert set(empty["undefined"].values()) == {"no case of a known benign subtype in this cohort"}
    assert (empty["n"], empty["threshold"]) == (0, 0.3)


# ---------------------------------------------------------------------------
# Where a library computes the same thing: agreement, and the edge cases kept
# ---------------------------------------------------------------------------


def test_rank_auc_agrees_with_sklearn_and_delong():
    from sklearn.metrics import roc_auc_score

    from softmass_core.stats.roc import rank_auc

    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(6, 200))
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        s = np.round(rng.random(n), 1)  # many ties
        # sklearn's trapezoid area rounds differently (one unit in the last place at most) ...
        assert rank_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        # ... while the rank sum is the DeLong AUC bit for bit, which is why it is kept.
        assert rank_auc(y, s) == auc_delong(y, s).value
    assert math.isnan(rank_auc([1, 1], [0.2, 0.3]))  # sklearn raises here; one class is NaN


def test_roc_curve_is_sklearns_with_every_threshold_kept():
    from sklearn.metrics import roc_curve as sk_roc_curve

    y, s = HM_LABELS, HM_SCORES
    ours = roc_curve(y, s)
    theirs = sk_roc_curve(y, s, drop_intermediate=False)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert ours[2][0] == np.inf and ours[2].size == 6  # 5 distinct ratings + the (0, 0) point


def test_confusion_counts_match_sklearn():
    from sklearn.metrics import confusion_matrix

    y, s = ASAH_LABELS, asah("ndka")
    rng = np.random.default_rng(0)
    for t in (1.0, 20.0, 52.0, 53.0, 1e9, -1e9):
        c = confusion_counts(y, s, threshold=t)
        tn, fp, fn, tp = confusion_matrix(y, (s >= t).astype(int), labels=[0, 1]).ravel()
        assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (tp, fp, fn, tn)
    for _ in range(20):  # random tables, all-one-class ones included
        y, s = rng.random(30) < rng.random(), rng.random(30)
        t = float(rng.random())
        c = confusion_counts(y, s, threshold=t)
        tn, fp, fn, tp = confusion_matrix(y, (s >= t).astype(int), labels=[0, 1]).ravel()
        assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (tp, fp, fn, tn)


def test_calibration_curve_agrees_with_sklearn_off_the_bin_edges():
    from sklearn.calibration import calibration_curve as sk_calibration_curve

    rng = np.random.default_rng(3)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    ours = calibration_curve(y, p, n_bins=10)
    frac, mean = sk_calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(ours["mean_predicted"], mean)
    np.testing.assert_allclose(ours["fraction_positive"], frac)
    # On an edge they differ: sklearn's bins are closed on the right, ours (as documented) on the left.
    edge = calibration_curve([0, 1], [0.1, 0.3], n_bins=10)
    assert edge["mean_predicted"].tolist() == [0.1, 0.3] and edge["count"].tolist() == [1, 1]
    frac, mean = sk_calibration_curve([0, 1, 1], [0.0, 0.1, 0.15], n_bins=10)
    assert mean.tolist() == pytest.approx([0.05, 0.15])  # sklearn puts 0.1 with 0.0
    ours = calibration_curve([0, 1, 1], [0.0, 0.1, 0.15], n_bins=10)
    assert ours["mean_predicted"].tolist() == pytest.approx([0.0, 0.125])  # here it goes with 0.15


def test_mcnemar_is_statsmodels_with_the_no_discordant_pair_case_kept():
    from statsmodels.stats.contingency_tables import mcnemar

    for a, b, c, d in [(20, 12, 2, 16), (1, 1, 7, 12), (40, 10, 15, 35), (3, 0, 0, 4)]:
        for exact in (True, False):
            if not exact and b + c == 0:
                continue
            ours = mcnemar_test(*_paired(a, b, c, d), exact=exact)
            theirs = mcnemar([[a, b], [c, d]], exact=exact, correction=True)
            assert (ours["statistic"], ours["p_value"]) == (float(theirs.statistic), float(theirs.pvalue))
    # No discordant pair: the exact test says p = 1; chi-square is 0/0, NaN with our warning (statsmodels
    # would return NaN with a numpy RuntimeWarning).
    assert mcnemar_test(*_paired(3, 0, 0, 4))["p_value"] == 1.0
    with pytest.warns(UndefinedMetricWarning, match="No discordant pairs"):
        res = mcnemar_test(*_paired(3, 0, 0, 4), exact=False)
    assert math.isnan(res["statistic"]) and math.isnan(res["p_value"])


def test_clopper_pearson_is_scipys_exact_interval_with_n_zero_kept():
    for k, n in [(0, 1), (3, 17), (17, 17), (50, 100)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="exact")
        assert clopper_pearson_ci(k, n, alpha=0.1) == pytest.approx((ci.low, ci.high), abs=1e-12)
    with pytest.raises(ValueError):
        stats.binomtest(0, 0)  # scipy refuses n = 0 ...
    assert all(math.isnan(x) for x in clopper_pearson_ci(0, 0))  # ... the interval of no case is NaN


def test_format_p_is_the_one_p_value_formatter():
    from softmass_core.stats.formatting import format_p

    assert format_p(0.04213) == "0.042"
    assert format_p(0.0009) == "<0.001"
    assert format_p(0.001) == "0.001"
    assert format_p(float("nan")) == "n/a" and format_p(None) == "n/a"
    assert format_p(0.5, "ANOVA") == "0.500 (ANOVA)"
    assert format_p(float("nan"), "chi-square") == "n/a (chi-square)"


def test_decision_curve_against_a_hand_calculation():
    from softmass_core.stats.decision import DECISION_THRESHOLDS, decision_curve

    y = [1, 1, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.4, 0.15, 0.35, 0.2, 0.05, 0.6, 0.1]
    rows = {r["threshold"]: r for r in decision_curve(y, p)}
    assert list(rows) == list(DECISION_THRESHOLDS) and len(rows) == 99
    # pt = 0.30: called 0.9, 0.4 (TP) and 0.35, 0.6 (FP); odds 3/7
    assert rows[0.3]["net_benefit"] == pytest.approx(2 / 8 - 2 / 8 * 3 / 7)
    assert rows[0.3]["treat_all"] == pytest.approx(3 / 8 - 5 / 8 * 3 / 7)
    # pt = 0.5: TP 0.9, FP 0.6, odds 1
    assert rows[0.5]["net_benefit"] == pytest.approx(1 / 8 - 1 / 8)
    # a score equal to the threshold is called positive
    assert decision_curve([1, 0], [0.4, 0.1], [0.4])[0]["net_benefit"] == pytest.approx(1 / 2)
    # one class only: still defined (treat all = -odds when nobody is sick)
    none_sick = decision_curve([0, 0], [0.8, 0.1], [0.2])[0]
    assert none_sick["net_benefit"] == pytest.approx(-1 / 2 * 0.25) and none_sick["treat_all"] == pytest.approx(-0.25)
    with pytest.raises(MetricsError, match="strictly between 0 and 1"):
        decision_curve(y, p, [0.0, 0.5])
