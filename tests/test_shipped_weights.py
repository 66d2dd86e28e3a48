"""Every shipped weight set loads, verifies its sha256, predicts, and carries its measured metrics."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from softmass_core.data.demo import demo_case
from softmass_core.inference.cascade import Cascade
from softmass_core.inference.gradcam import cams_for_result
from softmass_core.weights.manifest import discover_with_errors
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import ROOT

WEIGHTS = ROOT / "weights"
SHIPPED = sorted(p.parent.name for p in WEIGHTS.glob("*/manifest.json"))


def test_expected_sets_are_shipped_and_small():
    assert {"phantom", "busi"} <= set(SHIPPED)
    found, errors = discover_with_errors(WEIGHTS)
    assert errors == {}
    total = sum(f.stat().st_size for f in WEIGHTS.rglob("*") if f.is_file())
    assert total < 60 * 1024 * 1024
    assert not [f for f in WEIGHTS.rglob("*") if f.suffix in {".pt", ".pth", ".pkl", ".ckpt", ".bin"}]


@pytest.mark.parametrize("set_id", SHIPPED)
def test_shipped_set_loads_verifies_and_predicts(set_id):
    ws = WeightSet.load(WEIGHTS / set_id)
    assert all(ws.verified.values())
    manifest = json.loads((WEIGHTS / set_id / "manifest.json").read_text())
    assert manifest["intended_use"] and "not" in manifest["intended_use"].lower()
    assert (WEIGHTS / set_id / "README.md").read_text().startswith("# ")
    cohorts = manifest["metrics"]["cohorts"]
    assert cohorts, "measured metrics must be recorded"
    for m in cohorts.values():
        assert 0.0 <= m["dlm1"]["metrics"]["auc"]["value"] <= 1.0
    case = demo_case("demo-epidermal_cyst-1")
    cascade = Cascade(ws)
    res = cascade.run(case.to_case_images(), run_all=True, keep_features=True)
    assert 0.0 <= res.p_malignant <= 1.0
    assert (res.sub_scores is not None) == ws.has_dlm2
    cam = cams_for_result(ws, res, "dlm1")["gray"]
    assert cam.cam_roi.shape == (case.gray_roi.height, case.gray_roi.width)
    assert np.isfinite(cam.cam_roi).all()


def test_phantom_set_is_the_full_cascade():
    ws = WeightSet.load(WEIGHTS / "phantom")
    assert ws.has_dlm2 and ws.manifest.data_kind == "simulated"
    cohorts = ws.manifest.metrics["cohorts"]
    assert {"validation", "test_a", "test_b"} <= set(cohorts)
    assert set(cohorts["validation"]["dlm2"]) == {
        "lipoma", "hemangioma", "neurinoma", "epidermal_cyst", "calcifying_epithelioma",
    }  # fmt: skip


def test_busi_set_is_dlm1_only_breast():
    ws = WeightSet.load(WEIGHTS / "busi")
    assert not ws.has_dlm2 and ws.manifest.data_kind == "breast_ultrasound"
    assert "test_internal" in ws.manifest.metrics["cohorts"]


def test_phantom_card_records_the_scanner_shift_and_the_ablation():
    manifest = json.loads((WEIGHTS / "phantom" / "manifest.json").read_text())
    tasks = ["dlm1", "lipoma", "hemangioma", "neurinoma", "epidermal_cyst", "calcifying_epithelioma"]
    rescans = manifest["scanner_shift"]["rescans"]
    assert {"h2", "h3"} <= set(rescans)
    for key, entry in rescans.items():
        assert entry["original"] in ("validation", "test_b")
        assert entry["rescan"] == f"{entry['original']}_h{key[-1]}"  # keys h2, h3, test_b_h1
        assert [r["task"] for r in entry["rows"]] == tasks
        for r in entry["rows"]:
            assert r["difference"] == pytest.approx(r["auc_rescan"] - r["auc_original"])
        assert "--rescan-hospital" not in entry["command"] and entry["command"].startswith(
            "python -m softmass_core shift"
        )
    arms = manifest["ablation"]["arms"]
    commands = ("python -m softmass_core train", "python -m softmass_core retune")
    assert len(arms) >= 4 and all(arm.get("command", "").startswith(commands) for arm in arms)
    shipped = [a for a in arms if "shipped" in a["name"]]
    assert len(shipped) == 1  # the shipped row agrees with the set's own measured metrics
    assert (
        shipped[0]["auc"]["validation"]["dlm1"]
        == manifest["metrics"]["cohorts"]["validation"]["dlm1"]["metrics"]["auc"]["value"]
    )
    card = (WEIGHTS / "phantom" / "README.md").read_text()
    assert "## Scanner shift on identical lesions" in card and "## What the starting point bought (ablation)" in card


def test_phantom_card_records_a_larger_independent_replicate_at_the_sets_own_operating_point():
    manifest = json.loads((WEIGHTS / "phantom" / "manifest.json").read_text())
    rep = manifest["replicates"]["seed7x5"]
    source = rep["source"]
    trained_on = manifest["training"]["source"]
    assert trained_on["seed"] == 2023 and trained_on["cohorts"]["training"] == manifest["training"]["n_train_cases"]
    assert source["generator"] == "softmass phantom" and source["seed"] != trained_on["seed"]  # not the training draw
    assert source["generator_version"] == 2 and source["difficulty"] == 0.2 and source["scale"] == 5
    # 1.5.0 re-chose the threshold with midpoints between distinct validation scores: 0.427902 -> 0.427917,
    # 1.5e-5 apart, the same operating point for every case not scored inside that gap.
    assert rep["threshold_dlm1"] == pytest.approx(manifest["metrics"]["threshold_dlm1"], abs=1e-4)
    assert rep["fusion_rule"] == "mean"
    assert rep["command"].startswith("python -m softmass_core evaluate") and "--record-replicate" in rep["command"]
    recorded = manifest["metrics"]["cohorts"]
    assert set(rep["cohorts"]) == {"validation", "test_a", "test_b"}
    for cohort, entry in rep["cohorts"].items():
        assert entry["dlm1"]["n"] == source["cohorts"][cohort] >= 5 * recorded[cohort]["dlm1"]["n"] - 5
        assert set(entry["dlm2"]) == set(recorded[cohort]["dlm2"])
    assert "## Larger independent samples (replicates)" in (WEIGHTS / "phantom" / "README.md").read_text()


def test_thresholds_were_chosen_with_the_sets_own_test_time_views():
    for set_id in SHIPPED:
        ws = WeightSet.load(WEIGHTS / set_id)
        for entry in ws.manifest.models.values():
            assert entry.threshold_method.startswith("Youden's J on the 'validation' cohort")
            assert ("mirrored view averaged" in entry.threshold_method) == ("hflip" in ws.manifest.tta)
    assert WeightSet.load(WEIGHTS / "phantom").manifest.tta == ("hflip",)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@pytest.mark.parametrize("set_id", SHIPPED)
def test_changelog_is_newest_first_and_tops_at_the_current_version(set_id):
    manifest = json.loads((WEIGHTS / set_id / "manifest.json").read_text())
    versions = [c["version"] for c in manifest["changelog"]]
    assert versions[0] == manifest["version"]
    assert versions == sorted(set(versions), key=_version_key, reverse=True)  # unique, newest first
    assert all(c["changes"].strip() and c["date"] for c in manifest["changelog"])
    # an entry can only speak of its own and earlier versions (an edit once wrote 1.4.0's text over 1.0.0's)
    for c in manifest["changelog"]:
        named = {_version_key(v) for v in re.findall(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])", c["changes"])}
        assert all(v <= _version_key(c["version"]) for v in named), c["version"]


def test_busi_2_is_the_chosen_ensemble_and_its_card_says_how_it_was_chosen():
    manifest = json.loads((WEIGHTS / "busi" / "manifest.json").read_text())
    entry = manifest["models"]["dlm1"]
    assert manifest["architecture"]["timm_name"] == "tf_efficientnet_lite0" and len(entry["members"]) == 3
    sel = manifest["selection"]
    winner = next(c for c in sel["candidates"] if c["recipe"] == sel["winner"])
    others = [c for c in sel["candidates"] if c["recipe"] != sel["winner"] and c["oof_auc"] is not None]
    assert all(winner["oof_auc"] > c["oof_auc"] for c in others)  # the protocol's rule, on the recorded figures
    assert sel["protocol"] == "docs/busi-2.0-protocol.md" and (WEIGHTS.parent / sel["protocol"]).is_file()
    assert [r["margin"] for r in manifest["roi_margins"]["margins"]] == [0.0, 0.1, 0.2, 0.4]
    card = (WEIGHTS / "busi" / "README.md").read_text()
    assert "## How this set was chosen" in card and "## ROI margin" in card
    ws = WeightSet.load(WEIGHTS / "busi")
    assert len(ws.members("dlm1")) == 3  # every member's sha256 verified
