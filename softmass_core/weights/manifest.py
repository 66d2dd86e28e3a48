"""The weight-set manifest: its schema, validation, reading and writing.

A weight set is data, not code (the idea of timm's ``pretrained_cfg`` and of
MONAI bundle metadata).  ``weights/<id>/manifest.json`` holds the schema
version, id, version and changelog, intended use and limits, architecture
(timm model name and arguments), input spec, test-time augmentation views,
per-model labels / positive label / operating threshold / Grad-CAM layer /
weight file and sha256 (or, for an ensemble, each member's), training data, measured metrics and framework versions.

:func:`read_manifest` validates it (errors name the file and the key) into
frozen dataclasses (:class:`Manifest`, :class:`ModelEntry`,
:class:`Architecture`, :class:`InputSpec`); :func:`write_manifest` and
:func:`rewrite_manifest` write it.  Nothing here touches torch or the weight
files' contents beyond their sha256: loading models is
:mod:`softmass_core.weights.models`, a loaded set is :class:`softmass_core.weights.weight_set.WeightSet`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.errors import ManifestError
from softmass_core.inference.tta import check_views
from softmass_core.jsonsafe import nan_to_none
from softmass_core.labels import DLM1, MODEL_IDS, SUBMODEL_IDS
from softmass_core.paths import make_dir
from softmass_core.weights.input_check_file import parse_entry
from softmass_core.weights.operating import check_operating_points
from softmass_core.weights.schema import MODEL_FORMATS, manifest_problems

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
FUSION_RULES = ("mean", "max", "gray", "cdfi")
DATA_KINDS = ("simulated", "breast_ultrasound", "soft_tissue_ultrasound", "test")
STORAGE_DTYPES = ("float32", "float16", "bfloat16")
#: ``InputSpec.interpolation`` values (Pillow filters of the same names, see :func:`softmass_core.io.roi.prepare`).
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "lanczos")
#: ``stretch``: the paper's plain resize; ``pad``: aspect-preserving letterbox;
#: ``context``: aspect-preserving, the ROI grown to the input's shape with the image around it.
RESIZE_MODES: tuple[str, ...] = ("stretch", "pad", "context")


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"InputSpec.{name} must be 3 numbers, got {value!r}.") from exc
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValueError(f"InputSpec.{name} must be 3 finite numbers, got {value!r}.")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class InputSpec:
    """How a ROI becomes a model input: size (pixels), normalisation, resize.

    Defaults are the paper's 470 x 280 input with ImageNet mean/std.
    ``resize_mode="stretch"`` resizes the ROI to ``width`` x ``height``
    ignoring its aspect ratio (as the paper does); ``"pad"`` keeps the aspect
    ratio, centres the ROI and fills the rest with grey ``pad_value`` (0..255);
    ``"context"`` keeps the aspect ratio too but fills the rest with the image
    around the ROI (the ROI's short side grown to the input's shape; no
    artificial edge for the network to respond to).
    Invalid values raise ``ValueError``.
    """

    width: int = 470
    height: int = 280
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    resize_mode: str = "stretch"
    pad_value: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"InputSpec.{name} must be a whole number, got {value!r}.")
            if not 1 <= value <= 8192:
                raise ValueError(f"InputSpec.{name} must be in 1..8192 pixels, got {value!r}.")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        std = _triple(self.std, "std")
        if min(std) <= 0:
            raise ValueError(f"InputSpec.std must be positive, got {self.std!r}.")
        object.__setattr__(self, "std", std)
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"InputSpec.interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}."
            )
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"InputSpec.resize_mode {self.resize_mode!r} is not one of {', '.join(RESIZE_MODES)}.")
        pad = self.pad_value
        if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or not 0 <= pad <= 255:
            raise ValueError(f"InputSpec.pad_value must be a whole number 0..255, got {pad!r}.")
        object.__setattr__(self, "pad_value", int(pad))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        """Build from a dict such as a manifest's ``input`` block; missing keys keep defaults."""
        if not isinstance(data, Mapping):
            raise ValueError(f"An input spec must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown input spec key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(known))}."
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples as lists) that :meth:`from_dict` reads back."""
        return {
            "width": self.width,
            "height": self.height,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "pad_value": self.pad_value,
        }


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
    format: str = "safetensors"
    #: Temperature the cascade divides this model's logits by (1.0 unless ``temperature.kept``).
    temperature: float = 1.0
    #: Every weight file as ``(file, sha256)``: one for a single network (``file`` / ``sha256`` in the
    #: manifest), k >= 2 for an ensemble (``members``), whose members' probabilities the cascade averages.
    #: ``file`` and ``sha256`` above are the first member's.
    members: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            object.__setattr__(self, "members", ((self.file, self.sha256),))

    @property
    def is_ensemble(self) -> bool:
        """True when the model is k >= 2 member networks averaged in probability."""
        return len(self.members) > 1

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
    input_check: dict[str, Any] | None = None

    @property
    def has_dlm2(self) -> bool:
        return all(m in self.models for m in SUBMODEL_IDS)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.raw.get("metrics") or {})


# --------------------------------------------------------------------------- parsing and reading


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
    fmt = obj.get("format", "safetensors")
    if fmt not in MODEL_FORMATS:
        raise ManifestError(f"{where}.format must be one of {MODEL_FORMATS}, got {fmt!r}.")
    members = _parse_members(obj, fmt, where)
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
        file=members[0][0],
        sha256=members[0][1],
        members=members,
        labels=tuple(labels),
        positive_label=positive,
        threshold=threshold,
        threshold_method=str(obj.get("threshold_method", "not stated")),
        gradcam_target_layer=layer,
        storage_dtype=dtype,
        architecture=arch,
        format=fmt,
        temperature=_parse_temperature(obj.get("temperature"), where),
    )


def _parse_file(obj: Any, fmt: str, where: str) -> tuple[str, str]:
    """``(file, sha256)`` of one weight file: a model entry's own, or one member's."""
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} must be an object with 'file' and 'sha256'.")
    file = _need(obj, "file", str, where)
    if Path(file).name != file or not file.endswith(f".{fmt}"):
        raise ManifestError(
            f"{where}.file must be a plain '*.{fmt}' file name inside the weight-set folder, got {file!r}. "
            "Only safetensors and ONNX files are loaded (nothing is unpickled)."
        )
    sha = _need(obj, "sha256", str, where).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ManifestError(f"{where}.sha256 must be 64 hex digits, got {sha!r:.80}.")
    return file, sha


def _parse_members(obj: Mapping[str, Any], fmt: str, where: str) -> tuple[tuple[str, str], ...]:
    """The model's weight files: ``file`` + ``sha256`` (one network) or ``members`` (an ensemble, k >= 2)."""
    if "members" not in obj:
        return (_parse_file(obj, fmt, where),)
    if "file" in obj or "sha256" in obj:
        raise ManifestError(f"{where}: give 'file' and 'sha256' (one network) or 'members' (an ensemble), not both.")
    if fmt != "safetensors":
        raise ManifestError(
            f"{where}: an ensemble's members must be safetensors files; ONNX members are not supported. "
            "Pack the members' checkpoints as safetensors, or ship one ONNX graph."
        )
    members = obj["members"]
    if not isinstance(members, list) or len(members) < 2:
        raise ManifestError(
            f"{where}.members must list at least two {{file, sha256}} objects; for one network give 'file' "
            "and 'sha256' instead."
        )
    out = tuple(_parse_file(m, fmt, f"{where}.members[{i}]") for i, m in enumerate(members))
    files = [f for f, _ in out]
    if len(set(files)) != len(files):
        raise ManifestError(f"{where}.members lists a file twice ({files}); each member is its own file.")
    return out


def _parse_temperature(obj: Any, where: str) -> float:
    """The temperature the cascade applies: ``temperature.value`` when ``kept``, else 1.0 (also when absent)."""
    if obj is None:
        return 1.0
    if not isinstance(obj, Mapping) or not isinstance(obj.get("kept"), bool):
        raise ManifestError(
            f"{where}.temperature must be an object with 'value' (> 0) and 'kept' (true/false); "
            "rerun `python -m softmass_core retune` to rewrite it."
        )
    value = obj.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ManifestError(f"{where}.temperature.value must be a finite number > 0, got {value!r}.")
    return float(value) if obj["kept"] else 1.0


def parse_manifest(raw: Any, path: Path) -> Manifest:
    """Validate a manifest dictionary; ``path`` is used in messages only.

    Every problem is reported at once (:func:`manifest_problems`), each with its JSON path.
    """
    where = str(path)
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: the manifest must be a JSON object.")
    problems = manifest_problems(raw)
    if problems:
        head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ManifestError(f"{where}: {head}: " + "; ".join(problems) + ".")
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
    check_operating_points(models_obj[DLM1], where)  # optional fields; validated when present
    for sm_id, subtype in SUBMODEL_IDS.items():
        if sm_id in models and models[sm_id].positive_label != subtype:
            raise ManifestError(
                f"{where}: models.{sm_id}.positive_label must be {subtype!r} (SM order is "
                f"lipoma, hemangioma, neurinoma, epidermal_cyst, calcifying_epithelioma)."
            )
    input_check = parse_entry(raw.get("input_check"), where)
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
        input_check=input_check,
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


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- writing


def write_manifest(
    folder: str | Path,
    *,
    set_id: str,
    version: str,
    architecture: Architecture,
    input_spec: InputSpec,
    files: Mapping[str, tuple[str, str] | Sequence[tuple[str, str]]],
    labels: Mapping[str, list[str]],
    framework: Mapping[str, str],
    thresholds: Mapping[str, tuple[float, str]] | None = None,
    storage_dtype: str = "float32",
    data_kind: str = "test",
    name: str | None = None,
    description: str = "",
    intended_use: str = "Research demo. Not a medical device; not for clinical use.",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``folder/manifest.json`` for a new weight set; return its path.

    ``files[model_id]`` is ``(file name, sha256)`` of the model's safetensors
    file, or a list of such pairs for an ensemble (``members``), ``labels[model_id]`` is ``[negative, positive]`` and
    ``thresholds[model_id]`` is ``(threshold, how_chosen)`` (default 0.5,
    "default 0.5").  ``extra`` adds top-level sections (``changelog`` replaces
    the generated one; other keys never replace a generated key).
    """
    folder = make_dir(folder, "Weight-set folder")
    thresholds = dict(thresholds or {})
    entries: dict[str, Any] = {}
    for model_id, written in files.items():
        thr, how = thresholds.get(model_id, (0.5, "default 0.5"))
        if isinstance(written[0], str):  # one network: (file, sha256)
            weight_files: dict[str, Any] = {"file": written[0], "sha256": written[1]}
        else:  # an ensemble: [(file, sha256), ...]
            weight_files = {"members": [{"file": f, "sha256": h} for f, h in written]}
        entries[model_id] = {
            **weight_files,
            "labels": list(labels[model_id]),
            "positive_label": labels[model_id][-1],
            "threshold": float(thr),
            "threshold_method": how,
            "gradcam_target_layer": "stages.-1",
            "storage_dtype": storage_dtype,
        }
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": set_id,
        "name": name or set_id,
        "version": version,
        "changelog": [
            {
                "version": version,
                "date": date.today().isoformat(),
                "changes": "Created.",
            }
        ],
        "description": description,
        "intended_use": intended_use,
        "data_kind": data_kind,
        "architecture": architecture.to_dict(),
        "input": input_spec.to_dict(),
        "fusion": {
            "rule": "mean",
            "doc": "case score = mean of the available images' probabilities",
        },
        "models": entries,
        "framework": dict(framework),
    }
    if extra:
        for key, value in extra.items():
            if key in ("changelog",) and key in manifest:
                manifest[key] = value
            else:
                manifest.setdefault(key, value)
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def rewrite_manifest(folder: str | Path, edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Apply ``edit(manifest)`` to ``folder/manifest.json`` (a plain dict) and write it back.

    NaN becomes null (standard JSON).  Only the manifest changes, not the
    weight files; returns the edited dict.  The model card is rewritten by
    :func:`softmass_core.weights.modelcard.update_manifest`, which calls this.
    """
    path = Path(folder) / MANIFEST_NAME
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    text = json.dumps(nan_to_none(manifest), indent=2, allow_nan=False, default=lambda _: None)
    path.write_text(text + "\n", encoding="utf-8")
    return manifest
