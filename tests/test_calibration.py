"""Calibration: ECE, temperature scaling, the cascade applying it and retune writing it."""

from __future__ import annotations

import json
import shutil
from functools import partial

import numpy as np
import pytest
import torch

from softmass_core.errors import ManifestError
from softmass_core.inference.cascade import Cascade, CaseImages, fuse
from softmass_core.stats.calibration import (
    case_scores,
    cross_validated_temperature,
    expected_calibration_error,
    fit_temperature,
)
from softmass_core.weights.modelcard import update_manifest
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import synthetic_rgb


def test_ece_matches_a_hand_calculation():
    # bins of width 0.1: [0.1, 0.2) holds 0.1, 0.15 (mean 0.125, 1 of 2 positive);
    # [0.8, 0.9) holds 0.8, 0.85, 0.85 (mean 0.8333, 2 of 3 positive); [0.9, 1] holds 1.0 (positive)
    y = [0, 1, 1, 0, 1, 1]
    p = [0.1, 0.15, 0.8, 0.85, 0.85, 1.0]
    hand = (2 * abs(0.125 - 0.5) + 3 * abs(0.5 / 0.6 - 2 / 3) + 1 * abs(1.0 - 1.0)) / 6
    assert expected_calibration_error(y, p) == pytest.approx(hand)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def _synthetic(n, true_t, seed):
    """Single-image cases whose true P(positive) is sigmoid(margin / true_t)."""
    rng = np.random.default_rng(seed)
    margin = rng.normal(0.0, 4.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-margin / true_t))).astype(int)
    cases = [{"gray": np.array([[0.0, m]])} for m in margin]
    return y, cases


MEAN = partial(fuse, rule="mean")


def test_temperature_fit_recovers_a_known_temperature():
    y, cases = _synthetic(3000, 2.5, seed=1)
    assert fit_temperature(y, cases, MEAN) == pytest.approx(2.5, rel=0.12)
    # views are averaged after the softmax: two identical views give the same case score
    doubled = [{"gray": np.vstack([c["gray"], c["gray"]])} for c in cases[:5]]
    np.testing.assert_allclose(case_scores(doubled, 2.0, MEAN), case_scores(cases[:5], 2.0, MEAN))


def test_temperature_is_kept_only_when_it_lowers_cross_validated_ece():
    y, cases = _synthetic(600, 3.0, seed=2)  # over-confident logits: T > 1 helps
    fit = cross_validated_temperature(y, cases, MEAN)
    assert fit["value"] > 2.0 and fit["kept"] is True
    assert fit["cv_ece_after"] < fit["cv_ece_before"] and len(fit["cv_temperatures"]) == 5
    y, cases = _synthetic(400, 1.0, seed=3)  # calibrated already
    fit = cross_validated_temperature(y, cases, MEAN)
    assert fit["kept"] is (fit["cv_ece_after"] < fit["cv_ece_before"])
    assert 0.7 < fit["value"] < 1.4


def _with_temperature(src, dst, value, kept=True):
    shutil.copytree(src, dst)
    update_manifest(dst, lambda m: m["models"]["dlm1"].__setitem__("temperature", {"value": value, "kept": kept}))
    return WeightSet.load(dst)


def test_cascade_divides_logits_by_a_kept_temperature(tiny_weights, tmp_path):
    img = synthetic_rgb(seed=4)
    plain = Cascade(WeightSet.load(tiny_weights))
    x = torch.from_numpy(plain.prepare(CaseImages(gray=img))["gray"].array[None])
    with torch.no_grad():
        logits = plain.weight_set.model("dlm1")(x)[0].double()
    soft = torch.softmax(logits / 2.0, dim=0)[1].item()
    hot = Cascade(_with_temperature(tiny_weights, tmp_path / "t2", 2.0))
    assert hot.weight_set.entry("dlm1").temperature == 2.0
    assert hot.run(CaseImages(gray=img)).p_malignant == pytest.approx(soft, abs=1e-5)
    assert plain.run(CaseImages(gray=img)).p_malignant == pytest.approx(torch.softmax(logits, 0)[1].item(), abs=1e-5)
    # a temperature that was not kept is not applied
    cold = Cascade(_with_temperature(tiny_weights, tmp_path / "t2n", 2.0, kept=False))
    assert cold.run(CaseImages(gray=img)).p_malignant == pytest.approx(plain.run(CaseImages(gray=img)).p_malignant)


@pytest.mark.parametrize("bad", [{"value": 0, "kept": True}, {"value": 2.0}, 3.0, {"value": "x", "kept": False}])
def test_manifest_refuses_a_malformed_temperature(tiny_weights, tmp_path, bad):
    folder = tmp_path / "bad"
    shutil.copytree(tiny_weights, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["models"]["dlm1"]["temperature"] = bad
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="temperature"):
        WeightSet.load(folder)


@pytest.mark.slow
def test_retune_fits_temperatures_before_thresholds(tiny_weights, tmp_path):
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import evaluate, predict_cohort
    from softmass_core.stats.roc import youden_threshold
    from softmass_core.training.retune import retune
    from tests.test_train import _tiny_cohort

    csv = _tiny_cohort(tmp_path)
    folder = tmp_path / "ws"
    shutil.copytree(tiny_weights, folder)
    out = retune(folder, csv, n_boot=20)
    raw = json.loads((folder / "manifest.json").read_text())
    for mid, model in raw["models"].items():
        t = model["temperature"]
        assert t == out["temperature"][mid] and t["value"] > 0 and isinstance(t["kept"], bool)
        assert t["kept"] is (t["cv_ece_after"] < t["cv_ece_before"])
    ws = WeightSet.load(folder)
    t1 = raw["models"]["dlm1"]["temperature"]
    assert ws.entry("dlm1").temperature == (t1["value"] if t1["kept"] else 1.0)
    # the threshold is Youden's J of the scores at the applied temperature
    df = predict_cohort(Cascade(ws), read_cohort(csv).subset(["validation"]))
    y = (df["label"] == "malignant").to_numpy(int)
    assert raw["models"]["dlm1"]["threshold"] == pytest.approx(youden_threshold(y, df["p_malignant"].to_numpy()))
    # evaluate --json carries the ECE of each cohort and task
    cohorts = evaluate(Cascade(ws), read_cohort(csv), n_boot=20).metrics_json()["cohorts"]
    val = df[df["cohort"] == "validation"]
    assert cohorts["validation"]["dlm1"]["ece"] == pytest.approx(
        expected_calibration_error(val["y_malignant"], val["p_malignant"])
    )
    assert 0 <= cohorts["validation"]["dlm2"]["lipoma"]["ece"] <= 1
    assert "cross-validated" in (folder / "README.md").read_text()
