"""The input check's statistics file and its manifest block (torch-free).

A weight set's optional ``input_check`` block names a safetensors file of
per-modality ``<m>.mean`` and ``<m>.precision`` (DLM-1's first-stage texture features of
the training ROIs) with its sha256, the scoring method and a threshold per
modality.  :func:`parse_entry` validates the block (called by the manifest
reader), :func:`load_stats` verifies the file's sha256 and reads it into
:class:`InputStats`.  The check that uses them is
:mod:`softmass_core.inference.input_check`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.errors import ManifestError, WeightsError
from softmass_core.labels import MODALITIES

METHODS = ("mahalanobis",)


@dataclass(frozen=True)
class InputStats:
    """Fitted statistics per modality: feature mean, precision matrix and score threshold."""

    method: str
    mean: dict[str, np.ndarray]
    precision: dict[str, np.ndarray]
    threshold: dict[str, float]

    def score(self, modality: str, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (N, D) to the modality's training mean."""
        d = np.asarray(features, dtype=np.float64) - self.mean[modality]
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, self.precision[modality], d), 0.0))


def parse_entry(obj: Any, where: str) -> dict[str, Any] | None:
    """Validate a manifest's optional ``input_check`` block; None when absent."""
    if obj is None:
        return None
    where = f"{where}: input_check"
    if not isinstance(obj, Mapping):
        raise ManifestError(f"{where} must be an object with file, sha256, method and threshold.")
    file = obj.get("file")
    if not isinstance(file, str) or Path(file).name != file or not file.endswith(".safetensors"):
        raise ManifestError(f"{where}.file must be a plain '*.safetensors' file name, got {file!r}.")
    sha = obj.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower()):
        raise ManifestError(f"{where}.sha256 must be 64 hex digits, got {sha!r:.80}.")
    if obj.get("method") not in METHODS:
        raise ManifestError(f"{where}.method must be one of {METHODS}, got {obj.get('method')!r}.")
    thr = obj.get("threshold")
    if not isinstance(thr, Mapping) or not thr or set(thr) - set(MODALITIES):
        raise ManifestError(f"{where}.threshold must map modalities {MODALITIES} to numbers, got {thr!r:.80}.")
    for m, v in thr.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ManifestError(f"{where}.threshold.{m} must be a finite number, got {v!r}.")
    return dict(obj)


def load_stats(folder: str | Path, entry: Mapping[str, Any] | None) -> InputStats | None:
    """Read and sha256-verify the statistics file named by a validated ``input_check`` block."""
    if entry is None:
        return None
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(folder) / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path} is missing (input_check.file in the manifest). Restore it or refit the check.")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()  # a small file; manifest.sha256_file would be a cycle
    if actual != str(entry["sha256"]).lower():
        raise WeightsError(
            f"{path} does not match its sha256 in the manifest (expected {str(entry['sha256'])[:12]}..., "
            f"got {actual[:12]}...). Restore the file or refit the check (retune)."
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}).") from exc
    thresholds = {m: float(v) for m, v in entry["threshold"].items()}
    for m in thresholds:
        if f"{m}.mean" not in tensors or f"{m}.precision" not in tensors:
            raise WeightsError(f"{path} has no {m}.mean / {m}.precision, which input_check.threshold names.")
    return InputStats(
        method=str(entry["method"]),
        mean={m: tensors[f"{m}.mean"].astype(np.float64) for m in thresholds},
        precision={m: tensors[f"{m}.precision"].astype(np.float64) for m in thresholds},
        threshold=thresholds,
    )
