"""The DLM cascade: DLM-1, then DLM-2 when benign."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import Cascade, CaseImages, fuse
from softmass_core.io.roi import Roi, prepare
from softmass_core.labels import SUBTYPES
from softmass_core.weights.weight_set import WeightSet


@pytest.fixture(scope="module")
def ws(tiny_weights):
    return WeightSet.load(tiny_weights)


def test_fusion_rules():
    per = {"gray": 0.2, "cdfi": 0.6}
    assert fuse(per, "mean") == pytest.approx(0.4)
    assert fuse(per, "max") == pytest.approx(0.6)
    assert fuse(per, "gray") == pytest.approx(0.2)
    with pytest.raises(SoftmassError, match="uses the cdfi image only"):
        fuse({"gray": 0.3}, "cdfi")
    with pytest.raises(SoftmassError, match="Unknown fusion rule"):
        fuse(per, "median")


def test_probabilities_match_bare_model(ws, rgb_pair):
    cascade = Cascade(ws)
    case = CaseImages(gray=rgb_pair[0], cdfi=rgb_pair[1], gray_roi=Roi(10, 5, 150, 110))
    res = cascade.run(case, run_all=True)
    x = torch.from_numpy(prepare(rgb_pair[0], Roi(10, 5, 150, 110), ws.input_spec).array[None])
    with torch.no_grad():
        p = torch.softmax(ws.model("dlm1")(x), 1)[0, 1].item()
    assert res.per_image["gray"]["dlm1"] == pytest.approx(p, abs=1e-6)
    fused = np.mean([res.per_image[m]["dlm1"] for m in ("gray", "cdfi")])
    assert res.p_malignant == pytest.approx(fused)
    assert set(res.sub_scores) == set(SUBTYPES)
    assert res.models_run == ["dlm1", "sm1", "sm2", "sm3", "sm4", "sm5"]


def test_benign_case_runs_dlm2_and_top_submodel_names_it(ws, rgb_pair):
    cascade = Cascade(ws, threshold=1.0)  # everything benign
    res = cascade.run(CaseImages(gray=rgb_pair[0], cdfi=rgb_pair[1]))
    assert not res.malignant
    assert res.diagnosis == max(res.sub_scores, key=res.sub_scores.get)
    assert "DLM-2" in res.stopped_because
    assert res.diagnosing_model == f"sm{SUBTYPES.index(res.diagnosis) + 1}"


def test_malignant_case_stops_after_dlm1(ws, rgb_pair):
    cascade = Cascade(ws, threshold=0.0)  # everything malignant
    res = cascade.run(CaseImages(gray=rgb_pair[0]))
    assert res.malignant and res.diagnosis == "malignant"
    assert res.models_run == ["dlm1"] and res.sub_scores is None
    assert "not needed" in res.stopped_because
    d = res.to_dict()
    assert d["sub_scores"] is None and d["per_image_p_malignant"].keys() == {"gray"}
    # run_all still reports the sub-model scores but keeps the decision
    res_all = cascade.run(CaseImages(gray=rgb_pair[0]), run_all=True)
    assert res_all.diagnosis == "malignant" and res_all.sub_scores is not None
    assert res.diagnosing_model is None and res_all.diagnosing_model is None  # no sub-model named anything
    with pytest.raises(dataclasses.FrozenInstanceError):  # a result is a record: pages share it, none edits it
        res.diagnosis = "lipoma"


def test_dlm1_only_set_says_benign_without_subtype(tiny_weights_dlm1, rgb_pair):
    cascade = Cascade(WeightSet.load(tiny_weights_dlm1), threshold=1.0)
    res = cascade.run(CaseImages(cdfi=rgb_pair[1]), run_all=True)
    assert res.diagnosis == "benign" and res.sub_scores is None
    assert "DLM-1 only" in res.stopped_because


def test_empty_case_and_bad_threshold(ws):
    with pytest.raises(SoftmassError, match="needs a grayscale"):
        Cascade(ws).run(CaseImages())
    with pytest.raises(SoftmassError, match="Threshold"):
        Cascade(ws, threshold=2.0)


def test_device_must_be_cpu_or_a_visible_gpu(ws):
    with pytest.raises(SoftmassError, match="Unknown device 'tpu'"):
        Cascade(ws, device="tpu")
    with pytest.raises(SoftmassError, match="Unknown device 'meta'"):
        Cascade(ws, device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(SoftmassError, match="no CUDA GPU is visible"):
            Cascade(ws, device="cuda")


def test_cpu_cascade_uses_the_weight_sets_own_models(ws, rgb_pair):
    cascade = Cascade(ws, device="cpu")
    (own,) = cascade._members("dlm1")
    assert own is ws.model("dlm1")
    a = cascade.run(CaseImages(gray=rgb_pair[0]), run_all=True)
    b = Cascade(ws).run(CaseImages(gray=rgb_pair[0]), run_all=True)
    assert a.per_image == b.per_image


def test_models_load_without_random_initialisation_and_match_a_normally_built_model(ws):
    """load_model builds on the meta device (no wasted random init) and assigns every tensor from the file."""
    from safetensors.torch import load_file

    from softmass_core.weights.models import build_model, load_model

    entry = ws.entry("dlm1")
    loaded = load_model(entry, ws.folder / entry.file)
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and not any(t.is_meta for t in tensors)
    assert all(t.device.type == "cpu" and not t.requires_grad for t in loaded.parameters())
    reference = build_model(entry.architecture, entry.num_classes)
    reference.load_state_dict(load_file(str(ws.folder / entry.file)))
    reference.eval()
    x = torch.randn(2, 3, ws.input_spec.height, ws.input_spec.width)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x), atol=0, rtol=0)
