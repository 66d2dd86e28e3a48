"""Checkpoints as researchers have them, and ``pack``: a weight set in one command."""

from __future__ import annotations

import json
import shutil

import pytest
import timm
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from softmass_core.cli import main
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.labels import SUBMODEL_IDS
from softmass_core.weights.checkpoint import CheckpointError, fit_state_dict, read_state_dict
from softmass_core.weights.manifest import InputSpec, read_manifest, sha256_file
from softmass_core.weights.pack import UNVALIDATED, pack
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import synthetic_rgb
from tests.test_train import _tiny_cohort

ARCH = "test_convnext"


def _net(seed: int, arch: str = ARCH, num_classes: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=num_classes).eval()
    with torch.no_grad():
        model.head.fc.weight.mul_(20.0)
    return model


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-5) -> bool:
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=atol)


@pytest.mark.parametrize(
    "wrap, steps",
    [
        (lambda s: s, []),
        (lambda s: {"model": s, "optimizer": {"lr": torch.tensor(0.1)}, "epoch": 7}, ["'model'"]),
        (lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}}, ["'state_dict'", "module."]),
        (lambda s: {"model_state_dict": {f"_orig_mod.{k}": v for k, v in s.items()}}, ["_orig_mod."]),
        (lambda s: {"state_dict_ema": s, "epoch": 3}, ["'state_dict_ema'"]),
        (lambda s: {"state_dict": {f"model.{k}": v for k, v in s.items()}}, ["model."]),
    ],
    ids=["plain", "training", "ddp", "compiled", "ema", "lightning"],
)
def test_training_checkpoints_are_unwrapped(tmp_path, wrap, steps):
    source = _net(1)
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    ckpt = read_state_dict(path)
    target = _net(2)
    report = fit_state_dict(target, ckpt, arch=ARCH)
    assert report.n_loaded == report.n_model == len(source.state_dict())
    assert all(any(s in step for step in report.steps) for s in steps)
    assert _same_outputs(source, target)


def test_torchvision_convnext_maps_onto_timm(tmp_path):
    tv = torchvision.models.convnext_tiny(weights=None, num_classes=2).eval()
    with torch.no_grad():
        for p in tv.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # layer scales and biases away from their initial values
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    ckpt = read_state_dict(tmp_path / "tv.pth")
    model = timm.create_model("convnext_tiny", num_classes=2)
    report = fit_state_dict(model, ckpt, arch="convnext_tiny")
    assert report.n_loaded == 182 and any("torchvision" in s for s in report.steps)
    assert _same_outputs(tv, model, atol=1e-4)


def test_another_architecture_is_refused_with_counts_and_nothing_loaded(tmp_path):
    small = timm.create_model("convnext_small", num_classes=2)
    torch.save(small.state_dict(), tmp_path / "small.pth")
    tiny = timm.create_model("convnext_tiny", num_classes=2)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"182 of 182 .* 162 tensors of the checkpoint unused"):
        fit_state_dict(tiny, read_state_dict(tmp_path / "small.pth"), arch="convnext_tiny")
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())


def test_only_the_head_may_be_new_and_only_when_asked(tmp_path):
    torch.save(_net(1, num_classes=1000).state_dict(), tmp_path / "in1k.pth")
    ckpt = read_state_dict(tmp_path / "in1k.pth")
    with pytest.raises(CheckpointError, match="another architecture or number of classes"):
        fit_state_dict(_net(2), ckpt, arch=ARCH)
    report = fit_state_dict(_net(2), ckpt, arch=ARCH, allow_new_head=True)
    assert report.head_replaced and report.n_loaded == report.n_model - 2 and "head.fc" in report.line()


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a checkpoint at all", "weights_only=True"),
        (None, "does not exist"),
    ],
)
def test_unreadable_checkpoints_say_what_to_do(tmp_path, content, match):
    path = tmp_path / "x.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        read_state_dict(path)


def test_pickled_code_is_never_run(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Boom()}, path)
    with pytest.raises(CheckpointError, match="never runs code"):
        read_state_dict(path)


def _checkpoints(root, *, dlm2: bool, dtype=torch.float32):
    files = {}
    for i, mid in enumerate(["dlm1", *(SUBMODEL_IDS if dlm2 else [])]):
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in _net(10 + i).state_dict().items()}
        path = root / f"{mid}.pth"
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 1}, path)
        files[mid] = path
    return files


def test_pack_writes_a_set_the_cascade_runs_with_the_checkpoints_numbers(tmp_path):
    files = _checkpoints(tmp_path, dlm2=True)
    out, packed = pack(tmp_path / "weights" / "mine", set_id="mine", arch=ARCH, input_spec=InputSpec(96, 64),
                       models=files, data_kind="breast_ultrasound")  # fmt: skip
    manifest = read_manifest(out)
    assert manifest.models["dlm1"].threshold == 0.5 and manifest.models["dlm1"].threshold_method == UNVALIDATED
    assert manifest.raw["packed"]["sources"]["sm3"]["file"] == "sm3.pth"
    assert all(p.report.n_loaded == p.report.n_model for p in packed)
    assert "Thresholds not validated" in (out / "README.md").read_text()
    ws = WeightSet.load(out)  # sha256 verified
    rgb = synthetic_rgb(3, 96, 64)
    result = Cascade(ws).run(CaseImages(gray=rgb), run_all=True)
    source = _net(10)
    x = torch.from_numpy(Cascade(ws).prepare(CaseImages(gray=rgb))["gray"].array[None])
    with torch.no_grad():
        p = torch.softmax(source(x), 1)[0, 1].item()
    assert result.p_malignant == pytest.approx(p, abs=1e-4)


def test_pack_keeps_half_precision_and_respects_the_head_order(tmp_path):
    files = _checkpoints(tmp_path, dlm2=False, dtype=torch.float16)
    out, packed = pack(tmp_path / "half", set_id="half", arch=ARCH, input_spec=InputSpec(96, 64), models=files,
                       data_kind="test", labels={"dlm1": ["malignant", "benign"]})  # fmt: skip
    entry = read_manifest(out).models["dlm1"]
    assert packed[0].storage_dtype == "float16" and entry.storage_dtype == "float16"
    assert entry.positive_label == "malignant" and entry.positive_index == 0


def test_pack_with_a_cohort_chooses_thresholds_there(tmp_path):
    (tmp_path / "cohort").mkdir()
    cohort = _tiny_cohort(tmp_path / "cohort")
    out, _ = pack(tmp_path / "val", set_id="val", arch=ARCH, input_spec=InputSpec(64, 48),
                  models=_checkpoints(tmp_path, dlm2=True), data_kind="test", cohort_csv=cohort, n_boot=50)  # fmt: skip
    manifest = read_manifest(out)
    assert "validation" in manifest.models["dlm1"].threshold_method
    assert "validation" in manifest.metrics["cohorts"]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"arch": "convnext_atto"}, "does not fit convnext_atto"),
        ({"models": "no_dlm1"}, "needs DLM-1"),
        ({"models": "four_subs"}, "missing --model sm5"),
        ({"data_kind": "photos"}, "--data-kind"),
        ({"labels": {"dlm1": ["a", "b"]}}, "must be 'malignant'"),
        ({"cohort_csv": "no_validation"}, "no cohort named 'validation'"),
    ],
)
def test_pack_refuses_before_writing_anything(tmp_path, change, match):
    files = _checkpoints(tmp_path, dlm2=True)
    kwargs = dict(set_id="x", arch=ARCH, input_spec=InputSpec(64, 48), models=files, data_kind="test")
    if change.get("models") == "no_dlm1":
        change = {"models": {k: v for k, v in files.items() if k != "dlm1"}}
    elif change.get("models") == "four_subs":
        change = {"models": {k: v for k, v in files.items() if k != "sm5"}}
    elif change.get("cohort_csv") == "no_validation":
        (tmp_path / "c").mkdir()
        csv = _tiny_cohort(tmp_path / "c")
        csv.write_text(csv.read_text().replace(",validation,", ",other,"))
        change = {"cohort_csv": csv}
    kwargs.update(change)
    with pytest.raises(SoftmassError, match=match):
        pack(tmp_path / "weights" / "x", **kwargs)
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


def test_pack_never_overwrites(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SoftmassError, match="already holds files"):
        pack(tmp_path / "taken", set_id="x", arch=ARCH, input_spec=InputSpec(64, 48),
             models=_checkpoints(tmp_path, dlm2=False), data_kind="test")  # fmt: skip
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_pack_command_and_the_set_it_writes(tmp_path, capsys):
    files = _checkpoints(tmp_path, dlm2=False)
    save_file({k: v.contiguous() for k, v in _net(10).state_dict().items()}, str(tmp_path / "d.safetensors"))
    rc = main(["pack", "--out", str(tmp_path / "cli"), "--id", "cli", "--arch", ARCH, "--input", "96x64",
               "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--resize-mode", "pad",
               "--model", f"dlm1={files['dlm1']}", "--data-kind", "breast_ultrasound"])  # fmt: skip
    out = capsys.readouterr().out
    n = len(_net(0).state_dict())
    assert rc == 0 and f"dlm1  dlm1.pth: {n} of {n} tensors loaded, stored as float32" in out
    spec = read_manifest(tmp_path / "cli").input_spec
    assert spec.mean == (0.5, 0.5, 0.5) and spec.resize_mode == "pad"
    img = tmp_path / "g.png"
    Image.fromarray(synthetic_rgb(1)).save(img)
    assert main(["predict", "--weights", str(tmp_path / "cli"), "--gray", str(img), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weight_set"]["id"] == "cli"
    rc = main(["pack", "--out", str(tmp_path / "bad"), "--id", "bad", "--arch", ARCH, "--input", "96",
               "--model", f"dlm1={files['dlm1']}", "--data-kind", "test"])  # fmt: skip
    assert rc == 2 and "--input '96'" in capsys.readouterr().err


def test_train_init_from_a_training_checkpoint_reports_the_count(tmp_path):
    from softmass_core.training.train import TrainConfig, _check_init, _init_record, _new_model

    small = timm.create_model("convnext_small", num_classes=2)
    torch.save({"model": small.state_dict(), "epoch": 1}, tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match="does not fit convnext_tiny"):
        _check_init(f"checkpoint:{tmp_path / 'small.pth'}", "convnext_tiny")
    tiny = timm.create_model("convnext_tiny", num_classes=1000)
    torch.save({"model": tiny.state_dict()}, tmp_path / "tiny.pth")
    init = f"checkpoint:{tmp_path / 'tiny.pth'}"
    _check_init(init, "convnext_tiny")  # the 1000-class head may be new
    lines: list[str] = []
    _new_model(TrainConfig(arch="convnext_tiny", init=init), 2, lines.append)
    assert lines == [f"--init {init}: 180 of 182 tensors loaded (classifier tensors head.fc.* left new: the "
                     "checkpoint's has another number of classes); took the state dict under 'model'"]  # fmt: skip
    assert _init_record(init)["sha256"] == sha256_file(tmp_path / "tiny.pth")


def _export_onnx(model: torch.nn.Module, path, height: int, width: int, *, dynamic: bool = True) -> None:
    kwargs = {"dynamic_axes": {"input": {0: "n"}, "logits": {0: "n"}}} if dynamic else {}
    torch.onnx.export(model.eval(), torch.zeros(1, 3, height, width), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], **kwargs)  # fmt: skip


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic-batch", "batch-1"])
def test_an_onnx_set_predicts_as_the_source_network_and_says_why_no_gradcam(tmp_path, dynamic):
    from softmass_core.inference.gradcam import cams_for_result

    files = _checkpoints(tmp_path, dlm2=True)
    onnx_files = dict(files)
    _export_onnx(_net(10), tmp_path / "dlm1.onnx", 64, 96, dynamic=dynamic)
    onnx_files["dlm1"] = tmp_path / "dlm1.onnx"
    spec = InputSpec(96, 64)
    torch_set, _ = pack(tmp_path / "pt", set_id="pt", arch=ARCH, input_spec=spec, models=files, data_kind="test")
    onnx_set, packed = pack(tmp_path / "ox", set_id="ox", arch=ARCH, input_spec=spec, models=onnx_files,
                            data_kind="test")  # fmt: skip
    assert packed[0].report.onnx and read_manifest(onnx_set).models["dlm1"].format == "onnx"
    a, b = WeightSet.load(torch_set), WeightSet.load(onnx_set)
    for seed in range(3):
        case = CaseImages(gray=synthetic_rgb(seed, 120, 90), cdfi=synthetic_rgb(seed + 5, 120, 90))
        ra = Cascade(a).run(case, run_all=True)
        rb = Cascade(b).run(case, run_all=True, keep_features=True)  # the Case page asks for features
        assert rb.p_malignant == pytest.approx(ra.p_malignant, abs=1e-4)
        assert rb.sub_scores == pytest.approx(ra.sub_scores, abs=1e-6)  # the sub-models are the same safetensors
    assert "ONNX" in b.gradcam_unavailable("dlm1") and b.gradcam_unavailable("sm1") is None
    assert cams_for_result(b, rb, "dlm1") == {} and set(cams_for_result(b, rb, "sm1")) == {"gray", "cdfi"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_onnx_file_of_another_input_size_is_refused(tmp_path):
    _export_onnx(_net(10), tmp_path / "dlm1.onnx", 64, 96, dynamic=False)
    with pytest.raises(SoftmassError, match="input height is 64, the manifest's input gives 32"):
        pack(tmp_path / "x", set_id="x", arch=ARCH, input_spec=InputSpec(96, 32),
             models={"dlm1": tmp_path / "dlm1.onnx"}, data_kind="test")  # fmt: skip


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_onnx_set_runs_in_the_app_and_each_page_says_why_there_is_no_heatmap(tiny_weights, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    tiny = WeightSet.load(tiny_weights)
    spec = tiny.input_spec
    _export_onnx(tiny.model("dlm1"), tmp_path / "dlm1.onnx", spec.height, spec.width)
    files = {m: tiny_weights / tiny.entry(m).file for m in tiny.manifest.models}
    files["dlm1"] = tmp_path / "dlm1.onnx"
    pack(tmp_path / "weights" / "onnx", set_id="onnx", arch=tiny.entry("dlm1").architecture.timm_name,
         input_spec=spec, models=files, data_kind="test")  # fmt: skip
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages" / "1_case.py"), default_timeout=120).run()
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception
    infos = [str(i.value) for i in at.info]
    assert any(i.startswith("DLM-1") and "Grad-CAM is not available" in i and "ONNX" in i for i in infos), infos
    assert {b.label for b in at.get("download_button")} >= {"Download PDF", "Download JSON"}
    cam_page = AppTest.from_file(str(ROOT / "pages" / "3_gradcam.py"), default_timeout=120).run()
    assert not cam_page.exception, cam_page.exception
    assert any("Grad-CAM is not available" in str(i.value) for i in cam_page.info)


def test_add_a_weight_set_in_the_app(tiny_weights, tmp_path, monkeypatch):
    """Upload a training checkpoint, fill the form, pack: the set is listed at once; a bad form says what is missing."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    root = tmp_path / "weights"
    shutil.copytree(tiny_weights, root / "tiny")
    ckpt = _checkpoints(tmp_path, dlm2=False)["dlm1"]
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(ROOT / "pages" / "5_weight_sets.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    at.button(key="FormSubmitter:addset.form-Pack the weight set").click().run()
    (err,) = [str(e.value) for e in at.error if str(e.value).startswith("To pack")]
    assert "give the set an id" in err and "upload DLM-1" in err and not (root / "mine").exists()

    at.text_input(key="addset.id").set_value("mine")
    at.text_input(key="addset.arch").set_value(ARCH)
    at.selectbox(key="addset.kind").set_value("breast_ultrasound")
    at.number_input(key="addset.w").set_value(96)
    at.number_input(key="addset.h").set_value(64)
    assert at.selectbox(key="addset.resize").options == ["stretch", "pad", "context"]
    at.selectbox(key="addset.resize").set_value("context")
    next(u for u in at.get("file_uploader") if u.key == "addset.dlm1").upload(ckpt.name, ckpt.read_bytes())
    at.button(key="FormSubmitter:addset.form-Pack the weight set").click().run()
    assert not at.exception, at.exception
    ok = [str(s.value) for s in at.success if "written to" in str(s.value)]
    assert ok and "tensors loaded" in ok[0]
    assert read_manifest(root / "mine").data_kind == "breast_ultrasound"
    assert read_manifest(root / "mine").input_spec.resize_mode == "context"
    assert any("Thresholds not validated" in str(m.value) for m in at.markdown)
    at.run()
    assert any("mine" in str(h.value) for h in at.header)  # listed on the page at once
