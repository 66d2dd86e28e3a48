"""Weight sets: a folder of safetensors files described by ``manifest.json``.

A weight set is data, not code (the idea of timm's ``pretrained_cfg`` and of
MONAI bundle metadata).  ``weights/<id>/`` holds

* ``manifest.json``: schema version, id, version and changelog, intended use
  and limits, architecture (timm model name and arguments), input spec,
  test-time augmentation views, per-model labels / positive label / operating
  threshold / Grad-CAM layer / sha256, training data, measured metrics,
  framework versions;
* one ``<model>.safetensors`` per model (``dlm1`` and optionally ``sm1`` ..
  ``sm5``);
* ``README.md``: the model card for people.

Loading validates the manifest (errors name the file and the key), checks the
sha256 of every weight file, reads safetensors only (nothing is unpickled),
never downloads anything and builds models with
``timm.create_model(..., pretrained=False)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softmass_core.errors import ManifestError, WeightsError
from softmass_core.labels import DLM1, MODEL_IDS, SUBMODEL_IDS
from softmass_core.roi import InputSpec
from softmass_core.tta import check_views

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FUSION_RULES = ("mean", "max", "gray", "cdfi")
DATA_KINDS = ("simulated", "breast_ultrasound", "soft_tissue_ultrasound", "test")
STORAGE_DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Architecture:
    """Which timm model to build: ``timm.create_model(name, **args)``."""

    timm_name: str
    timm_args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"timm_name": self.timm_name, "timm_args": dict(self.timm_args)}


@dataclass(frozen=True)
class ModelEntry:
    """One model of a weight set (DLM-1 or a DLM-2 sub-model)."""

    model_id: str
    file: str
    sha256: str
    labels: tuple[str, ...]
    positive_label: str
    threshold: float
    threshold_method: str
    gradcam_target_layer: str
    storage_dtype: str
    architecture: Architecture

    @property
    def positive_index(self) -> int:
        return self.labels.index(self.positive_label)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Manifest:
    """Parsed and validated ``manifest.json``."""

    path: Path
    id: str
    name: str
    version: str
    description: str
    intended_use: str
    data_kind: str
    input_spec: InputSpec
    fusion_rule: str
    models: dict[str, ModelEntry]
    raw: dict[str, Any]
    tta: tuple[str, ...] = ()

    @property
    def has_dlm2(self) -> bool:
        return all(m in self.models for m in SUBMODEL_IDS)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.raw.get("metrics") or {})


# --------------------------------------------------------------------------- parsing


def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where}: missing key '{key}'.")
    value = obj[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ManifestError(f"{where}: key '{key}' must be {names}, got {type(value).__name__} ({value!r:.60}).")
    return value


def _parse_architecture(obj: Any, where: str) -> Architecture:
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where}: 'architecture' must be an object with 'timm_name'.")
    name = _need(obj, "timm_name", str, f"{where}.architecture")
    args = obj.get("timm_args", {})
    if not isinstance(args, Mapping):
        raise ManifestError(f"{where}.architecture: 'timm_args' must be an object.")
    for bad in (
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "checkpoint_path",
    ):
        if bad in args:
            raise ManifestError(
                f"{where}.architecture.timm_args: '{bad}' is not allowed; weight sets never "
                "download or unpickle weights. Remove it."
            )
    return Architecture(timm_name=name, timm_args=dict(args))


def _parse_model(model_id: str, obj: Any, default_arch: Architecture | None, where: str) -> ModelEntry:
    where = f"{where}: models.{model_id}"
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} must be an object.")
    file = _need(obj, "file", str, where)
    if Path(file).name != file or not file.endswith(".safetensors"):
        raise ManifestError(
            f"{where}.file must be a plain '*.safetensors' file name inside the weight-set "
            f"folder, got {file!r}. Only safetensors are loaded (nothing is unpickled)."
        )
    sha = _need(obj, "sha256", str, where).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ManifestError(f"{where}.sha256 must be 64 hex digits, got {sha!r:.80}.")
    labels = _need(obj, "labels", list, where)
    if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ManifestError(f"{where}.labels must be at least two distinct non-empty names, got {labels!r}.")
    positive = _need(obj, "positive_label", str, where)
    if positive not in labels:
        raise ManifestError(f"{where}.positive_label {positive!r} is not one of labels {labels!r}.")
    threshold = float(_need(obj, "threshold", (int, float), where))
    if not (0.0 <= threshold <= 1.0) or math.isnan(threshold):
        raise ManifestError(f"{where}.threshold must be a probability in [0, 1], got {threshold}.")
    layer = obj.get("gradcam_target_layer", "stages.-1")
    if not isinstance(layer, str) or not layer:
        raise ManifestError(f"{where}.gradcam_target_layer must be a module path like 'stages.-1'.")
    dtype = obj.get("storage_dtype", "float32")
    if dtype not in STORAGE_DTYPES:
        raise ManifestError(f"{where}.storage_dtype must be one of {STORAGE_DTYPES}, got {dtype!r}.")
    arch = _parse_architecture(obj["architecture"], where) if "architecture" in obj else default_arch
    if arch is None:
        raise ManifestError(f"{where}: no 'architecture' here and none at the top level.")
    return ModelEntry(
        model_id=model_id,
        file=file,
        sha256=sha,
        labels=tuple(labels),
        positive_label=positive,
        threshold=threshold,
        threshold_method=str(obj.get("threshold_method", "not stated")),
        gradcam_target_layer=layer,
        storage_dtype=dtype,
        architecture=arch,
    )


def parse_manifest(raw: Any, path: Path) -> Manifest:
    """Validate a manifest dictionary; ``path`` is used in messages only."""
    where = str(path)
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: the manifest must be a JSON object.")
    schema = _need(raw, "schema_version", int, where)
    if schema != SCHEMA_VERSION:
        raise ManifestError(
            f"{where}: schema_version {schema} is not supported (this softmass reads "
            f"{SCHEMA_VERSION}). Upgrade softmass or re-export the weight set."
        )
    set_id = _need(raw, "id", str, where)
    if not set_id or any(c in set_id for c in "/\\ "):
        raise ManifestError(f"{where}: 'id' must be a short name without spaces or slashes, got {set_id!r}.")
    version = _need(raw, "version", str, where)
    data_kind = _need(raw, "data_kind", str, where)
    if data_kind not in DATA_KINDS:
        raise ManifestError(f"{where}: 'data_kind' must be one of {DATA_KINDS}, got {data_kind!r}.")
    input_obj = _need(raw, "input", dict, where)
    try:
        spec = InputSpec.from_dict(input_obj)
    except (TypeError, ValueError, KeyError) as exc:
        raise ManifestError(f"{where}: 'input' is invalid: {exc}") from exc
    fusion = raw.get("fusion", {"rule": "mean"})
    rule = fusion.get("rule", "mean") if isinstance(fusion, Mapping) else fusion
    if rule not in FUSION_RULES:
        raise ManifestError(f"{where}: fusion.rule must be one of {FUSION_RULES}, got {rule!r}.")
    tta_obj = raw.get("test_time_augmentation", [])
    if not isinstance(tta_obj, list) or not all(isinstance(v, str) for v in tta_obj):
        raise ManifestError(f"{where}: 'test_time_augmentation' must be a list of view names such as [\"hflip\"].")
    try:
        tta = check_views(tta_obj)
    except ValueError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    default_arch = _parse_architecture(raw["architecture"], where) if "architecture" in raw else None
    models_obj = _need(raw, "models", dict, where)
    unknown = sorted(set(models_obj) - set(MODEL_IDS))
    if unknown:
        raise ManifestError(f"{where}: unknown model ids {unknown}; allowed are {list(MODEL_IDS)}.")
    if DLM1 not in models_obj:
        raise ManifestError(f"{where}: models.dlm1 is required (DLM-1 separates benign from malignant).")
    subs = [m for m in SUBMODEL_IDS if m in models_obj]
    if subs and len(subs) != len(SUBMODEL_IDS):
        missing = [m for m in SUBMODEL_IDS if m not in models_obj]
        raise ManifestError(
            f"{where}: DLM-2 needs all five sub-models; missing {missing}. Ship all of sm1..sm5 or none."
        )
    models = {m: _parse_model(m, models_obj[m], default_arch, where) for m in MODEL_IDS if m in models_obj}
    for sm_id, subtype in SUBMODEL_IDS.items():
        if sm_id in models and models[sm_id].positive_label != subtype:
            raise ManifestError(
                f"{where}: models.{sm_id}.positive_label must be {subtype!r} (SM order is "
                f"lipoma, hemangioma, neurinoma, epidermal_cyst, calcifying_epithelioma)."
            )
    return Manifest(
        path=path,
        id=set_id,
        name=str(raw.get("name", set_id)),
        version=version,
        description=str(raw.get("description", "")),
        intended_use=str(raw.get("intended_use", "")),
        data_kind=data_kind,
        input_spec=spec,
        fusion_rule=rule,
        models=models,
        raw=dict(raw),
        tta=tta,
    )


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``folder/manifest.json`` (no weights are touched)."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ManifestError(f"Weight-set folder {folder} does not exist. Pass a folder that holds {MANIFEST_NAME}.")
    if not path.is_file():
        raise ManifestError(f"{path} is missing: every weight set needs a {MANIFEST_NAME}.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read ({exc}).") from exc
    return parse_manifest(raw, path)


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_files(manifest: Manifest) -> dict[str, bool]:
    """Check every weight file exists and matches its sha256.

    Returns ``{model_id: True}``; raises :class:`WeightsError` on the first
    missing or mismatching file.
    """
    folder = manifest.path.parent
    status: dict[str, bool] = {}
    for model_id, entry in manifest.models.items():
        path = folder / entry.file
        if not path.is_file():
            raise WeightsError(f"{path} is missing (models.{model_id}.file in {manifest.path}).")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise WeightsError(
                f"{path} does not match its sha256 in {manifest.path} (expected {entry.sha256[:12]}..., "
                f"got {actual[:12]}...). The file is corrupt or was replaced: restore it or re-export the set."
            )
        status[model_id] = True
    return status


def discover(root: str | Path = "weights") -> list[Manifest]:
    """Every valid weight set under ``root`` (sorted by id); invalid ones are skipped.

    Use :func:`discover_with_errors` to see why a folder was skipped.
    """
    return discover_with_errors(root)[0]


def discover_with_errors(
    root: str | Path = "weights",
) -> tuple[list[Manifest], dict[str, str]]:
    """Valid manifests under ``root`` and ``{folder: message}`` for the invalid ones."""
    root = Path(root)
    found: list[Manifest] = []
    errors: dict[str, str] = {}
    if not root.is_dir():
        return found, errors
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (sub / MANIFEST_NAME).exists():
            continue
        try:
            found.append(read_manifest(sub))
        except ManifestError as exc:
            errors[str(sub)] = str(exc)
    found.sort(key=lambda m: m.id)
    return found, errors


class WeightSet:
    """A verified weight set whose models are built on first use and cached.

    Safe to share between threads (one Streamlit process serves many browser
    sessions): model construction is guarded by a lock, and models are only
    used for inference afterwards.
    """

    def __init__(self, manifest: Manifest, *, verify: bool = True) -> None:
        self.manifest = manifest
        self.verified = verify_files(manifest) if verify else {}
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path, *, verify: bool = True) -> WeightSet:
        """Read the manifest, verify every sha256 and return the set (models lazy)."""
        return cls(read_manifest(folder), verify=verify)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def input_spec(self) -> InputSpec:
        return self.manifest.input_spec

    @property
    def has_dlm2(self) -> bool:
        return self.manifest.has_dlm2

    @property
    def folder(self) -> Path:
        return self.manifest.path.parent

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self.manifest.models[model_id]
        except KeyError:
            raise WeightsError(
                f"Weight set '{self.id}' has no model '{model_id}' (it has {list(self.manifest.models)})."
            ) from None

    def model(self, model_id: str):
        """The ``torch.nn.Module`` for ``model_id``, in eval mode, fp32."""
        with self._lock:
            if model_id not in self._models:
                from softmass_core.models import load_model

                entry = self.entry(model_id)
                self._models[model_id] = load_model(entry, self.folder / entry.file)
            return self._models[model_id]

    def load_all(self) -> None:
        """Build every model now (e.g. behind a spinner) instead of on first use."""
        for model_id in self.manifest.models:
            self.model(model_id)
