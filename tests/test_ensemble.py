"""Non-ConvNeXt backbones (timm's EfficientNet family) and ensembles as data (``members`` in the manifest)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import timm
import torch

from softmass_core.errors import ManifestError, SoftmassError, WeightsError
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.gradcam import cams_for_result, compute_cams
from softmass_core.labels import DLM1, SUBMODEL_IDS
from softmass_core.weights.backbone import backbone, forward_with_check, stage_index, tail_forward, trunk_forward
from softmass_core.weights.manifest import Architecture, InputSpec, read_manifest, rewrite_manifest
from softmass_core.weights.modelcard import render_model_card
from softmass_core.weights.models import build_model, tensor_problems
from softmass_core.weights.schema import manifest_problems
from softmass_core.weights.weight_set import WeightSet, write_weight_set
from tests.conftest import synthetic_rgb

EFF = "test_efficientnet"
W, H = 64, 48


# --------------------------------------------------------------------------- split forward


@pytest.mark.parametrize(
    "name", ["efficientnet_lite0", pytest.param("tf_efficientnet_lite0", marks=pytest.mark.slow), EFF]
)
def test_an_efficientnet_split_forward_is_the_model_itself(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
        stages = backbone(model).stages
        assert backbone(model).family == "efficientnet" and len(stages) == len(model.blocks)
        for index in range(len(stages)):
            got = tail_forward(model, trunk_forward(model, x, index), index)
            assert torch.equal(got, want), index
        out: list[torch.Tensor] = []
        assert torch.equal(forward_with_check(model, x, out), want)
        first_stage = model.blocks[0](model.bn1(model.conv_stem(x)))
    # The input check's features: mean and std of every channel of the first stage (blocks[0]).
    assert torch.equal(out[0], torch.cat([first_stage.mean((2, 3)), first_stage.std((2, 3))], 1))


def test_target_layers_index_the_stages_and_blocks_is_an_alias_for_efficientnet():
    eff = timm.create_model(EFF, num_classes=2)
    n = len(eff.blocks)
    assert stage_index(eff, "stages.-1") == stage_index(eff, "blocks.-1") == n - 1
    assert stage_index(eff, "blocks.1") == 1
    with pytest.raises(WeightsError, match=f"the model has {n} stages"):
        stage_index(eff, f"stages.{n}")
    convnext = timm.create_model("test_convnext", num_classes=2)
    assert stage_index(convnext, "stages.-1") == len(convnext.stages) - 1
    with pytest.raises(WeightsError, match="use 'stages.<index>'"):
        stage_index(convnext, "blocks.0")


def test_another_family_is_a_weights_error_naming_what_is_supported(tmp_path):
    resnet = timm.create_model("test_resnet", num_classes=2)
    with pytest.raises(WeightsError, match=r"ResNet models cannot be split.*ConvNeXt.*EfficientNet family"):
        trunk_forward(resnet, torch.zeros(1, 3, 32, 32), 0)
    folder = write_weight_set(tmp_path / "rn", {DLM1: resnet}, set_id="rn", version="0",
                              architecture=Architecture("test_resnet"), input_spec=InputSpec(W, H),
                              labels={DLM1: ["benign", "malignant"]})  # fmt: skip
    assert "supported are timm ConvNeXt" in tensor_problems(read_manifest(folder))[DLM1]


# --------------------------------------------------------------------------- ensembles


def _net(seed: int, arch: str = EFF) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(Architecture(arch), 2).eval()
    with torch.no_grad():  # a spread of probabilities, not all ~0.5
        (model.classifier if arch == EFF else model.head.fc).weight.mul_(20.0)
    return model


def _labels(dlm2: bool) -> dict[str, list[str]]:
    labels = {DLM1: ["benign", "malignant"]}
    if dlm2:
        labels.update({sm: ["other", st] for sm, st in SUBMODEL_IDS.items()})
    return labels


def _write(folder, models, *, temperature: float | None = None):
    labels = _labels(len(models) > 1)
    write_weight_set(folder, models, set_id=folder.name, version="0", architecture=Architecture(EFF),
                     input_spec=InputSpec(W, H), labels=labels)  # fmt: skip

    def edit(raw):
        raw["test_time_augmentation"] = ["hflip"]
        for entry in raw["models"].values():
            entry["gradcam_target_layer"] = "blocks.-1"
            if temperature is not None:
                entry["temperature"] = {"value": temperature, "kept": True}

    rewrite_manifest(folder, edit)
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """An ensemble set (every model 2 members, T = 2, hflip) and, per member, a one-network set of it."""
    root = tmp_path_factory.mktemp("ens")
    members = {mid: [_net(10 * i + 1), _net(10 * i + 2)] for i, mid in enumerate(_labels(True))}
    ens = _write(root / "ens", members, temperature=2.0)
    singles = [_write(root / f"single{k}", {m: nets[k] for m, nets in members.items()}, temperature=2.0)
               for k in range(2)]  # fmt: skip
    return ens, singles


def _case(seed: int) -> CaseImages:
    return CaseImages(gray=synthetic_rgb(seed, 96, 72), cdfi=synthetic_rgb(seed + 7, 96, 72))


def test_an_ensemble_is_listed_as_members_and_loads_every_member(sets):
    ens, _ = sets
    raw = json.loads((ens / "manifest.json").read_text())
    entry = raw["models"][DLM1]
    assert "file" not in entry and "sha256" not in entry
    assert [m["file"] for m in entry["members"]] == ["dlm1-1.safetensors", "dlm1-2.safetensors"]
    ws = WeightSet.load(ens)
    assert ws.entry(DLM1).is_ensemble and len(ws.members(DLM1)) == 2
    assert ws.members(DLM1)[0] is not ws.members(DLM1)[1]
    with pytest.raises(WeightsError, match=r"ensemble of 2 networks: use WeightSet.members\('dlm1'\)"):
        ws.model(DLM1)
    assert manifest_problems(raw) == [] and tensor_problems(ws.manifest) == {}
    card = render_model_card(raw)
    assert "| dlm1 | benign / malignant |" in card and "2 members: `" in card
    assert "Ensembles: dlm1 of 2 members, sm1 of 2 members" in card and "first member" in card


def test_the_ensemble_probability_is_the_mean_of_the_members_probabilities(sets):
    ens, singles = sets
    a, b = (Cascade(WeightSet.load(s)) for s in singles)
    cascade = Cascade(WeightSet.load(ens))
    for seed in range(2):
        case = _case(seed)
        got = cascade.run(case, run_all=True)
        ra, rb = a.run(case, run_all=True), b.run(case, run_all=True)
        for modality, probs in got.per_image.items():
            for model_id, p in probs.items():
                want = (ra.per_image[modality][model_id] + rb.per_image[modality][model_id]) / 2
                assert p == pytest.approx(want, abs=1e-6), (modality, model_id)
    # By hand: T divides each member's logits before its softmax; members and hflip views averaged.
    ws = cascade.weight_set
    x = torch.from_numpy(cascade.prepare(_case(0))["gray"].array[None])
    views = torch.cat([x, x.flip(-1)])
    with torch.no_grad():
        p = torch.stack([torch.softmax(net(views) / 2.0, 1)[:, 1] for net in ws.members(DLM1)]).mean()
    assert cascade.run(_case(0)).per_image["gray"][DLM1] == pytest.approx(p.item(), abs=1e-6)


def test_the_ensemble_gradcam_is_the_mean_of_the_members_maps(sets):
    ens, singles = sets
    ws = WeightSet.load(ens)
    cascade = Cascade(ws)
    prepared = [cascade.prepare(_case(s)) for s in (0, 1)]
    results = cascade.run_batch(prepared, run_all=True, keep_features=True)
    single_sets = [WeightSet.load(s) for s in singles]
    for i, result in enumerate(results):
        assert isinstance(result.features[DLM1], tuple) and len(result.features[DLM1]) == 2
        for model_id in (DLM1, "sm3"):
            cached = cams_for_result(ws, result, model_id)  # from the cascade's own forward pass
            fresh = compute_cams(ws, model_id, prepared[i])
            per_member = [compute_cams(s, model_id, prepared[i]) for s in single_sets]
            for modality, cam in cached.items():
                want = (per_member[0][modality].cam_input + per_member[1][modality].cam_input) / 2
                np.testing.assert_allclose(cam.cam_input, want, atol=1e-5)
                np.testing.assert_allclose(fresh[modality].cam_input, cam.cam_input, atol=1e-6)
                assert cam.cam_roi.min() >= 0.0 and cam.cam_roi.max() <= 1.0
    with pytest.raises(SoftmassError, match="Cached features do not match"):
        compute_cams(ws, DLM1, prepared[0], features=results[0].features[DLM1][0])  # one member's only


def test_the_input_check_reads_the_first_member(sets):
    ens, singles = sets
    cascade, first = Cascade(WeightSet.load(ens)), Cascade(WeightSet.load(singles[0]))
    batch = torch.from_numpy(np.stack([p.array for p in cascade.prepare(_case(4)).values()]))
    got: list[torch.Tensor] = []
    want: list[torch.Tensor] = []
    cascade.probabilities(DLM1, batch, check_features=got)
    first.probabilities(DLM1, batch, check_features=want)
    assert len(got) == 1 and torch.equal(got[0], want[0])


def test_a_tampered_member_is_refused(sets, tmp_path):
    folder = shutil.copytree(sets[0], tmp_path / "ens")
    path = folder / "sm2-2.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"sm2-2.safetensors does not match its sha256.*restore it"):
        WeightSet.load(folder)
    path.unlink()
    with pytest.raises(WeightsError, match=r"sm2-2.safetensors is missing \(models.sm2.members\[1\].file"):
        WeightSet.load(folder)


def test_a_member_of_another_architecture_is_reported_by_the_check(tmp_path):
    from softmass_core.weights.manifest import sha256_file
    from softmass_core.weights.models import save_safetensors

    folder = _write(tmp_path / "mixed", {DLM1: [_net(1), _net(2)]})
    sha = save_safetensors(_net(3, "test_convnext"), folder / "dlm1-2.safetensors")
    rewrite_manifest(folder, lambda raw: raw["models"][DLM1]["members"][1].update(sha256=sha))
    assert sha == sha256_file(folder / "dlm1-2.safetensors")
    problem = tensor_problems(read_manifest(folder))[DLM1]
    assert problem.startswith("dlm1-2.safetensors does not fit test_efficientnet")
    assert "(1 of the ensemble's 2 members)" in problem


# --------------------------------------------------------------------------- the manifest


def _raw(tiny_weights):
    return json.loads((tiny_weights / "manifest.json").read_text())


def test_the_schema_accepts_members_and_refuses_file_and_members_together(tiny_weights, tmp_path):
    import jsonschema

    from softmass_core.weights.schema import SCHEMA_PATH

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    raw = _raw(tiny_weights)
    entry = raw["models"][DLM1]
    member = {"file": entry["file"], "sha256": entry["sha256"]}
    ensemble = dict(entry, members=[member, {"file": "dlm1-2.safetensors", "sha256": "a" * 64, "fold": 2}])
    del ensemble["file"], ensemble["sha256"]
    raw["models"][DLM1] = ensemble
    assert manifest_problems(raw) == [] and not list(validator.iter_errors(raw))

    cases = [  # (entry, message, whether the JSON Schema alone refuses it)
        (dict(ensemble, file=entry["file"]), "give 'file' and 'sha256' (one network) or 'members' (an ensemble), "
         "not both", True),
        (dict(ensemble, members=[member]), "$.models.dlm1.members must list at least two", True),
        ({k: v for k, v in ensemble.items() if k != "members"}, "$.models.dlm1: missing key 'file' (or 'members'", True),
        (dict(ensemble, members=[member, {"file": "x.onnx", "sha256": "b" * 64}]),
         "$.models.dlm1.members[1].file must be a plain '*.safetensors' file name", True),
        (dict(ensemble, members=[member, dict(member)]), "lists a file twice", False),
        (dict(ensemble, format="onnx"), "ONNX members are not supported", False),
    ]  # fmt: skip
    for i, (bad, message, by_schema) in enumerate(cases):
        raw["models"][DLM1] = bad
        problems = manifest_problems(raw)
        assert any(message in p for p in problems), (message, problems)
        assert bool(list(validator.iter_errors(raw))) == by_schema, message
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps(raw))
        with pytest.raises(ManifestError, match="dlm1"):
            read_manifest(folder)


# --------------------------------------------------------------------------- pack and the commands


def _checkpoint(path, seed: int, arch: str = EFF):
    torch.save({"model": _net(seed, arch).state_dict(), "epoch": 3}, path)
    return path


def test_pack_of_several_checkpoints_writes_members(tmp_path, capsys):
    from softmass_core.cli import main
    from softmass_core.weights.pack import pack

    a, b = _checkpoint(tmp_path / "fold1.pth", 1), _checkpoint(tmp_path / "fold2.pth", 2)
    out, packed = pack(tmp_path / "packed", set_id="packed", arch=EFF, input_spec=InputSpec(W, H),
                       models={DLM1: [a, b]}, data_kind="test")  # fmt: skip
    entry = read_manifest(out).models[DLM1]
    assert entry.members == (("dlm1-1.safetensors", entry.members[0][1]), ("dlm1-2.safetensors", entry.members[1][1]))
    sources = read_manifest(out).raw["packed"]["sources"][DLM1]["members"]
    assert [s["file"] for s in sources] == ["fold1.pth", "fold2.pth"] and len(packed) == 2
    assert "dlm1 member 2: `fold2.pth`" in (out / "README.md").read_text()
    ws = WeightSet.load(out)
    cascade = Cascade(ws)
    x = torch.from_numpy(cascade.prepare(CaseImages(gray=synthetic_rgb(2)))["gray"].array[None])
    with torch.no_grad():
        want = np.mean([torch.softmax(_net(s)(x), 1)[0, 1].item() for s in (1, 2)])
    assert cascade.run(CaseImages(gray=synthetic_rgb(2))).p_malignant == pytest.approx(want, abs=1e-5)

    for form in (["--model", f"dlm1={a},{b}"], ["--model", f"dlm1={a}", "--model", f"dlm1={b}"]):
        target = tmp_path / f"cli{len(form)}"
        rc = main(["pack", "--out", str(target), "--id", "cli", "--arch", EFF, "--input", f"{W}x{H}", *form,
                   "--data-kind", "test"])  # fmt: skip
        assert rc == 0 and len(read_manifest(target).models[DLM1].members) == 2
        assert capsys.readouterr().out.count("dlm1 ") == 2  # one line per member
    rc = main(["pack", "--out", str(tmp_path / "same"), "--id", "same", "--arch", EFF, "--input", f"{W}x{H}",
               "--model", f"dlm1={a},{a}", "--data-kind", "test"])  # fmt: skip
    assert rc == 2 and "same checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "same").exists()


def test_pack_refuses_onnx_members_and_an_architecture_it_cannot_split(tmp_path):
    from softmass_core.weights.pack import pack

    a = _checkpoint(tmp_path / "a.pth", 1)
    (tmp_path / "b.onnx").write_bytes(b"not read")
    kwargs = dict(set_id="x", input_spec=InputSpec(W, H), data_kind="test")
    with pytest.raises(SoftmassError, match="ONNX members are not supported"):
        pack(tmp_path / "x", arch=EFF, models={DLM1: [a, tmp_path / "b.onnx"]}, **kwargs)
    torch.save(timm.create_model("test_resnet", num_classes=2).state_dict(), tmp_path / "rn.pth")
    with pytest.raises(WeightsError, match="supported are timm ConvNeXt"):
        pack(tmp_path / "x", arch="test_resnet", models={DLM1: tmp_path / "rn.pth"}, **kwargs)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # trains nothing, but packs, retunes and evaluates twelve networks
def test_evaluate_retune_and_predict_run_on_an_ensemble_set(tmp_path, capsys):
    from PIL import Image

    from softmass_core.cli import main
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.weights.pack import pack
    from tests.test_train import _tiny_cohort

    (tmp_path / "cohort").mkdir()
    csv = _tiny_cohort(tmp_path / "cohort")
    files = {m: [_checkpoint(tmp_path / f"{m}-{k}.pth", 10 * i + k) for k in (1, 2)]
             for i, m in enumerate(_labels(True))}  # fmt: skip
    # With a cohort, pack retunes the ensemble: thresholds, operating points and temperatures on validation.
    out, _ = pack(tmp_path / "ens", set_id="ens", arch=EFF, input_spec=InputSpec(W, H), models=files,
                  data_kind="test", cohort_csv=csv, n_boot=50)  # fmt: skip
    manifest = read_manifest(out)
    assert "validation" in manifest.models[DLM1].threshold_method and "validation" in manifest.metrics["cohorts"]
    assert all(len(e.members) == 2 for e in manifest.models.values())
    assert "temperature" in manifest.raw["models"][DLM1]
    single, _ = pack(tmp_path / "one", set_id="one", arch=EFF, input_spec=InputSpec(W, H),
                     models={m: f[0] for m, f in files.items()}, data_kind="test")  # fmt: skip
    cohort = read_cohort(csv)
    ens_pred = predict_cohort(Cascade(WeightSet.load(out)), cohort)
    one_pred = predict_cohort(Cascade(WeightSet.load(single)), cohort)
    assert list(ens_pred.columns) == list(one_pred.columns) and len(ens_pred) == len(one_pred)
    img = tmp_path / "g.png"
    Image.fromarray(synthetic_rgb(1)).save(img)
    assert main(["predict", "--weights", str(out), "--gray", str(img), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["weight_set"]["id"] == "ens" and set(result["per_image"]["gray"]) == set(_labels(True))
    assert main(["evaluate", "--weights", str(out), "--cohort", str(csv), "--out", str(tmp_path / "ev")]) == 0


def test_the_case_and_weight_sets_pages_run_an_ensemble_set(sets, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    shutil.copytree(sets[0], tmp_path / "weights" / "ens")
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    page = AppTest.from_file(str(ROOT / "pages" / "5_weight_sets.py"), default_timeout=120).run()
    assert not page.exception, page.exception
    facts = [str(md.value) for md in page.markdown if str(md.value).startswith("**Id**")]
    assert "**Models** DLM-1 + DLM-2, each an ensemble of 2" in facts[0]
    (ok,) = [str(s.value) for s in page.success if "sha256 verified" in str(s.value)]
    assert "all 12 weight file(s) match" in ok
    case = AppTest.from_file(str(ROOT / "pages" / "1_case.py"), default_timeout=120).run()
    case.button(key="case.run").click().run()
    assert not case.exception, case.exception
    shown = [str(m.value) for m in case.markdown]
    assert sum(t.startswith("Diagnosis: **") for t in shown) == 1
    assert len(case.get("image")) >= 4  # Grad-CAM of both images (averaged over the members)
    assert {b.label for b in case.get("download_button")} >= {"Download PDF", "Download JSON"}


@pytest.mark.slow
def test_bench_runs_on_an_ensemble_set_against_its_own_member_forwards(sets):
    from softmass_core.bench import run_bench

    res = run_bench(weights=str(sets[0]), repeats=1, eval_images=4, phantom_cases=0, concurrent=2, cold_start=False)
    for key in ("cascade_ratio", "gradcam_ratio", "eval_ratio", "concurrent_ratio"):
        assert res[key] > 0, key
    assert res["models"] == list(_labels(True))
