"""Weight sets: a folder of safetensors files described by ``manifest.json``.

``weights/<id>/`` holds

* ``manifest.json``: what the set is and how to use it
  (:mod:`softmass_core.weights.manifest`: schema, validation, reading and writing);
* one ``<model>.safetensors`` per model (``dlm1`` and optionally ``sm1`` ..
  ``sm5``), or for an ensemble one file per member (``<model>-<k>.safetensors``),
  built and read by :mod:`softmass_core.weights.models`;
* ``README.md``: the model card for people (:mod:`softmass_core.weights.modelcard`).

:class:`WeightSet` sits on top of both: it reads the manifest, checks the
sha256 of every weight file (:func:`verify_files`), reads safetensors only
(nothing is unpickled), never downloads anything and builds models with
``timm.create_model(..., pretrained=False)`` on first use.
:func:`write_weight_set` is the way back: safetensors, manifest and card.

Layers: ``manifest`` <- ``models`` <- ``weights``.  torch (via ``models``) is
imported when the first model is built or saved, not when this module is:
listing, reading and verifying sets (the app's first page run) stay light.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softmass_core.errors import WeightsError
from softmass_core.paths import make_dir
from softmass_core.weights.manifest import (
    Architecture,
    InputSpec,
    Manifest,
    ModelEntry,
    read_manifest,
    sha256_file,
    write_manifest,
)

if TYPE_CHECKING:
    from torch import nn


def verify_files(manifest: Manifest) -> dict[str, bool]:
    """Check every weight file (each member of an ensemble) exists and matches its sha256.

    Returns ``{model_id: True}``; raises :class:`WeightsError` on the first
    missing or mismatching file.
    """
    folder = manifest.path.parent
    status: dict[str, bool] = {}
    for model_id, entry in manifest.models.items():
        for k, (file, sha) in enumerate(entry.members):
            path = folder / file
            key = f"models.{model_id}.members[{k}].file" if entry.is_ensemble else f"models.{model_id}.file"
            if not path.is_file():
                raise WeightsError(f"{path} is missing ({key} in {manifest.path}).")
            actual = sha256_file(path)
            if actual != sha:
                raise WeightsError(
                    f"{path} does not match its sha256 in {manifest.path} (expected {sha[:12]}..., "
                    f"got {actual[:12]}...). The file is corrupt or was replaced: restore it or re-export the set."
                )
        status[model_id] = True
    if manifest.input_check is not None:
        from softmass_core.weights.input_check_file import load_stats

        load_stats(folder, manifest.input_check)  # checks the statistics file's sha256 too
        status["input_check"] = True
    return status


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
        self._input_stats: Any = None

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

    def members(self, model_id: str) -> tuple[nn.Module, ...]:
        """The networks of ``model_id`` (eval mode, fp32): one, or an ensemble's k members in manifest order.

        Built on first use and cached; every caller shares them (inference only).
        """
        with self._lock:
            if model_id not in self._models:
                from softmass_core.weights.models import (
                    load_model,  # torch on the first model, not on import (see above)
                )

                entry = self.entry(model_id)
                size = (self.input_spec.height, self.input_spec.width)
                self._models[model_id] = tuple(load_model(entry, self.folder / file, size) for file, _ in entry.members)
            return self._models[model_id]

    def model(self, model_id: str):
        """The ``torch.nn.Module`` of a single-network ``model_id``, in eval mode, fp32.

        An ensemble has no one network: its probability is the mean of its
        members' (:meth:`members`, :meth:`Cascade.probabilities
        <softmass_core.inference.cascade.Cascade.probabilities>`), so asking
        for one is a :class:`WeightsError`.
        """
        entry = self.entry(model_id)
        if entry.is_ensemble:
            raise WeightsError(
                f"models.{model_id} of '{self.id}' is an ensemble of {len(entry.members)} networks: use "
                f"WeightSet.members('{model_id}') for the networks, or a Cascade for the averaged probability."
            )
        return self.members(model_id)[0]

    def gradcam_unavailable(self, model_id: str) -> str | None:
        """Why Grad-CAM cannot explain ``model_id`` (an ONNX graph), or None when it can."""
        if self.entry(model_id).format == "onnx":
            from softmass_core.weights.onnx_model import GRADCAM_UNAVAILABLE

            return GRADCAM_UNAVAILABLE
        return None

    @property
    def input_stats(self):
        """The input check's statistics (:class:`~softmass_core.inference.input_check.InputStats`), None without."""
        if self.manifest.input_check is None:
            return None
        with self._lock:
            if self._input_stats is None:
                from softmass_core.weights.input_check_file import load_stats

                self._input_stats = load_stats(self.folder, self.manifest.input_check)
            return self._input_stats

    def load_all(self) -> None:
        """Build every model (every member of an ensemble) now, e.g. behind a spinner, instead of on first use."""
        for model_id in self.manifest.models:
            self.members(model_id)


def write_weight_set(
    folder: str | Path,
    models: Mapping[str, nn.Module | Sequence[nn.Module]],
    *,
    set_id: str,
    version: str,
    architecture: Architecture,
    input_spec: InputSpec,
    labels: Mapping[str, list[str]],
    thresholds: Mapping[str, tuple[float, str]] | None = None,
    storage_dtype: str = "float32",
    data_kind: str = "test",
    name: str | None = None,
    description: str = "",
    intended_use: str = "Research demo. Not a medical device; not for clinical use.",
    extra: Mapping[str, Any] | None = None,
    model_card: str | None = None,
) -> Path:
    """Write safetensors files, a manifest with their sha256 and a model card to ``folder``.

    ``models[model_id]`` is a network, or a list of k >= 2 networks of the
    same architecture: an ensemble, written as ``<model_id>-1.safetensors`` ..
    ``<model_id>-k.safetensors`` and the entry's ``members``.
    ``labels[model_id]`` is ``[negative, positive]``; ``thresholds[model_id]``
    is ``(threshold, how_chosen)`` (default 0.5, "default 0.5").
    """
    from softmass_core.weights.models import framework_versions, save_safetensors  # torch, only to write a set

    folder = make_dir(folder, "Weight-set folder")
    files: dict[str, Any] = {}
    for model_id, model in models.items():
        if isinstance(model, Sequence):  # an ensemble: one file per member
            if len(model) < 2:
                raise WeightsError(f"An ensemble needs at least two members; {model_id} has {len(model)}.")
            names = [f"{model_id}-{k}.safetensors" for k in range(1, len(model) + 1)]
            files[model_id] = [(f, save_safetensors(m, folder / f, dtype=storage_dtype)) for f, m in zip(names, model)]
            continue
        file = f"{model_id}.safetensors"
        files[model_id] = (file, save_safetensors(model, folder / file, dtype=storage_dtype))
    write_manifest(
        folder,
        set_id=set_id,
        version=version,
        architecture=architecture,
        input_spec=input_spec,
        files=files,
        labels=labels,
        framework=framework_versions(),
        thresholds=thresholds,
        storage_dtype=storage_dtype,
        data_kind=data_kind,
        name=name,
        description=description,
        intended_use=intended_use,
        extra=extra,
    )
    if model_card is not None:
        (folder / "README.md").write_text(model_card, encoding="utf-8")
    elif not (folder / "README.md").exists():
        (folder / "README.md").write_text(f"# {name or set_id}\n\n{description}\n", encoding="utf-8")
    return folder
