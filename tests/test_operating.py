"""Operating points (rule-out, balanced, rule-in), the score interval and the indeterminate verdict (issue 17)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from softmass_core.cli import main
from softmass_core.errors import ManifestError, SoftmassError
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.points import needs_dlm2, result_at
from softmass_core.io.roi import Roi
from softmass_core.training.interval import conformal_halfwidth, coverage, perturb_roi
from softmass_core.weights import operating
from softmass_core.weights.manifest import read_manifest
from softmass_core.weights.modelcard import update_manifest
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import synthetic_rgb

# --------------------------------------------------------------------------- choosing on a toy cohort

# 20 benign scoring 0.01..0.20 and 20 malignant scoring 0.11..0.30: ten scores tied across the classes.
Y = np.array([0] * 20 + [1] * 20)
S = np.array([k / 100 for k in range(1, 21)] + [k / 100 for k in range(11, 31)])


def test_points_are_the_highest_sensitive_and_the_lowest_specific_threshold():
    ops = operating.choose_operating_points(Y, S, balanced=0.155)
    # sensitivity >= 95% allows one malignant case below: 0.11 (tied with a benign one, never split)
    assert ops["rule_out"]["threshold"] == pytest.approx(0.115)
    assert ops["rule_out"]["sensitivity"] == pytest.approx(19 / 20)
    assert ops["rule_out"]["specificity"] == pytest.approx(11 / 20)
    # specificity >= 95% needs 19 benign cases below: 0.01..0.19
    assert ops["rule_in"]["threshold"] == pytest.approx(0.195)
    assert ops["rule_in"]["specificity"] == pytest.approx(19 / 20)
    assert ops["rule_in"]["sensitivity"] == pytest.approx(11 / 20)
    assert ops["balanced"]["threshold"] == 0.155
    assert not any("note" in p for p in ops.values())
    # the next candidate up loses sensitivity, the next one down specificity
    assert operating.sens_spec(Y, S, 0.125)[0] < 0.95 and operating.sens_spec(Y, S, 0.185)[1] < 0.95


def test_points_on_the_wrong_side_of_balanced_or_out_of_reach_are_clamped_with_a_note():
    low = operating.choose_operating_points(Y, S, balanced=0.10)
    assert low["rule_out"]["threshold"] == 0.10 and "balanced already has sensitivity" in low["rule_out"]["note"]
    high = operating.choose_operating_points(Y, S, balanced=0.25)
    assert high["rule_in"]["threshold"] == 0.25 and "balanced already has specificity" in high["rule_in"]["note"]
    for ops in (low, high):
        t = [ops[n]["threshold"] for n in operating.POINTS]
        assert t == sorted(t)
    # three of four benign cases tie with the top malignant score: no threshold reaches 95% specificity
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.9, 0.9, 0.9, 0.1, 0.9, 0.9])
    ops = operating.choose_operating_points(y, s, balanced=0.5)
    assert ops["rule_in"]["threshold"] == 0.5 and "no threshold reaches specificity" in ops["rule_in"]["note"]
    with pytest.raises(SoftmassError, match="both benign and malignant"):
        operating.choose_operating_points([0, 0], [0.1, 0.2], balanced=0.5)


# --------------------------------------------------------------------------- interval and verdict


def test_conformal_halfwidth_covers_fresh_draws_at_the_promised_rate():
    """Split-conformal: mean coverage over many calibrations lies in [1 - alpha, 1 - alpha + 1/(n+1)]."""
    rng = np.random.default_rng(0)
    n, alpha, covs = 60, 0.1, []
    for _ in range(400):
        scale = rng.gamma(2.0, 0.3, n + 500)  # heavy-ish, case-dependent spread: exchangeable, not Gaussian
        scores = np.abs(rng.standard_normal(n + 500) * scale)
        w = conformal_halfwidth(scores[:n], alpha)
        covs.append(coverage(scores[n:], w))
    assert 1 - alpha - 0.01 <= np.mean(covs) <= 1 - alpha + 1 / (n + 1) + 0.01
    # the quantile is the ceil((n+1)(1-alpha))-th smallest; too few cases give an infinite width
    assert conformal_halfwidth(np.arange(1.0, 11.0), 0.1) == 10.0
    assert conformal_halfwidth(np.arange(1.0, 20.0), 0.1) == 18.0
    assert math.isinf(conformal_halfwidth(np.arange(1.0, 9.0), 0.1))


def test_redrawn_rois_move_each_side_by_at_most_15_percent_and_stay_inside():
    rng = np.random.default_rng(1)
    box = Roi(40, 30, 140, 90)  # 100 x 60
    moved = set()
    for _ in range(500):
        r = perturb_roi(box, 160, 100, rng)
        assert 0 <= r.x0 < r.x1 <= 160 and 0 <= r.y0 < r.y1 <= 100
        assert abs(r.x0 - 40) <= 15 and abs(r.x1 - 140) <= 15 and abs(r.y0 - 30) <= 9 and abs(r.y1 - 90) <= 9
        moved.add(r.as_string())
    assert len(moved) > 100  # really random
    whole = perturb_roi(None, 160, 100, rng)  # no ROI: the whole image, moved inwards only once clamped
    assert whole.x0 >= 0 and whole.x1 <= 160


def test_interval_contains_the_score_and_indeterminate_straddles_the_threshold():
    for p in (0.001, 0.2, 0.5, 0.93):
        lo, hi = operating.score_interval(p, 0.8)
        assert lo <= p <= hi and lo < hi
    assert operating.score_interval(0.3, 0.0) == (0.3, 0.3)
    assert operating.score_interval(0.3, math.inf) == (0.0, 1.0)
    assert operating.verdict(0.55, (0.45, 0.65), 0.5) == "indeterminate"
    assert operating.verdict(0.45, (0.35, 0.5), 0.5) == "indeterminate"  # lo < t <= hi
    assert operating.verdict(0.6, (0.5, 0.7), 0.5) == "malignant"  # the range starts at the threshold
    assert operating.verdict(0.3, (0.2, 0.4), 0.5) == "benign"
    assert operating.verdict(0.5, (0.5, 0.5), 0.5) == "malignant"  # no interval: the threshold rule


# --------------------------------------------------------------------------- manifest fields


def _with_points(folder, t=(0.2, 0.4, 0.6), halfwidth=0.5, n=30):
    def edit(m):
        d = m["models"]["dlm1"]
        d["threshold"] = t[1]
        d["operating_points"] = {
            name: {"threshold": v, "sensitivity": 0.9, "specificity": 0.8} for name, v in zip(operating.POINTS, t)
        }
        d["interval"] = {"method": "test", "alpha": 0.1, "logit_halfwidth": halfwidth, "validation_coverage": 0.9,
                         "n": n}  # fmt: skip

    update_manifest(folder, edit)
    return folder


@pytest.fixture
def pointed(tiny_weights, tmp_path):
    return _with_points(shutil.copytree(tiny_weights, tmp_path / "ws"))


def test_manifest_points_are_optional_and_validated(tiny_weights, pointed):
    plain = WeightSet.load(tiny_weights).manifest
    points, reason = operating.available_points(plain)
    assert list(points) == ["balanced"] and "retune" in reason
    with pytest.raises(SoftmassError, match="not available.*retune"):
        operating.resolve_point(plain, "rule_in")
    m = WeightSet.load(pointed).manifest
    assert operating.resolve_point(m, "rule_in") == ("rule_in", 0.6)
    assert operating.interval_halfwidth(m) == 0.5
    card = (pointed / "README.md").read_text()
    assert "## Operating points and score interval" in card and "| Rule-in | 0.600 |" in card
    assert "does not cover the model's own uncertainty" in card or "does not cover" in card
    with pytest.raises(ManifestError, match="ordered"):
        read_manifest(_with_points(pointed, t=(0.5, 0.4, 0.6)))
    with pytest.raises(ManifestError, match="logit_halfwidth"):
        read_manifest(_with_points(pointed, halfwidth=-1))


# --------------------------------------------------------------------------- cascade, CLI


def test_cascade_runs_dlm2_on_an_indeterminate_case(tiny_weights, tmp_path):
    case = CaseImages(gray=synthetic_rgb(3))
    p = Cascade(WeightSet.load(tiny_weights)).run(case).p_malignant
    t = p * 0.99  # malignant by the threshold rule, but close
    folder = _with_points(shutil.copytree(tiny_weights, tmp_path / "ws"), t=(t, t, t), halfwidth=1.0)
    res = Cascade(WeightSet.load(folder)).run(case)
    assert res.malignant and res.diagnosis == "malignant"  # backward compatible
    assert res.verdict == "indeterminate" and res.p_malignant_interval[0] < t <= res.p_malignant_interval[1]
    assert res.sub_scores is not None and {"sm1", "sm5"} <= set(res.models_run)
    assert res.subtype_if_benign == max(res.sub_scores, key=res.sub_scores.__getitem__)
    # without an interval the same case is plainly malignant and DLM-2 is not run
    narrow = _with_points(folder, t=(t, t, t), halfwidth=0.0)
    res = Cascade(WeightSet.load(narrow)).run(case)
    assert res.verdict == "malignant" and res.sub_scores is None and "sm1" not in res.models_run


def test_a_result_is_re_decided_at_another_point_without_a_model(pointed):
    ws = WeightSet.load(pointed)
    res = Cascade(ws).run(CaseImages(gray=synthetic_rgb(4)), run_all=True)
    for name in operating.POINTS:
        cascade = Cascade(ws, operating_point=name)
        again = result_at(cascade, res)
        direct = cascade.run(CaseImages(gray=synthetic_rgb(4)), run_all=True)
        assert (again.threshold, again.verdict, again.diagnosis) == (direct.threshold, direct.verdict, direct.diagnosis)
        assert again.operating_point == name and not needs_dlm2(cascade, res)
    with pytest.raises(SoftmassError, match="not both"):
        Cascade(ws, threshold=0.3, operating_point="rule_in")


def test_predict_json_has_operating_point_interval_and_verdict(pointed, tmp_path, capsys):
    img = tmp_path / "g.png"
    Image.fromarray(synthetic_rgb(1)).save(img)
    base = ["predict", "--weights", str(pointed), "--gray", str(img), "--json"]
    assert main(base) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["operating_point"] == {"name": "balanced", "threshold": 0.4}
    lo, hi = out["p_malignant_interval"]
    assert lo <= out["p_malignant"] <= hi and lo < hi
    assert out["verdict"] == operating.verdict(out["p_malignant"], (lo, hi), 0.4)
    assert main([*base, "--operating-point", "rule_in"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["operating_point"] == {"name": "rule_in", "threshold": 0.6} and out["threshold"] == 0.6
    assert main([*base, "--operating-point", "rule_in", "--threshold", "0.5"]) == 2
    assert "not both" in capsys.readouterr().err


def test_evaluate_operating_point_changes_pred_malignant(tiny_weights, tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"c{i},validation,{'malignant' if i % 2 else 'lipoma'},{i}.png,,,")
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    folder = shutil.copytree(tiny_weights, tmp_path / "ws")

    def run(*extra):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        rc = main(["evaluate", "--weights", str(folder), "--cohort", str(tmp_path / "cohort.csv"), "--out", str(out),
                   "--quiet", "--n-boot", "20", *extra])  # fmt: skip
        assert rc == 0
        return pd.read_csv(out / "predictions.csv")

    scores = np.sort(run()["p_malignant"].to_numpy())
    t = ((scores[0] + scores[1]) / 2, (scores[3] + scores[4]) / 2, (scores[6] + scores[7]) / 2)
    _with_points(folder, t=t)
    out_ = run("--operating-point", "rule_out")
    in_ = run("--operating-point", "rule_in")
    assert out_["pred_malignant"].sum() == 7 and in_["pred_malignant"].sum() == 1
    assert set(in_["threshold"]) == {t[2]} and in_["operating_point"].str.startswith("rule_in").all()
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(folder), "--cohort", str(tmp_path / "cohort.csv"), "--quiet",
                 "--operating-point", "rule_in", "--record"]) == 2  # fmt: skip


@pytest.mark.slow
def test_retune_writes_operating_points_and_the_interval(tiny_weights, tmp_path, capsys):
    from tests.test_train import _tiny_cohort

    csv = _tiny_cohort(tmp_path, per_class=(2, 3))
    folder = shutil.copytree(tiny_weights, tmp_path / "ws")
    assert main(["retune", "--weights", str(folder), "--cohort", str(csv), "--n-boot", "20", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "dlm1 rule_out" in printed and "dlm1 interval: logit half-width" in printed
    d = json.loads((folder / "manifest.json").read_text())["models"]["dlm1"]
    assert d["operating_points"]["balanced"]["threshold"] == d["threshold"]
    t = [d["operating_points"][n]["threshold"] for n in operating.POINTS]
    assert t == sorted(t)
    iv = d["interval"]
    assert iv["n"] == 18 and iv["alpha"] == 0.1 and 0 <= iv["validation_coverage"] <= 1
    assert set(iv["test_coverage"]) == {"training"}  # fresh re-drawings on every other cohort
    assert "## Operating points and score interval" in (folder / "README.md").read_text()
    WeightSet.load(folder)  # still valid and verified


def test_a_set_without_a_measured_range_claims_none(tiny_weights, tmp_path, capsys):
    """Found driving the app: a packed, never validated set showed "range 0.895-0.895" and "the whole score range
    lies at or above it", a range nobody measured."""
    from ui.operating_view import verdict_text

    ws = WeightSet.load(tiny_weights)
    res = Cascade(ws).run(CaseImages(gray=synthetic_rgb(1)))
    assert res.p_malignant_interval is None
    out = res.to_dict()
    assert out["p_malignant_interval"] == [res.p_malignant, res.p_malignant]  # the contract's keys stay
    assert out["p_malignant_interval_measured"] is False
    text = verdict_text(res, ws)
    assert "no range measured" in text and "no measured score range" in text and "whole score range" not in text
    folder = tmp_path / "unvalidated"
    shutil.copytree(tiny_weights, folder)
    update_manifest(folder, lambda raw: raw["models"]["dlm1"].update(threshold_method="unvalidated default 0.5"))
    ws2 = WeightSet.load(folder)
    assert "unvalidated 0.5" in verdict_text(Cascade(ws2).run(CaseImages(gray=synthetic_rgb(1))), ws2)
    img = tmp_path / "g.png"
    Image.fromarray(synthetic_rgb(1)).save(img)
    assert main(["predict", "--weights", str(tiny_weights), "--gray", str(img)]) == 0
    assert "interval     none measured for this set" in capsys.readouterr().out
