"""Temperature scaling of a weight set's models, fitted on its validation cohort (``retune``).

For each model: the raw logits (before any temperature) of every image and
test-time view of the validation cases that model scores (every case for
DLM-1; the cases of a known benign subtype for a DLM-2 sub-model, as
:func:`softmass_core.training.retune.operating_thresholds` uses them), then
:func:`softmass_core.stats.calibration.cross_validated_temperature` with the
cascade's own fusion rule.  The result is the manifest's
``models.<id>.temperature`` object; the cascade applies ``value`` only when
``kept``.  :func:`with_temperatures` gives the manifest the thresholds are
then chosen on, so operating points sit on the calibrated scores.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from softmass_core.errors import MetricsError
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS, SUBTYPES


def validation_logits(
    weight_set, cohort, *, batch_size: int = 16
) -> tuple[list, dict[str, list[dict[str, np.ndarray]]]]:
    """``(rows, {model_id: [{modality: (views, classes) logits} per row]})`` of every row of ``cohort``.

    For an ensemble of k members the logits are (k * views, classes), member-major: the mean over that axis
    of softmax(logits / T) is then the ensemble's probability, as the cascade computes it (each member's
    logits divided by T before its softmax, members and views averaged with equal weights).
    """
    import torch

    from softmass_core.cohorts.evaluate import _load_row
    from softmass_core.inference import tta

    views = weight_set.manifest.tta
    n_views = tta.n_passes(views)
    rows = list(cohort.rows)
    out: dict[str, list[dict[str, np.ndarray]]] = {mid: [] for mid in weight_set.manifest.models}
    for start in range(0, len(rows), batch_size):
        prepared = [_load_row(r, weight_set.input_spec) for r in rows[start : start + batch_size]]
        index = [(i, m) for i, p in enumerate(prepared) for m in MODALITIES if m in p]
        x = tta.expand(torch.from_numpy(np.stack([prepared[i][m].array for i, m in index])), views)
        for mid in out:
            with torch.no_grad():  # (members, views * images, classes)
                logits = np.stack([net(x).float().numpy().astype(np.float64) for net in weight_set.members(mid)])
            logits = logits.reshape(len(logits) * n_views, len(index), -1)  # expand is view-major
            cases: list[dict[str, np.ndarray]] = [{} for _ in prepared]
            for j, (i, m) in enumerate(index):
                cases[i][m] = logits[:, j, :]
            out[mid] += cases
    return rows, out


def fit_temperatures(cascade, cohort, val_cohort: str, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{model_id: manifest temperature object}`` fitted on ``val_cohort`` through ``cascade``'s fusion rule."""
    from softmass_core.inference.cascade import fuse
    from softmass_core.stats.calibration import cross_validated_temperature

    ws = cascade.weight_set
    rows, logits = validation_logits(ws, cohort.subset([val_cohort]))
    labels = np.array([r.label for r in rows])
    fuse_rule = partial(fuse, rule=cascade.fusion_rule)
    out: dict[str, dict[str, Any]] = {}
    for mid, cases in logits.items():
        if mid == DLM1:
            keep = np.ones(len(rows), dtype=bool)
            y = labels == MALIGNANT
        else:
            keep = np.isin(labels, SUBTYPES)
            y = labels[keep] == SUBMODEL_IDS[mid]
        entry = ws.entry(mid)
        try:
            fit = cross_validated_temperature(
                y.astype(int),
                [c for c, k in zip(cases, keep) if k],
                fuse_rule,
                positive_index=entry.positive_index,
                seed=seed,
            )
        except MetricsError as exc:
            out[mid] = {"value": 1.0, "kept": False, "how": f"not fitted on '{val_cohort}': {exc}"}
            continue
        fit["how"] = f"on '{val_cohort}': " + fit["how"]
        out[mid] = fit
    return out


def with_temperatures(manifest, temperatures: dict[str, dict[str, Any]]):
    """``manifest`` whose models divide their logits by the kept temperatures (1.0 where not kept)."""
    return replace(
        manifest,
        models={
            m: replace(e, temperature=float(temperatures[m]["value"]) if temperatures[m]["kept"] else 1.0)
            for m, e in manifest.models.items()
        },
    )
