"""A weight set from checkpoints a researcher already has: ``python -m softmass_core pack``.

:func:`pack` reads each model's checkpoint (see
:mod:`softmass_core.weights.checkpoint`: training checkpoints, DDP prefixes,
torchvision names; every tensor must fit or nothing is written), stores it
as safetensors in the checkpoint's own precision unless told otherwise, and
writes the manifest (with each source file's name and sha256) and the model
card.  Several checkpoints for one model make it an ensemble (the entry's
``members``).  The folder appears complete or not at all: it is built beside
its destination and renamed into place at the end.

With a cohort CSV, thresholds are chosen and metrics recorded the way
``retune`` does (on the ``validation`` cohort).  Without one, every
threshold is 0.5 and the manifest and card say it was never validated.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from softmass_core.errors import SoftmassError
from softmass_core.labels import DLM1, MALIGNANT, SUBMODEL_IDS
from softmass_core.weights.checkpoint import FitReport, fit_state_dict, read_state_dict
from softmass_core.weights.manifest import (
    DATA_KINDS,
    STORAGE_DTYPES,
    Architecture,
    InputSpec,
    sha256_file,
    write_manifest,
)

UNVALIDATED = "unvalidated default 0.5: packed without a validation cohort"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class PackedModel:
    """One model of a packed set: where it came from and how it fitted."""

    model_id: str
    source: Path
    source_sha256: str
    report: FitReport
    storage_dtype: str


def default_labels(model_id: str) -> list[str]:
    """``[negative, positive]`` as the project's own sets order them."""
    return ["benign", MALIGNANT] if model_id == DLM1 else ["other", SUBMODEL_IDS[model_id]]


def _as_lists(models: Mapping[str, str | Path | Sequence[str | Path]]) -> dict[str, list[Path]]:
    """``{model_id: [checkpoint, ...]}``: one file, or an ensemble's members in the order given."""
    out: dict[str, list[Path]] = {}
    for model_id, given in models.items():
        files = [Path(given)] if isinstance(given, (str, Path)) else [Path(f) for f in given]
        if not files:
            raise SoftmassError(f"--model {model_id}=: give at least one checkpoint file.")
        if len(files) > 1 and any(f.suffix == ".onnx" for f in files):
            raise SoftmassError(
                f"--model {model_id}: an ensemble's members must be checkpoints (.safetensors, .pt, .pth, .bin); "
                "ONNX members are not supported. Give the members' checkpoints, or one ONNX file."
            )
        out[model_id] = files
    return out


def _check_members(model_id: str, files: list[Path]) -> None:
    """Refuse an ensemble that lists a file, or the same bytes, twice (it would be one model counted twice)."""
    if len(files) < 2:
        return
    digests = [sha256_file(f) for f in files]
    for k, digest in enumerate(digests):
        if digest in digests[:k]:
            first = files[digests.index(digest)]
            raise SoftmassError(
                f"--model {model_id}: {files[k]} and {first} are the same checkpoint; each member of an "
                "ensemble must be its own network."
            )


def _check_models(models: Mapping[str, list[Path]]) -> None:
    unknown = [m for m in models if m not in (DLM1, *SUBMODEL_IDS)]
    if unknown:
        raise SoftmassError(f"--model {unknown[0]}=...: unknown model id; use dlm1 and sm1..sm5.")
    if DLM1 not in models:
        raise SoftmassError("A weight set needs DLM-1: give --model dlm1=FILE.")
    subs = [m for m in SUBMODEL_IDS if m in models]
    if subs and len(subs) != len(SUBMODEL_IDS):
        missing = [m for m in SUBMODEL_IDS if m not in models]
        raise SoftmassError(f"DLM-2 needs all five sub-models; missing --model {', '.join(missing)}.")
    for model_id, files in models.items():
        for file in files:
            if not file.is_file():
                raise SoftmassError(f"--model {model_id}={file}: no such file.")
        _check_members(model_id, files)


def _check_labels(model_id: str, labels: list[str]) -> int:
    """The index of the positive class in ``labels`` (the checkpoint's class order)."""
    positive = default_labels(model_id)[1]
    if len(labels) != 2 or len(set(labels)) != 2:
        raise SoftmassError(f"--labels {model_id}={','.join(labels)}: give the two classes in the head's order.")
    if positive not in labels:
        raise SoftmassError(
            f"--labels {model_id}={','.join(labels)}: one of the two classes must be '{positive}' "
            f"(the positive class of {model_id})."
        )
    return labels.index(positive)


def pack(
    out: str | Path,
    *,
    set_id: str,
    arch: str,
    input_spec: InputSpec,
    models: Mapping[str, str | Path | Sequence[str | Path]],
    data_kind: str,
    labels: Mapping[str, list[str]] | None = None,
    version: str = "1.0.0",
    dtype: str | None = None,
    description: str = "",
    cohort_csv: str | Path | None = None,
    val_cohort: str = "validation",
    n_boot: int = 2000,
    seed: int = 0,
    command: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, list[PackedModel]]:
    """Write a complete weight set to ``out`` from ``models = {model_id: checkpoint file}``; return it.

    A list of k >= 2 checkpoints for one model makes it an ensemble: the
    members are written as ``<model_id>-1.safetensors`` .. ``-k`` and listed,
    with their sha256, as the entry's ``members``; ``packed.sources`` keeps
    each member's source.  Refuses, before writing anything: an ``out`` that
    already holds files, an unknown architecture or one the cascade cannot
    split (:func:`~softmass_core.weights.backbone.backbone`), a checkpoint
    that does not fit it, an ensemble with an ONNX member or the same
    checkpoint twice, and (with ``cohort_csv``) a cohort CSV without
    ``val_cohort``.
    """
    from softmass_core.weights.backbone import backbone
    from softmass_core.weights.models import build_model, framework_versions, save_safetensors

    out = Path(out)
    if not _ID.match(set_id):
        raise SoftmassError(f"--id {set_id!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit.")
    if data_kind not in DATA_KINDS:
        raise SoftmassError(f"--data-kind {data_kind!r}: use one of {', '.join(DATA_KINDS)}.")
    if dtype is not None and dtype not in STORAGE_DTYPES:
        raise SoftmassError(f"--dtype {dtype!r}: use one of {', '.join(STORAGE_DTYPES)}.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SoftmassError(f"--out {out} already holds files; give a new folder (nothing is overwritten).")
    models = _as_lists(models)
    _check_models(models)
    labels = {m: list((labels or {}).get(m) or default_labels(m)) for m in models}
    positive = {m: _check_labels(m, labels[m]) for m in models}
    if cohort_csv is not None:
        from softmass_core.cohorts.cohort import read_cohort

        names = read_cohort(cohort_csv).names
        if val_cohort not in names:
            raise SoftmassError(f"{cohort_csv}: no cohort named {val_cohort!r} to validate on; it has {names}.")
    architecture = Architecture(arch, {})

    loaded: dict[str, list[Any]] = {}
    packed: list[PackedModel] = []
    onnx: dict[str, Path] = {}
    for model_id, sources_given in models.items():
        for file in sources_given:
            if file.suffix == ".onnx":  # one file: _as_lists refused ONNX members
                onnx[model_id] = file
                report = _check_onnx(file, input_spec)
                packed.append(PackedModel(model_id, file, sha256_file(file), report, "float32"))
                continue
            ckpt = read_state_dict(file)
            model = build_model(architecture, 2)
            backbone(model)  # an architecture the cascade cannot split is refused before anything is written
            report = fit_state_dict(model, ckpt, arch=arch)
            loaded.setdefault(model_id, []).append(model.eval())
            keep = dtype or (ckpt.float_dtype if ckpt.float_dtype in STORAGE_DTYPES else "float32")
            packed.append(PackedModel(model_id, file, sha256_file(file), report, keep))
    dtypes = {p.storage_dtype for p in packed if p.model_id in loaded}
    storage = dtype or (dtypes.pop() if len(dtypes) == 1 else "float32")

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.packing-", dir=out.parent))
    try:
        files: dict[str, Any] = {}
        for model_id, nets in loaded.items():
            names = [f"{model_id}.safetensors"] if len(nets) == 1 else [
                f"{model_id}-{k}.safetensors" for k in range(1, len(nets) + 1)]  # fmt: skip
            written = [(n, save_safetensors(net, work / n, dtype=storage)) for n, net in zip(names, nets, strict=True)]
            files[model_id] = written[0] if len(nets) == 1 else written
        for model_id, source in onnx.items():
            shutil.copyfile(source, work / f"{model_id}.onnx")
            files[model_id] = (f"{model_id}.onnx", sha256_file(work / f"{model_id}.onnx"))
        files = {m: files[m] for m in models}  # the order they were given
        sources: dict[str, Any] = {}
        for p in packed:
            src = {"file": p.source.name, "sha256": p.source_sha256, "loaded": p.report.line(),
                   "steps": list(p.report.steps)}  # fmt: skip
            if len(models[p.model_id]) == 1:
                sources[p.model_id] = src
            else:
                sources.setdefault(p.model_id, {"members": []})["members"].append(src)
        write_manifest(
            work, set_id=set_id, version=version, architecture=architecture, input_spec=input_spec, files=files,
            labels=labels, framework=framework_versions(), thresholds={m: (0.5, UNVALIDATED) for m in loaded},
            storage_dtype=storage, data_kind=data_kind, description=description,
            extra={
                "changelog": [{"version": version, "date": date.today().isoformat(),
                               "changes": "Packed from checkpoints: " + ", ".join(
                                   f"{m} <- {', '.join(f.name for f in fs)}" for m, fs in models.items())}],
                "packed": {"date": date.today().isoformat(), "command": command, "sources": sources},
                "test_time_augmentation": [],
            },
        )  # fmt: skip
        _finish_entries(work, labels, positive, onnx)
        if cohort_csv is not None:
            from softmass_core.training.retune import retune

            retune(work, cohort_csv, val_cohort=val_cohort, n_boot=n_boot, seed=seed, progress=progress)
        else:
            from softmass_core.weights.modelcard import write_model_card

            write_model_card(work)
        if out.exists():
            out.rmdir()  # empty, checked above
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out, packed


def _check_onnx(path: Path, spec: InputSpec) -> FitReport:
    """Open an ONNX file as the weight set will and run two blank images through it."""
    import torch

    from softmass_core.weights.onnx_model import OnnxModel

    model = OnnxModel(path, num_classes=2, height=spec.height, width=spec.width)
    try:
        model(torch.zeros(2, 3, spec.height, spec.width))
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own error types
        raise SoftmassError(f"{path.name} does not run on a {spec.width} x {spec.height} input ({exc}).") from None
    return FitReport(0, 0, False, ("no Grad-CAM for an ONNX model",), onnx=True)


def _finish_entries(
    folder: Path, labels: Mapping[str, list[str]], positive: Mapping[str, int], onnx: Mapping[str, Path]
) -> None:
    """Each model's ``positive_label`` (wherever the head has it) and, for ONNX files, ``format``."""
    from softmass_core.weights.manifest import rewrite_manifest

    def edit(raw: dict[str, Any]) -> None:
        for model_id, index in positive.items():
            raw["models"][model_id]["positive_label"] = labels[model_id][index]
        for model_id in onnx:
            raw["models"][model_id]["format"] = "onnx"
            raw["models"][model_id]["storage_dtype"] = "float32"

    rewrite_manifest(folder, edit)
