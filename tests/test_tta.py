"""Test-time augmentation (mirrored view averaged) and re-chosen operating points (retune)."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from softmass_core.errors import ManifestError, SoftmassError
from softmass_core.inference import tta
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.gradcam import cams_for_result, compute_cams
from softmass_core.training.retune import retune
from softmass_core.weights.modelcard import update_manifest
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import synthetic_rgb
from tests.test_train import _tiny_cohort


@pytest.fixture(scope="module")
def flip_weights(tiny_weights, tmp_path_factory):
    """The tiny set with ``"test_time_augmentation": ["hflip"]`` in its manifest."""
    folder = tmp_path_factory.mktemp("flip") / "tiny"
    shutil.copytree(tiny_weights, folder)
    update_manifest(folder, lambda m: m.__setitem__("test_time_augmentation", ["hflip"]))
    return folder


def test_expand_and_average_lay_views_out_in_order():
    x = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4)
    e = tta.expand(x, ["hflip"])
    assert e.shape == (4, 3, 2, 4)
    assert torch.equal(e[:2], x) and torch.equal(e[2:], x.flip(-1))
    assert tta.expand(x, []) is x
    v = np.array([0.2, 0.4, 0.6, 1.0])
    np.testing.assert_allclose(tta.average(v, ["hflip"]), [0.4, 0.7])
    with pytest.raises(ValueError, match="cannot be split"):
        tta.average(np.ones(3), ["hflip"])


def test_average_maps_mirrors_the_flipped_view_back():
    plain = np.zeros((1, 4, 6), dtype=np.float32)
    plain[0, 1, 0] = 1.0  # a hot spot at the left edge
    stacked = np.concatenate([plain, plain[..., ::-1]])  # what a flip-equivariant CAM gives
    out = tta.average_maps(stacked, ["hflip"])
    np.testing.assert_allclose(out, plain)
    # disagreeing views are averaged, then scaled back to [0, 1]
    other = np.zeros((1, 4, 6), dtype=np.float32)
    other[0, 2, 2] = 0.5
    out = tta.average_maps(np.concatenate([plain, other[..., ::-1]]), ["hflip"])
    assert out.max() == pytest.approx(1.0) and out[0, 1, 0] == pytest.approx(1.0)
    assert out[0, 2, 2] == pytest.approx(0.5)
    assert out.min() == pytest.approx(0.0)


def test_unknown_or_repeated_views_are_refused(tiny_weights, tmp_path):
    assert WeightSet.load(tiny_weights).manifest.tta == ()
    for bad, match in (
        (["vflip"], r"test_time_augmentation\[0\] must be one of \['hflip'\], got 'vflip'"),
        (["hflip", "hflip"], "listed twice"),
        ("hflip", "list"),
    ):
        folder = tmp_path / f"bad{len(str(bad))}"
        shutil.copytree(tiny_weights, folder)
        raw = json.loads((folder / "manifest.json").read_text())
        raw["test_time_augmentation"] = bad
        (folder / "manifest.json").write_text(json.dumps(raw))
        with pytest.raises(ManifestError, match=match):
            WeightSet.load(folder)


def test_cascade_averages_the_image_and_its_mirror(flip_weights):
    ws = WeightSet.load(flip_weights)
    assert ws.manifest.tta == ("hflip",)
    img = synthetic_rgb(3, width=96, height=64)  # the input size: no resampling
    res = Cascade(ws).run(CaseImages(gray=img), run_all=True)
    x = torch.from_numpy(res.prepared["gray"].array[None])
    with torch.no_grad():
        a = torch.softmax(ws.model("sm3")(x), 1)[0, 1].item()
        b = torch.softmax(ws.model("sm3")(x.flip(-1)), 1)[0, 1].item()
    assert a != pytest.approx(b, abs=1e-4)  # the random model is not mirror-symmetric by itself
    assert res.per_image["gray"]["sm3"] == pytest.approx((a + b) / 2, abs=1e-6)
    assert res.to_dict()["test_time_augmentation"] == ["hflip"]
    from softmass_core.report import ReportImage, build_report

    line = build_report(res, [ReportImage("gray", img, res.rois["gray"])]).summary_lines()[1]
    assert line.endswith("(fusion rule: mean; test-time views: plain, hflip)")
    # ... so the averaged score of the mirror image is the same
    mirrored = Cascade(ws).run(CaseImages(gray=np.ascontiguousarray(img[:, ::-1])), run_all=True)
    for model_id in ws.manifest.models:
        assert mirrored.per_image["gray"][model_id] == pytest.approx(res.per_image["gray"][model_id], abs=1e-5)


def test_gradcam_with_mirror_view_is_mirror_equivariant(flip_weights):
    ws = WeightSet.load(flip_weights)
    img = synthetic_rgb(4, width=96, height=64)
    cascade = Cascade(ws)
    res = cascade.run(CaseImages(gray=img), run_all=True, keep_features=True)
    cached = cams_for_result(ws, res, "dlm1")["gray"].cam_input
    fresh = compute_cams(ws, "dlm1", res.prepared)["gray"].cam_input
    np.testing.assert_allclose(cached, fresh, atol=1e-5)
    assert cached.shape == (64, 96) and 0.9 < cached.max() <= 1.0  # scaled at feature resolution, then upsampled
    mirror = cascade.run(CaseImages(gray=np.ascontiguousarray(img[:, ::-1])), run_all=True)
    flipped = compute_cams(ws, "dlm1", mirror.prepared)["gray"].cam_input
    np.testing.assert_allclose(flipped[:, ::-1], cached, atol=1e-4)
    with pytest.raises(SoftmassError, match="do not match"):
        compute_cams(ws, "dlm1", res.prepared, features=res.features["dlm1"][:1])


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_retune_sets_views_rechooses_thresholds_and_keeps_weights(tiny_weights, tmp_path):
    csv = _tiny_cohort(tmp_path)
    folder = tmp_path / "ws"
    shutil.copytree(tiny_weights, folder)
    weights_before = {p.name: _sha(p) for p in folder.glob("*.safetensors")}
    out = retune(folder, csv, views=["hflip"], version="0.0.2", n_boot=50)
    raw = json.loads((folder / "manifest.json").read_text())
    assert raw["test_time_augmentation"] == ["hflip"] and raw["version"] == "0.0.2"
    assert raw["changelog"][0]["version"] == "0.0.2" and "hflip" in raw["changelog"][0]["changes"]
    assert {p.name: _sha(p) for p in folder.glob("*.safetensors")} == weights_before
    assert set(raw["metrics"]["cohorts"]) == {"training", "validation"}
    ws = WeightSet.load(folder)  # sha256 still verify
    # the recorded thresholds are Youden's J of the cascade's own validation scores
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.stats.roc import youden_threshold

    df = predict_cohort(Cascade(ws), read_cohort(csv).subset(["validation"]))
    y = (df["label"] == "malignant").to_numpy(dtype=int)
    assert raw["models"]["dlm1"]["threshold"] == pytest.approx(youden_threshold(y, df["p_malignant"].to_numpy()))
    assert "mirrored view averaged" in raw["models"]["sm1"]["threshold_method"]
    assert out["thresholds"]["dlm1"]["after"] == pytest.approx(raw["models"]["dlm1"]["threshold"])
    card = (folder / "README.md").read_text()
    assert "scored mirrored left to right" in card
    # switching back to one pass is recorded too
    retune(folder, csv, views=[], n_boot=50)
    assert WeightSet.load(folder).manifest.tta == ()


@pytest.mark.slow
def test_retune_writes_the_changelog_text_it_is_given(tiny_weights, tmp_path):
    csv = _tiny_cohort(tmp_path)
    folder = tmp_path / "ws"
    shutil.copytree(tiny_weights, folder)
    retune(folder, csv, version="0.1.0", changes=" New weights, seed 2. ", n_boot=50)
    raw = json.loads((folder / "manifest.json").read_text())
    assert raw["changelog"][0] == {
        "version": "0.1.0",
        "date": raw["changelog"][0]["date"],
        "changes": "New weights, seed 2.",
    }
    assert raw["changelog"][1]["version"] != "0.1.0"  # the earlier entries stay as they were
    assert "New weights, seed 2." in (folder / "README.md").read_text()
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(SoftmassError, match="give it with --version"):
        retune(folder, csv, changes="New weights.", n_boot=50)
    with pytest.raises(SoftmassError, match="not empty"):
        retune(folder, csv, version="0.2.0", changes="  ", n_boot=50)
    assert (folder / "manifest.json").read_bytes() == before


def test_retune_refusals_leave_the_manifest_as_it_was(tiny_weights, tmp_path):
    csv = _tiny_cohort(tmp_path)
    folder = tmp_path / "ws"
    shutil.copytree(tiny_weights, folder)
    before = (folder / "manifest.json").read_bytes()
    with pytest.raises(SoftmassError, match="no cohort named 'tuning'"):
        retune(folder, csv, val_cohort="tuning", views=["hflip"])
    with pytest.raises(SoftmassError, match="current version"):
        retune(folder, csv, version="0.0.1")
    with pytest.raises(SoftmassError, match="unknown view"):
        retune(folder, csv, views=["rotate"])
    # an image that cannot be read in a cohort other than validation: nothing is written either
    (tmp_path / "training-lipoma-0_gray.png").write_text("not an image")
    with pytest.raises(SoftmassError, match="training-lipoma-0"):
        retune(folder, csv, views=["hflip"], version="0.0.2")
    assert (folder / "manifest.json").read_bytes() == before


@pytest.mark.slow
def test_retune_command_line(tiny_weights, tmp_path, capsys):
    from softmass_core.cli import main

    csv = _tiny_cohort(tmp_path)
    folder = tmp_path / "ws"
    shutil.copytree(tiny_weights, folder)
    assert main(["retune", "--weights", str(folder), "--cohort", str(csv), "--tta", "hflip", "--quiet",
                 "--n-boot", "20"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "test-time augmentation: hflip" in out and "dlm1  threshold" in out
    assert main(["retune", "--weights", str(folder), "--cohort", str(tmp_path / "nope.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_dashboard_names_the_views(tiny_weights, flip_weights):
    from ui.common import input_spec_frame

    def views_row(folder):
        frame = input_spec_frame(WeightSet.load(folder).manifest)
        return frame.loc[frame["field"] == "test-time views", "value"].item()

    assert views_row(flip_weights) == "image and its left-right mirror, probabilities averaged"
    assert views_row(tiny_weights) == "one pass per image"
