"""Weight-set manifests: validation, checksums, safetensors-only loading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from softmass_core.errors import ManifestError, WeightsError
from softmass_core.weights.manifest import discover_with_errors, read_manifest
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import ROOT


def _copy(src, tmp_path, name="ws"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _edit(folder, fn):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_tiny_set_loads_and_verifies(tiny_weights):
    ws = WeightSet.load(tiny_weights)
    assert ws.has_dlm2
    assert ws.verified == {m: True for m in ("dlm1", "sm1", "sm2", "sm3", "sm4", "sm5")}
    model = ws.model("dlm1")
    assert not model.training
    out = model(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 2)
    assert ws.entry("sm4").positive_label == "epidermal_cyst"


def test_dlm1_only_set(tiny_weights_dlm1):
    ws = WeightSet.load(tiny_weights_dlm1)
    assert not ws.has_dlm2
    with pytest.raises(WeightsError, match="has no model 'sm1'"):
        ws.entry("sm1")


def test_checksum_mismatch_is_refused(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path)
    with open(folder / "sm2.safetensors", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(WeightsError, match=r"sm2\.safetensors does not match its sha256"):
        WeightSet.load(folder)


def test_missing_file_is_named(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path)
    (folder / "sm5.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"sm5\.safetensors is missing"):
        WeightSet.load(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("schema_version"), "missing key 'schema_version'"),
        (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda d: d["models"]["dlm1"].update(file="dlm1.pt"), "safetensors"),
        (lambda d: d["models"]["dlm1"].update(file="../x.safetensors"), "plain"),
        (lambda d: d["models"]["dlm1"].update(threshold=1.5), "threshold must be a probability"),
        (lambda d: d["models"]["dlm1"].update(positive_label="cancer"), "positive_label 'cancer'"),
        (lambda d: d["models"].pop("sm3"), r"missing \['sm3'\]"),
        (lambda d: d["models"]["sm1"].update(positive_label="other", labels=["lipoma", "other"]), "must be 'lipoma'"),
        (lambda d: d["architecture"]["timm_args"].update(pretrained=True), "'pretrained' is not allowed"),
        (
            lambda d: d["input"].update(resize_mode="squash"),
            r"\$\.input\.resize_mode must be one of \['stretch', 'pad', 'context'\]",
        ),
        (lambda d: d.update(data_kind="clinical"), "data_kind"),
        (lambda d: d["models"].pop("dlm1"), "dlm1 is required"),
        (lambda d: d["models"]["dlm1"].update(sha256="abc"), "64 hex digits"),
    ],
)
def test_manifest_errors_name_file_and_key(tiny_weights, tmp_path, edit, message):
    folder = _copy(tiny_weights, tmp_path)
    _edit(folder, edit)
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(folder)
    assert "manifest.json" in str(info.value)


def test_not_json_and_missing_folder(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path / "bad")
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "nope")


def test_wrong_architecture_is_a_weights_error(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path)
    _edit(folder, lambda d: d["architecture"].update(timm_name="convnext_atto"))
    ws = WeightSet.load(folder)
    with pytest.raises(WeightsError, match="does not fit convnext_atto"):
        ws.model("dlm1")


def test_pickle_is_never_loaded(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path)
    # A pickle disguised as safetensors: the loader must refuse it, not unpickle it.
    import hashlib
    import pickle

    payload = pickle.dumps({"x": 1})
    (folder / "dlm1.safetensors").write_bytes(payload)
    _edit(folder, lambda d: d["models"]["dlm1"].update(sha256=hashlib.sha256(payload).hexdigest()))
    ws = WeightSet.load(folder)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        ws.model("dlm1")


def test_discover_lists_valid_and_reports_invalid(tiny_weights, tmp_path):
    _copy(tiny_weights, tmp_path, "a")
    bad = _copy(tiny_weights, tmp_path, "b")
    _edit(bad, lambda d: d.pop("version"))
    found, errors = discover_with_errors(tmp_path)
    assert [m.path.parent.name for m in found] == ["a"]
    assert list(errors) == [str(bad)] and "version" in errors[str(bad)]


def test_fp16_storage_roundtrip(tmp_path):
    from softmass_core.weights.manifest import Architecture, InputSpec
    from softmass_core.weights.models import build_model
    from softmass_core.weights.weight_set import write_weight_set

    torch.manual_seed(1)
    arch = Architecture("test_convnext")
    model = build_model(arch, 2).eval()
    write_weight_set(
        tmp_path / "h",
        {"dlm1": model},
        set_id="h",
        version="1",
        architecture=arch,
        input_spec=InputSpec(width=64, height=64),
        labels={"dlm1": ["benign", "malignant"]},
        storage_dtype="float16",
    )
    ws = WeightSet.load(tmp_path / "h")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = torch.softmax(model(x), 1)
        got = torch.softmax(ws.model("dlm1")(x), 1)
    assert ws.entry("dlm1").storage_dtype == "float16"
    assert torch.allclose(ref, got, atol=2e-3)


def test_manifest_models_weights_are_layered_without_cycles():
    # manifest <- models <- weights: the lower modules never import the upper ones, not even inside a function.
    import ast

    def imported(module: str) -> set[str]:
        tree = ast.parse((ROOT / "softmass_core" / "weights" / f"{module}.py").read_text(encoding="utf-8"))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        return names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    assert not {"softmass_core.weights.models", "softmass_core.weights.weight_set"} & imported("manifest")
    assert "softmass_core.weights.weight_set" not in imported("models")
    assert "softmass_core.weights.manifest" in imported("models") and "softmass_core.weights.manifest" in imported(
        "weight_set"
    )
    # reading and verifying sets stays free of torch (the app's first page run lists sets before any model)
    code = "import sys, softmass_core.weights.weight_set, softmass_core.weights.manifest; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_every_manifest_problem_is_reported_at_once_with_its_json_path(tiny_weights, tmp_path):
    folder = _copy(tiny_weights, tmp_path)

    def edit(d):
        d["models"]["dlm1"]["threshold"] = 1.5
        d["models"]["sm2"]["sha256"] = "abc"
        d["input"]["width"] = "wide"
        d["input"]["colour"] = True
        d["data_kind"] = "clinical"
        d["models"]["dlm1"]["positive_label"] = "cancer"

    _edit(folder, edit)
    with pytest.raises(ManifestError) as info:
        read_manifest(folder)
    text = str(info.value)
    assert "6 problems" in text
    for path in ("$.models.dlm1.threshold", "$.models.sm2.sha256", "$.input.width", "$.input:", "$.data_kind",
                 "$.models.dlm1.positive_label"):  # fmt: skip
        assert path in text, path


def test_the_shipped_manifests_and_the_docs_schema_agree(tiny_weights):
    import jsonschema

    from softmass_core.weights.schema import SCHEMA_PATH

    docs = ROOT / "docs" / "manifest.schema.json"
    assert json.loads(docs.read_text()) == json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(json.loads(docs.read_text()))
    for folder in (ROOT / "weights" / "phantom", ROOT / "weights" / "busi", tiny_weights):
        assert not list(validator.iter_errors(json.loads((folder / "manifest.json").read_text()))), folder
