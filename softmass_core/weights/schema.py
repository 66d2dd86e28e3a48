"""The manifest's JSON Schema and every problem of a manifest at once, each with its JSON path.

``manifest.schema.json`` beside this module (``docs/manifest.schema.json`` is
a link to it) states the structure; :func:`manifest_problems` checks it with
``jsonschema`` and adds the rules a schema cannot state.  Torch-free.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from softmass_core.labels import DLM1, SUBMODEL_IDS

#: How a model's file is stored: safetensors (a timm network's tensors) or an ONNX graph (ONNX Runtime).
MODEL_FORMATS = ("safetensors", "onnx")

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


def _schema_message(error: Any) -> str:
    """One jsonschema error as people read it, starting with its JSON path."""
    where = error.json_path
    kind, value = error.validator, error.instance
    last = error.absolute_path[-1] if error.absolute_path else ""
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        if where == "$.models" and missing == DLM1:
            return "$.models.dlm1 is required (DLM-1 separates benign from malignant)"
        return f"{where}: missing key '{missing}'"
    if kind == "uniqueItems":
        return f"{where}: an entry is listed twice in {value!r:.80}"
    if kind == "type":
        names = {"array": "a list", "object": "an object", "string": "a string", "number": "a number",
                 "integer": "a whole number", "boolean": "true or false"}  # fmt: skip
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where} must be {' or '.join(names.get(w, w) for w in wanted)}, got {value!r:.60}"
    if kind == "enum":
        return f"{where} must be one of {error.validator_value}, got {value!r:.60}"
    if kind == "const":
        return (
            f"{where} {value!r} is not supported (this softmass reads {error.validator_value}): upgrade softmass "
            "or re-export the weight set"
        )
    if kind == "dependentRequired":
        missing = [m for m in SUBMODEL_IDS if m not in value]
        return f"{where}: DLM-2 needs all five sub-models; missing {missing}. Ship all of sm1..sm5 or none"
    if kind == "not" and where.endswith(".timm_args"):  # propertyNames reports the refused name itself
        return f"{where}: {value!r} is not allowed; weight sets never download or unpickle weights. Remove it"
    if kind == "oneOf" and isinstance(value, Mapping) and "labels" in error.schema.get("properties", {}):
        return _files_message(where, value)
    if kind == "minItems" and last == "members":
        return f"{where} must list at least two {{file, sha256}} objects; for one network give 'file' and 'sha256'"
    if kind == "pattern" and last == "file" and ".members[" in where:
        return f"{where} must be a plain '*.safetensors' file name inside the weight-set folder, got {value!r:.80}"
    if kind == "pattern":
        text = {
            "sha256": "must be 64 hex digits",
            "file": "must be a plain '*.safetensors' or '*.onnx' file name inside the weight-set folder "
            "(nothing is unpickled)",
            "id": "must be a short name without spaces or slashes",
        }.get(str(last), f"must match {error.validator_value}")
        return f"{where} {text}, got {value!r:.80}"
    if kind in ("minimum", "maximum") and last == "threshold":
        return f"{where}: threshold must be a probability in [0, 1], got {value}"
    if kind == "additionalProperties" and where.endswith(".input"):
        return f"{where}: {error.message} (unknown keys are refused)"
    return f"{where}: {error.message}"


def _files_message(where: str, entry: Mapping[str, Any]) -> str:
    """A model entry that is neither one network (``file`` + ``sha256``) nor an ensemble (``members``)."""
    if "members" in entry:
        return f"{where}: give 'file' and 'sha256' (one network) or 'members' (an ensemble), not both"
    missing = next(k for k in ("file", "sha256") if k not in entry)
    return f"{where}: missing key '{missing}' (or 'members', a list of {{file, sha256}}, for an ensemble)"


def manifest_problems(raw: Any) -> list[str]:
    """Every problem of a manifest dictionary, each with its JSON path (empty when it is valid).

    The JSON Schema (``manifest.schema.json``, also ``docs/manifest.schema.json``)
    first, then the rules a schema cannot state: a model's ``positive_label``
    among its ``labels``, each sub-model's subtype, a file name that matches
    its ``format``, an ensemble's ``members`` all safetensors and distinct.
    """
    errors = sorted(_validator().iter_errors(raw), key=lambda e: list(e.absolute_path))
    problems = [_schema_message(e) for e in errors]
    models = raw.get("models") if isinstance(raw, Mapping) else None
    for model_id, entry in (models or {}).items() if isinstance(models, Mapping) else ():
        if not isinstance(entry, Mapping):
            continue
        where = f"$.models.{model_id}"
        labels, positive = entry.get("labels"), entry.get("positive_label")
        if isinstance(labels, list) and isinstance(positive, str) and positive not in labels:
            problems.append(f"{where}.positive_label {positive!r} is not one of labels {labels!r}")
        if model_id in SUBMODEL_IDS and isinstance(positive, str) and positive != SUBMODEL_IDS[model_id]:
            problems.append(
                f"{where}.positive_label must be {SUBMODEL_IDS[model_id]!r} (SM order is lipoma, hemangioma, "
                "neurinoma, epidermal_cyst, calcifying_epithelioma)"
            )
        file, fmt = entry.get("file"), entry.get("format", "safetensors")
        if isinstance(file, str) and fmt in MODEL_FORMATS and not file.endswith(f".{fmt}"):
            problems.append(f"{where}.file {file!r} does not end in .{fmt}, its format")
        members = entry.get("members")
        if isinstance(members, list) and fmt != "safetensors":
            problems.append(f"{where}: an ensemble's members must be safetensors files; ONNX members are not "
                            "supported (ship one ONNX graph, or the members as safetensors)")  # fmt: skip
        listed = members if isinstance(members, list) else []
        names = [m["file"] for m in listed if isinstance(m, Mapping) and isinstance(m.get("file"), str)]
        if len(set(names)) != len(names):
            problems.append(f"{where}.members lists a file twice ({names}); each member is its own file")
    if isinstance(raw, Mapping) and "architecture" not in raw and isinstance(models, Mapping):
        for model_id, entry in models.items():
            if isinstance(entry, Mapping) and "architecture" not in entry:
                problems.append(f"$.models.{model_id}: no 'architecture' here and none at the top level")
    return problems


@functools.cache
def _validator():
    """The schema's validator, built once per process (jsonschema is imported here, on the first manifest)."""
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
