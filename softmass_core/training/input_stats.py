"""Fit a weight set's input check (:mod:`softmass_core.inference.input_check`).

:func:`fit_input_check` is the one entry point (``train``, ``retune`` and a
future ``pack`` call it): DLM-1's first-stage texture features of every training
ROI, per modality (B-mode and CDFI images differ), give a mean and a
Ledoit-Wolf shrunk covariance (sklearn); the validation ROIs' Mahalanobis
distances give the threshold, the lowest one at which at most
:data:`TARGET_RATE` of validation ROIs are flagged, counting the ROIs the
plausibility checks already refuse.  The statistics go to
``input_check.safetensors`` and the manifest's ``input_check`` block (file,
sha256, method, threshold per modality, what it was fitted on and the
validation flag rate); the model card is rewritten.  Weight files never change.

When DLM-1 is an ensemble the features are its first member's, here and at
inference alike: both come from :meth:`Cascade.probabilities
<softmass_core.inference.cascade.Cascade.probabilities>`, which reads them
from the first member only (averaging texture statistics of differently
trained networks would mix unrelated channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.errors import SoftmassError
from softmass_core.inference.input_check import BLANK_STD, CHROMA_LEVEL, CHROMA_SHARE, MIN_SIDE, plausibility
from softmass_core.labels import DLM1, MODALITIES

STATS_FILE = "input_check.safetensors"
TARGET_RATE = 0.05
FEATURES = (
    "the channel means and standard deviations of DLM-1's first stage (texture statistics; of its first member "
    "when DLM-1 is an ensemble), unmirrored view"
)


def cohort_features(
    cascade, cohort, *, batch_size: int = 32, progress: Callable[[int, int], None] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, list[str | None]]]:
    """DLM-1 features ``{modality: (N, D)}`` of every image of ``cohort`` and each image's plausibility reason."""
    import torch

    from softmass_core.cohorts.evaluate import _load_row

    spec = cascade.weight_set.input_spec
    feats: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    reasons: dict[str, list[str | None]] = {m: [] for m in MODALITIES}
    rows = list(cohort.rows)
    for start in range(0, len(rows), batch_size):
        prepared = [_load_row(r, spec) for r in rows[start : start + batch_size]]
        index = [(m, p[m]) for p in prepared for m in MODALITIES if m in p]
        if not index:
            continue
        batch = torch.from_numpy(np.stack([p.array for _, p in index]))
        pooled: list[torch.Tensor] = []
        cascade.probabilities(DLM1, batch, check_features=pooled)
        first = pooled[0][: len(index)].cpu().numpy().astype(np.float64)
        for j, (m, p) in enumerate(index):
            feats[m].append(first[j])
            reasons[m].append(plausibility(p, m, spec))
        if progress:
            progress(min(start + batch_size, len(rows)), len(rows))
    return {m: np.stack(v) for m, v in feats.items() if v}, {m: r for m, r in reasons.items() if r}


def fit_gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision matrix of a Ledoit-Wolf shrunk covariance (Lee et al. 2018's single Gaussian)."""
    from sklearn.covariance import LedoitWolf

    if len(features) < 2:
        raise SoftmassError("The input check needs at least two training images of a modality to fit.")
    lw = LedoitWolf().fit(features)
    return lw.location_, lw.precision_


def limit_at(scores: np.ndarray, implausible: Sequence[bool], rate: float = TARGET_RATE) -> float:
    """Lowest threshold at which at most ``rate`` of the ROIs are flagged (score > threshold, or implausible)."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = np.asarray(implausible, dtype=bool)
    allowed = math.floor(rate * len(scores) + 1e-9) - int(bad.sum())
    ok = np.sort(scores[~bad])[::-1]
    if len(ok) == 0:
        return float(np.max(scores))
    return float(ok[min(max(allowed, 0), len(ok) - 1)])


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    d = features - mean
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, precision, d), 0.0))


def fit_input_check(
    folder: str | Path,
    cohort_csv: str | Path,
    *,
    train_cohorts: Sequence[str] | None = None,
    val_cohort: str | None = None,
    cascade=None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fit the input check of the weight set in ``folder`` and record it; returns the manifest block.

    ``train_cohorts`` and ``val_cohort`` default to the manifest's
    ``training.train_cohorts`` and ``training.validation_cohort``.
    """
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.inference.cascade import Cascade
    from softmass_core.weights.manifest import read_manifest
    from softmass_core.weights.weight_set import WeightSet

    folder = Path(folder)
    manifest = read_manifest(folder)
    training = manifest.raw.get("training") or {}
    train_cohorts = list(train_cohorts or training.get("train_cohorts") or [])
    val_cohort = val_cohort or training.get("validation_cohort")
    if not train_cohorts or not val_cohort:
        raise SoftmassError(
            f"{manifest.path} names no training cohorts (training.train_cohorts) or validation cohort: "
            "give them (--input-check-train, --val-cohort) or skip the input check (--no-input-check)."
        )
    cohort = read_cohort(cohort_csv)
    missing = [c for c in [*train_cohorts, val_cohort] if c not in cohort.names]
    if missing:
        raise SoftmassError(f"{cohort_csv}: no cohort named {missing}; it has {cohort.names}.")
    cascade = cascade or Cascade(WeightSet(manifest))
    train, _ = cohort_features(cascade, cohort.subset(train_cohorts), progress=progress)
    val, val_bad = cohort_features(cascade, cohort.subset([val_cohort]), progress=progress)
    tensors: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    rates: dict[str, float] = {}
    n_flagged = n_val = 0
    for m in MODALITIES:
        if m not in train:
            continue
        mean, precision = fit_gaussian(train[m])
        tensors[f"{m}.mean"] = mean.astype(np.float32)
        tensors[f"{m}.precision"] = precision.astype(np.float32)
        if m not in val:
            raise SoftmassError(f"The '{val_cohort}' cohort has no {m} image to choose the input check's limit on.")
        # Score with the stored float32 statistics, as inference will.
        scores = mahalanobis(
            val[m], tensors[f"{m}.mean"].astype(np.float64), tensors[f"{m}.precision"].astype(np.float64)
        )
        bad = [r is not None for r in val_bad[m]]
        thresholds[m] = limit_at(scores, bad)
        flagged = int(np.sum((scores > thresholds[m]) | np.asarray(bad)))
        rates[m] = flagged / len(scores)
        n_flagged, n_val = n_flagged + flagged, n_val + len(scores)
    block = {
        "method": "mahalanobis",
        "method_doc": "Mahalanobis distance of " + FEATURES + " to the training ROIs' mean, one Gaussian per "
        "modality with a Ledoit-Wolf shrunk covariance (Lee et al. 2018)",
        "threshold": thresholds,
        "target_rate": TARGET_RATE,
        "fitted_on": {
            "cohort_csv": str(cohort_csv),
            "train_cohorts": train_cohorts,
            "n_train_images": {m: len(v) for m, v in train.items()},
            "validation_cohort": val_cohort,
            "n_validation_images": {m: len(v) for m, v in val.items()},
            "date": date.today().isoformat(),
        },
        "validation_flag_rate": {**rates, "all": n_flagged / n_val if n_val else None},
        "plausibility": {
            "min_side_px": MIN_SIDE,
            "blank_std": BLANK_STD,
            "gray_chroma": f"> {CHROMA_SHARE:.0%} of ROI pixels with max-min of RGB > {CHROMA_LEVEL}",
        },
    }
    return record_input_check(folder, tensors, block)


def record_input_check(folder: str | Path, tensors: dict[str, np.ndarray], block: dict[str, Any]) -> dict[str, Any]:
    """Write ``tensors`` ({m}.mean, {m}.precision) to the statistics file and ``block`` (with the file's
    name and sha256) to the manifest's ``input_check``; rewrite the model card.  Returns the block."""
    from safetensors.numpy import save_file

    from softmass_core.weights.manifest import sha256_file
    from softmass_core.weights.modelcard import update_manifest

    path = Path(folder) / STATS_FILE
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path))
    block = {"file": STATS_FILE, "sha256": sha256_file(path), **block}

    def edit(raw: dict[str, Any]) -> None:
        raw["input_check"] = block  # a refit replaces any earlier block, measurements included (they are stale)

    update_manifest(folder, edit)
    return block
