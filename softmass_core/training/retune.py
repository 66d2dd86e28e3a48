"""Operating points of a weight set: ``python -m softmass_core retune ...``.

Choosing thresholds is part of how a weight set is used, not of its weights.
This module chooses them the way the shipped cascade scores cases: each
model's case scores on the validation cohort come from :class:`Cascade`
(stored weights, the manifest's fusion rule and test-time views), and each
model's threshold is the one that maximises Youden's J there.

``train`` calls :func:`operating_thresholds` after it writes a weight set;
``retune`` applies it to an existing set, optionally switching its
test-time augmentation first, and re-records the metrics of every cohort in
the cohort CSV.  Weight files and their sha256 never change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.errors import SoftmassError
from softmass_core.labels import DLM1, SUBMODEL_IDS, SUBTYPES


def threshold_method(val_cohort: str, fusion_rule: str, views) -> str:
    how = f"Youden's J on the '{val_cohort}' cohort (case score = {fusion_rule} of images"
    return how + (", mirrored view averaged)" if "hflip" in views else ")")


def operating_thresholds(cascade, cohort, val_cohort: str, keep: dict | None = None) -> dict[str, tuple[float, str]]:
    """``{model_id: (threshold, how chosen)}`` from ``cascade``'s scores on ``val_cohort``.

    A task with a single class in ``val_cohort`` gets 0.5, and its "how
    chosen" says so (it shows in the manifest and the model card).  ``keep``,
    when given, receives the validation predictions as ``keep["predictions"]``.
    """
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.stats.roc import youden_threshold

    ws = cascade.weight_set
    if val_cohort not in cohort.names:
        raise SoftmassError(f"No cohort named {val_cohort!r} to choose thresholds on; the CSV has {cohort.names}.")
    df = predict_cohort(cascade, cohort.subset([val_cohort]))
    if keep is not None:
        keep["predictions"] = df
    how = threshold_method(val_cohort, cascade.fusion_rule, ws.manifest.tta)
    out: dict[str, tuple[float, str]] = {}
    for model_id in ws.manifest.models:
        if model_id == DLM1:
            y = df["y_malignant"].to_numpy(dtype=int)
            s = df["p_malignant"].to_numpy(dtype=float)
        else:
            subtype = SUBMODEL_IDS[model_id]
            benign = df[df["label"].isin(SUBTYPES)]
            y = (benign["label"] == subtype).to_numpy(dtype=int)
            s = benign[f"score_{subtype}"].to_numpy(dtype=float)
        if len(np.unique(y)) < 2:
            out[model_id] = (0.5, f"default 0.5: the '{val_cohort}' cohort has a single class for this task")
        else:
            out[model_id] = (youden_threshold(y, s), how)
    return out


def retune(
    folder,
    cohort_csv,
    *,
    val_cohort: str = "validation",
    views=None,
    version: str | None = None,
    changes: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    progress=None,
    temperature: bool = True,
    input_check: bool = True,
    input_check_train: list[str] | None = None,
) -> dict[str, Any]:
    """Set test-time views (``None`` keeps them), re-choose every threshold, re-record metrics.

    ``input_check`` also (re)fits the input check: training ROIs of ``input_check_train``
    (default: the manifest's ``training.train_cohorts``), limit on ``val_cohort``
    (:func:`softmass_core.training.input_stats.fit_input_check`).

    ``version`` adds a changelog entry; its text is ``changes`` when given (say
    what is new, e.g. new weights copied into the folder), else a line saying
    the weights are the same and the thresholds were re-chosen.
    With ``temperature`` each model's temperature is fitted on ``val_cohort``
    first (:mod:`softmass_core.training.temperature`) and the thresholds are
    chosen on the scores it gives (``False`` keeps the manifest's).
    """
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import evaluate, record_metrics
    from softmass_core.inference.cascade import Cascade
    from softmass_core.inference.tta import check_views
    from softmass_core.training.interval import measure_dlm1
    from softmass_core.weights.manifest import read_manifest
    from softmass_core.weights.modelcard import update_manifest
    from softmass_core.weights.weight_set import WeightSet

    folder = Path(folder)
    before = read_manifest(folder)
    if views is not None:
        try:
            views = check_views(views, "--tta")
        except ValueError as exc:
            raise SoftmassError(str(exc)) from None
    if version is not None and version == before.version:
        raise SoftmassError(f"--version {version} is the set's current version; give the new one.")
    if changes is not None and (version is None or not changes.strip()):
        raise SoftmassError("--changes is the changelog text of a new version: give it with --version, and not empty.")
    cohort = read_cohort(cohort_csv)
    if val_cohort not in cohort.names:
        raise SoftmassError(f"{cohort_csv}: no cohort named {val_cohort!r}; it has {cohort.names}.")
    manifest = before if views is None else replace(before, tta=views)
    temperatures = None
    if temperature:  # before the thresholds: they are chosen on the calibrated scores
        from softmass_core.training.temperature import fit_temperatures, with_temperatures

        temperatures = fit_temperatures(Cascade(WeightSet(manifest)), cohort, val_cohort, seed=seed)
        manifest = with_temperatures(manifest, temperatures)
    kept: dict = {}
    thresholds = operating_thresholds(Cascade(WeightSet(manifest)), cohort, val_cohort, keep=kept)
    old = {m: e.threshold for m, e in before.models.items()}
    tta_text = ", ".join(manifest.tta) or "none"
    # Evaluate the retuned set in memory first: a cohort that fails to load leaves the files as they were.
    tuned = replace(
        manifest,
        version=version or manifest.version,
        models={m: replace(e, threshold=thresholds[m][0], threshold_method=thresholds[m][1])
                for m, e in manifest.models.items()},
    )  # fmt: skip
    ev = evaluate(Cascade(WeightSet(tuned)), cohort, progress=progress, n_boot=n_boot, seed=seed)
    dlm1_extra = measure_dlm1(Cascade(WeightSet(tuned)), cohort, val_cohort, kept["predictions"], seed=seed)

    def edit(raw: dict[str, Any]) -> None:
        raw["test_time_augmentation"] = list(manifest.tta)
        for model_id, (thr, how) in thresholds.items():
            raw["models"][model_id]["threshold"] = float(thr)
            raw["models"][model_id]["threshold_method"] = how
            if temperatures is not None:
                raw["models"][model_id]["temperature"] = temperatures[model_id]
        raw["models"][DLM1].update(dlm1_extra)  # operating points and score interval
        if version is not None:
            raw["version"] = version
            entry = {
                "version": version,
                "date": date.today().isoformat(),
                "changes": changes.strip()
                if changes is not None
                else f"Same weights. Test-time augmentation: {tta_text}. Thresholds re-chosen by Youden's J "
                f"on '{val_cohort}' through the cascade; metrics re-recorded.",
            }
            raw["changelog"] = [entry] + list(raw.get("changelog") or [])

    update_manifest(folder, edit)
    record_metrics(folder, ev, n_boot=n_boot, seed=seed)
    fitted = _fit_input_check(folder, cohort, cohort_csv, val_cohort, input_check, input_check_train, before)
    return {
        "input_check": fitted,
        "image_digests": record_image_digests(folder, cohort, before.raw, val_cohort, input_check_train),
        "test_time_augmentation": list(manifest.tta),
        "thresholds": {m: {"before": old[m], "after": t, "how": how} for m, (t, how) in thresholds.items()},
        "cohorts": list(ev.metrics),
        "temperature": temperatures or {},
        "operating_points": dlm1_extra["operating_points"],
        "interval": dlm1_extra["interval"],
        "stale": [k for k in ("scanner_shift", "ablation") if k in before.raw],
    }


def _fit_input_check(folder, cohort, cohort_csv, val_cohort, wanted: bool, train_cohorts, before) -> dict[str, Any]:
    """Fit the input check when asked and possible; else say why not (never silently)."""
    from softmass_core.training.input_stats import fit_input_check

    if not wanted:
        return {"skipped": "--no-input-check given; the set keeps its earlier input check, if any"}
    train_cohorts = list(train_cohorts or (before.raw.get("training") or {}).get("train_cohorts") or [])
    missing = [c for c in train_cohorts if c not in cohort.names]
    if not train_cohorts or missing:
        why = f"the CSV lacks {missing}" if missing else "the manifest names no training.train_cohorts"
        return {"skipped": f"no training cohort to fit on ({why}); give --input-check-train COHORTS"}
    return fit_input_check(folder, cohort_csv, train_cohorts=train_cohorts, val_cohort=val_cohort)


def record_image_digests(
    folder, cohort, raw: dict[str, Any], val_cohort: str, train_cohorts: list[str] | None = None
) -> dict[str, Any]:
    """Record the sha256 of the set's training and validation images (``training.image_digests``), if the CSV
    holds the training cohorts the manifest names (or, for a packed set that names none, ``train_cohorts``:
    retune's ``--input-check-train``); else say why not (evaluation then cannot check overlap)."""
    from softmass_core.cohorts.overlap import write_digests
    from softmass_core.weights.modelcard import update_manifest

    train_cohorts = list((raw.get("training") or {}).get("train_cohorts") or train_cohorts or [])
    missing = [c for c in train_cohorts if c not in cohort.names]
    if not train_cohorts or missing:
        why = f"the CSV lacks {missing}" if missing else "the manifest names no training.train_cohorts"
        return {"skipped": f"training images not recorded ({why})"}
    entry = write_digests(folder, cohort, train_cohorts, val_cohort)

    def edit(manifest: dict[str, Any]) -> None:
        manifest.setdefault("training", {})["image_digests"] = entry

    update_manifest(folder, edit)
    return entry
