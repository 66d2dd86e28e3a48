"""Run a weight set over a cohort: predictions table, metrics per cohort, ROC points.

DLM-1 is evaluated on every case (malignant = positive), as in the paper's
Table 2.  Each DLM-2 sub-model is evaluated one-vs-rest on the benign cases
whose subtype is known, as in Table 3.  Every model runs on every image
(``run_all``) so that each has a score for the ROC curves; the cascade's own
decision is kept in the ``diagnosis`` column.

A task whose cases hold one class only (a cohort labelled just ``benign`` /
``malignant`` has no case of a known subtype, so no sub-model can be
measured; a cohort of malignant cases only has no benign one) is reported,
not refused: its entry says ``"computable": false`` and why, every metric it
cannot define is None with its reason under ``undefined``, and the other
tasks are measured as usual.  Every output names the threshold it used and
where that threshold came from (``operating_points``).

Under ``torchrun`` (``ranks``, :mod:`softmass_core.distributed`) the cohort's
batches are dealt out to the ranks (batch ``b`` to rank ``b mod N``), every
rank scores its own, and the predictions are gathered back in cohort order on
every rank; each case is scored in the very batch a single process would
use, so the predictions and metrics are the same, bit for bit.  The caller
lets rank 0 alone write them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.cohorts.cohort import Cohort, CohortRow
from softmass_core.cohorts.overlap import set_overlap
from softmass_core.distributed import SINGLE, Ranks, all_gather
from softmass_core.errors import CohortError, SoftmassError
from softmass_core.inference.cascade import Cascade
from softmass_core.io.images import load_image
from softmass_core.io.roi import Prepared, prepare
from softmass_core.labels import BENIGN, DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS, SUBTYPES
from softmass_core.paths import make_dir
from softmass_core.stats.decision import decision_curve

Progress = Callable[[int, int], None]


#: Columns that :func:`evaluate` adds to the predictions: the DLM-1 threshold behind
#: ``pred_malignant`` and ``diagnosis``, and where it came from.
THRESHOLD_COLUMNS = ("threshold", "operating_point")
#: Columns of :meth:`Evaluation.metrics_table`.
METRICS_TABLE_COLUMNS = (
    "cohort",
    "task",
    "metric",
    "n",
    "n_positive",
    "value",
    "ci_low",
    "ci_high",
    "method",
    "threshold",
    "operating_point",
    "computable",
    "note",
)


def set_operating_point(entry) -> str:
    """How a manifest model entry's own threshold was chosen, in words for tables and CSVs."""
    how = (getattr(entry, "threshold_method", "") or "").strip()
    return f"set's operating threshold ({how})" if how else "set's operating threshold"


@dataclass
class Evaluation:
    """Predictions and metrics of one weight set on one cohort file.

    ``operating_points`` says, per task (``"dlm1"`` or a subtype), where the
    threshold of its metrics came from (the set's manifest, the command line
    or the page's slider); ``n_boot`` and ``seed`` are those of the F1
    bootstrap, so metrics recomputed later from ``predictions`` match.
    """

    weight_set_id: str
    weight_set_version: str
    threshold: float
    fusion_rule: str
    predictions: Any  # pandas.DataFrame
    metrics: dict[str, dict[str, Any]]
    roc: dict[str, dict[str, Any]] = field(default_factory=dict)
    operating_points: dict[str, str] = field(default_factory=dict)
    n_boot: int = 2000
    seed: int = 0
    #: Per cohort, the images the set was trained or validated on (:mod:`~softmass_core.cohorts.overlap`);
    #: None when the set records none.
    overlap: dict[str, dict[str, Any]] | None = None

    def task_metrics(self, cohort: str, task: str) -> dict[str, Any] | None:
        """Metrics of ``task`` (``"dlm1"`` or a subtype) on ``cohort``; None when it was not measured there."""
        entry = self.metrics.get(cohort) or {}
        return entry.get(DLM1) if task == DLM1 else (entry.get("dlm2") or {}).get(task)

    def task_roc(self, cohort: str, task: str) -> dict[str, list[float]] | None:
        """ROC points ``{"fpr", "tpr", "thresholds"}`` of ``task`` on ``cohort``; None without both classes."""
        entry = self.roc.get(cohort) or {}
        return entry.get(DLM1) if task == DLM1 else (entry.get("dlm2") or {}).get(task)

    def notes(self, cohort: str) -> list[str]:
        """What is undefined on ``cohort`` and for which task (e.g. "DLM-1: ppv is undefined (...)")."""
        return list((self.metrics.get(cohort) or {}).get("warnings", []))

    def decision_curves(self) -> dict[str, list[dict[str, float]]]:
        """DLM-1's decision curve per cohort (:func:`softmass_core.stats.decision.decision_curve`), from the
        same predictions as predictions.csv: net benefit and treat-all at thresholds 0.01, ..., 0.99."""
        out = {}
        for cohort in self.metrics:
            sub = self.predictions[self.predictions["cohort"].astype(str) == str(cohort)]
            if len(sub):
                out[str(cohort)] = decision_curve(sub["y_malignant"].to_numpy(int), sub["p_malignant"].to_numpy(float))
        return out

    def metrics_json(self) -> dict[str, Any]:
        """The evaluation as JSON: ``cohorts.<cohort>.dlm1`` carries the metrics and the decision curve
        (computed here, not stored with the metrics, so manifests that record metrics stay small)."""
        cohorts = {c: dict(entry) for c, entry in self.metrics.items()}
        for c in cohorts:
            cohorts[c]["overlap"] = None if self.overlap is None else self.overlap.get(c)
        for c, curve in self.decision_curves().items():
            if cohorts[c].get(DLM1) is not None:
                cohorts[c][DLM1] = {**cohorts[c][DLM1], "decision_curve": curve}
        from softmass_core.cohorts.calibration import add_ece

        add_ece(cohorts, self.predictions)  # "ece" of each task (10 equal-width bins)
        return {
            "weight_set": {
                "id": self.weight_set_id,
                "version": self.weight_set_version,
            },
            "threshold": self.threshold,
            "operating_point": self.operating_points.get(DLM1, ""),
            "operating_points": dict(self.operating_points),
            "fusion_rule": self.fusion_rule,
            "cohorts": cohorts,
        }

    def metrics_table(self):
        """Long table: one row per (cohort, task, metric) with value, CI, threshold and operating point.

        ``computable`` is False for a task with one class only (or no case);
        ``note`` says why a value is empty (e.g. "no case of a known benign
        subtype in this cohort").
        """
        import pandas as pd

        rows = []
        for cohort, tasks in self.metrics.items():
            flat = [(DLM1, tasks.get(DLM1))] + [(k, v) for k, v in (tasks.get("dlm2") or {}).items()]
            for task, m in flat:
                if m is None:
                    continue
                undefined = m.get("undefined") or {}
                for name, est in m["metrics"].items():
                    rows.append(
                        {
                            "cohort": cohort,
                            "task": task,
                            "metric": name,
                            "n": m["n"],
                            "n_positive": m["n_positive"],
                            "value": est["value"],
                            "ci_low": est["ci_low"],
                            "ci_high": est["ci_high"],
                            "method": est["method"],
                            "threshold": m["threshold"],
                            "operating_point": self.operating_points.get(task, ""),
                            "computable": bool(m.get("computable", True)),
                            "note": undefined.get(name, "") if est["value"] is None else "",
                        }
                    )
        return pd.DataFrame(rows, columns=list(METRICS_TABLE_COLUMNS))

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write predictions.csv, metrics.json and metrics.csv to ``out_dir``."""
        out = make_dir(out_dir, "--out")
        files = {
            "predictions": out / "predictions.csv",
            "metrics_json": out / "metrics.json",
            "metrics_csv": out / "metrics.csv",
        }
        self.predictions.to_csv(files["predictions"], index=False)
        files["metrics_json"].write_text(json.dumps(self.metrics_json(), indent=2) + "\n", encoding="utf-8")
        self.metrics_table().to_csv(files["metrics_csv"], index=False)
        return files


def _load_row(row: CohortRow, spec) -> dict[str, Prepared]:
    out = {}
    for m in MODALITIES:
        if m in row.paths:
            try:
                img = load_image(row.paths[m])
                out[m] = prepare(img.rgb, row.rois.get(m), spec)
            except SoftmassError as exc:
                raise CohortError(f"line {row.line} ({row.case_id}), {m} image {row.paths[m].name}: {exc}") from exc
    return out


def predict_cohort(
    cascade: Cascade,
    cohort: Cohort,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    ranks: Ranks = SINGLE,
):
    """Every model's probability for every image and the fused scores, per case.

    A loader thread decodes and prepares the next batch of cases, stacks its
    images and adds their test-time views (one tensor that every model of
    the set then scores) while the models run on the current batch, so the
    models never wait for a file.  Under torchrun (``ranks``) this rank
    scores every ``world_size``-th batch and the table of every case comes
    back on every rank; ``progress`` counts this rank's cases.
    """
    import pandas as pd
    import torch

    ws = cascade.weight_set
    spec = ws.input_spec
    model_ids = list(ws.manifest.models)
    rows = list(cohort.rows)
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)][ranks.rank :: ranks.world_size]
    records: list[dict[str, Any]] = []
    done = 0
    total = sum(len(b) for b in batches)  # this rank's cases
    if progress:
        progress(0, total)

    def load_batch(batch):
        prepared = [_load_row(r, spec) for r in batch]
        index = [(i, m) for i, prep in enumerate(prepared) for m in MODALITIES if m in prep]
        tensor = torch.from_numpy(np.stack([prepared[i][m].array for i, m in index]))
        return index, cascade.expand(tensor), prepared

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load_batch, batches[0]) if batches else None
        for b, batch in enumerate(batches):
            index, views, prepared = future.result()
            if b + 1 < len(batches):
                future = pool.submit(load_batch, batches[b + 1])
            if cancel is not None and cancel.is_set():
                raise SoftmassError("Evaluation cancelled.")
            pooled: list = []  # pooled[0]: DLM-1 (always the first model), the input check reads it
            scores = {
                m: cascade.probabilities(m, views, expanded=True, check_features=pooled if m == DLM1 else None)[0]
                for m in model_ids
            }
            checks = cascade.input_checks(prepared, index, pooled)
            del views
            per_case: list[dict[str, dict[str, float]]] = [{} for _ in batch]
            for j, (i, m) in enumerate(index):
                per_case[i][m] = {mid: float(scores[mid][j]) for mid in model_ids}
            for row, per_image, check in zip(batch, per_case, checks):
                result = cascade.decide(per_image)
                rec: dict[str, Any] = {
                    "case_id": row.case_id,
                    "cohort": row.cohort,
                    "label": row.label,
                    "y_malignant": int(row.label == MALIGNANT),
                    "p_malignant": result.p_malignant,
                    "pred_malignant": int(result.malignant),
                    "diagnosis": result.diagnosis,
                    "out_of_distribution": check.out_of_distribution,
                }
                for m in MODALITIES:
                    rec[f"{m}_dlm1"] = per_image.get(m, {}).get(DLM1, np.nan)
                for sm_id, subtype in SUBMODEL_IDS.items():
                    if sm_id in model_ids:
                        rec[f"score_{subtype}"] = (result.sub_scores or {}).get(subtype, np.nan)
                        for m in MODALITIES:
                            rec[f"{m}_{sm_id}"] = per_image.get(m, {}).get(sm_id, np.nan)
                rec["age"] = row.age
                rec["sex"] = row.sex
                records.append(rec)
            done += len(batch)
            if progress:
                progress(done, total)
    if ranks.distributed:  # rank r scored batches r, r + N, ...: deal them back in cohort order
        shares = all_gather(ranks, [records[i : i + batch_size] for i in range(0, len(records), batch_size)])
        records = [rec for b in range(max(map(len, shares))) for share in shares if b < len(share) for rec in share[b]]
    return pd.DataFrame.from_records(records)


def cohort_metrics(
    predictions,
    *,
    dlm1_threshold: float,
    sub_thresholds: dict[str, float] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Metrics (Table 2 / Table 3 form) and ROC points per cohort from a predictions table.

    Each task's entry is :func:`~softmass_core.stats.binary.binary_metrics`'s
    result plus ``computable`` (both classes present, so the AUC and the ROC
    curve exist) and ``reason`` (why not, else None).  A sub-model with no
    benign case of known subtype in a cohort gets every metric None instead
    of an error.  ``warnings`` lists, per cohort, what is undefined and for
    which task.
    """
    metrics: dict[str, dict[str, Any]] = {}
    rocs: dict[str, dict[str, Any]] = {}
    for cohort, df in predictions.groupby("cohort", sort=False):
        y = df["y_malignant"].to_numpy(dtype=int)
        s = df["p_malignant"].to_numpy(dtype=float)
        notes: list[str] = []
        entry: dict[str, Any] = {}
        roc_entry: dict[str, Any] = {}
        entry[DLM1], roc_entry[DLM1] = _task_metrics(
            y, s, "DLM-1", (MALIGNANT, "benign"), threshold=dlm1_threshold, n_boot=n_boot, seed=seed, notes=notes
        )
        if sub_thresholds is not None and "score_lipoma" in df:
            benign = df[df["label"].isin(SUBTYPES)]
            entry["dlm2"] = {}
            roc_entry["dlm2"] = {}
            for sm_id, subtype in SUBMODEL_IDS.items():
                yb = (benign["label"] == subtype).to_numpy(dtype=int)
                sb = benign[f"score_{subtype}"].to_numpy(dtype=float)
                entry["dlm2"][subtype], roc_entry["dlm2"][subtype] = _task_metrics(
                    yb,
                    sb,
                    f"SM-{sm_id.removeprefix('sm')} ({subtype.replace('_', ' ')})",
                    (subtype.replace("_", " "), "other"),
                    threshold=sub_thresholds[subtype],
                    n_boot=n_boot,
                    seed=seed,
                    notes=notes,
                    empty_reason="no case of a known benign subtype in this cohort",
                )
        entry["warnings"] = list(dict.fromkeys(notes))
        metrics[str(cohort)] = entry
        rocs[str(cohort)] = roc_entry
    return metrics, rocs


def _task_metrics(
    y: np.ndarray,
    s: np.ndarray,
    title: str,
    classes: tuple[str, str],
    *,
    threshold: float,
    n_boot: int,
    seed: int,
    notes: list[str],
    empty_reason: str = "no case in this cohort",
) -> tuple[dict[str, Any], dict[str, list[float]] | None]:
    """One task's metrics (with ``computable`` and ``reason``) and ROC points; what is undefined goes to ``notes``."""
    import warnings

    from softmass_core.stats.binary import binary_metrics, empty_metrics
    from softmass_core.stats.roc import roc_curve

    n_pos = int(np.sum(y))
    n_neg = int(len(y)) - n_pos
    if len(y) == 0:
        result = empty_metrics(threshold=threshold, reason=empty_reason)
        reason: str | None = empty_reason
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # binary_metrics' warning is summarised below, per task
            result = binary_metrics(y, s, threshold=threshold, n_boot=n_boot, seed=seed)
        reason = None if n_pos and n_neg else f"only one class present: {n_pos} {classes[0]}, {n_neg} {classes[1]}"
    result["computable"] = reason is None
    result["reason"] = reason
    if reason is not None:
        notes.append(f"{title}: not computable ({reason}).")
    else:
        notes.extend(f"{title}: {name} is undefined ({why})." for name, why in result["undefined"].items())
    return result, _roc_points(roc_curve, y, s) if reason is None else None


def predictions_at(predictions, threshold: float, *, operating_point: str):
    """``predictions`` with ``pred_malignant`` and ``diagnosis`` redone at DLM-1 ``threshold``.

    The cascade's rule: a case scoring at or above ``threshold`` is
    malignant; otherwise the highest sub-model score names the subtype (ties:
    the first in SM-1..SM-5 order), or ``benign`` for a DLM-1-only set.  The
    ``threshold`` and ``operating_point`` columns say which threshold this is.
    Returns a new frame; the scores are untouched.
    """
    out = predictions.copy()
    malignant = out["p_malignant"].to_numpy(dtype=float) >= float(threshold)
    score_cols = [f"score_{st}" for st in SUBTYPES if f"score_{st}" in out]
    if len(score_cols) == len(SUBTYPES):
        benign_call = out[score_cols].idxmax(axis=1).str.removeprefix("score_")
    else:
        benign_call = BENIGN
    out["pred_malignant"] = malignant.astype(int)
    out["diagnosis"] = np.where(malignant, MALIGNANT, benign_call)
    out["threshold"] = float(threshold)
    out["operating_point"] = operating_point
    return out


def operating_point_at(ev: Evaluation, threshold: float, point: str | None = None) -> str:
    """Where DLM-1 ``threshold`` came from: the set's own or another of its operating points (``point``), or the user."""
    if point:
        return point
    if float(threshold) == float(ev.threshold):
        return ev.operating_points.get(DLM1, "set's operating threshold")
    return f"chosen on this page (the set's own is {ev.threshold:.3f})"


def metrics_at_threshold(ev: Evaluation, threshold: float) -> dict[str, dict[str, Any]]:
    """DLM-1's metrics per cohort of ``ev`` at ``threshold``, with ``ev``'s F1 bootstrap (``n_boot``, ``seed``).

    Same form as ``ev.metrics[cohort]["dlm1"]``; at ``ev.threshold`` the
    numbers are ``ev``'s own.  Undefined metrics are None without a warning
    (their reasons stay under ``undefined``).
    """
    import warnings

    from softmass_core.stats.estimate import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        metrics, _ = cohort_metrics(
            ev.predictions, dlm1_threshold=float(threshold), sub_thresholds=None, n_boot=ev.n_boot, seed=ev.seed
        )
    return {cohort: entry[DLM1] for cohort, entry in metrics.items()}


def evaluation_at(ev: Evaluation, threshold: float, dlm1: dict[str, dict[str, Any]], cohorts, point=None) -> Evaluation:
    """``ev`` restricted to ``cohorts`` with DLM-1 at ``threshold`` (``dlm1``: :func:`metrics_at_threshold`).

    Its ``metrics_table()`` names the threshold and where it came from; the
    sub-models keep their own thresholds.
    """
    merged = {c: dict(ev.metrics[c], dlm1=dlm1[c]) for c in cohorts if c in ev.metrics}
    points = {**ev.operating_points, DLM1: operating_point_at(ev, threshold, point)}
    return replace(ev, metrics=merged, threshold=float(threshold), operating_points=points)


def _roc_points(roc_curve, y, s) -> dict[str, list[float]] | None:
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, thr = roc_curve(y, s)
    return {
        "fpr": fpr.tolist(),
        "tpr": tpr.tolist(),
        "thresholds": [float(t) for t in thr],
    }


def _ci_methods(n_boot: int, seed: int) -> dict[str, str]:
    return {
        "auc": "DeLong",
        "accuracy, sensitivity, specificity": "Clopper-Pearson exact",
        "ppv, npv": "logit (Mercaldo et al. 2007)",
        "f1": f"percentile bootstrap, {n_boot} resamples, seed {seed}",
    }


def record_metrics(folder, ev: Evaluation, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Store ``ev``'s metrics in the weight set's manifest and rewrite its model card.

    Cohorts that ``ev`` holds replace the recorded ones of the same name; the
    others stay, provided they were measured at the same DLM-1 threshold and
    fusion rule with the same CI methods (otherwise they are dropped, since one
    table would mix two operating points or two bootstraps).  Weight files and
    their sha256 are untouched.
    """
    from softmass_core.weights.modelcard import update_manifest

    section = {
        "ci_methods": _ci_methods(n_boot, seed),
        "threshold_dlm1": ev.threshold,
        "fusion_rule": ev.fusion_rule,
        "cohorts": {},
    }

    def edit(manifest: dict[str, Any]) -> None:
        old = manifest.get("metrics") or {}
        same_point = old.get("threshold_dlm1") == ev.threshold and old.get("fusion_rule", ev.fusion_rule) == (
            ev.fusion_rule
        )
        if same_point and old.get("ci_methods") == section["ci_methods"]:
            section["cohorts"] = dict(old.get("cohorts") or {})
        section["cohorts"].update(ev.metrics)
        manifest["metrics"] = section

    return update_manifest(folder, edit)


#: Keys of ``manifest["replicates"]``: they name a section of the model card and a CLI argument.
def evaluate(
    cascade: Cascade,
    cohort: Cohort,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    cancel: threading.Event | None = None,
    operating_point: str | None = None,
    ranks: Ranks = SINGLE,
) -> Evaluation:
    """Predictions, metrics and ROC points of ``cascade`` on every cohort of ``cohort``.

    ``operating_point`` says where DLM-1's threshold came from when it is not
    the set's own (e.g. "given on the command line (--threshold)"); by default
    it is worked out from the manifest.  ``ranks``: shard the cases over a
    ``torchrun`` run (see the module docstring); every rank gets the whole
    evaluation.
    """
    ws = cascade.weight_set
    predictions = predict_cohort(
        cascade, cohort, batch_size=batch_size, progress=progress, cancel=cancel, ranks=ranks
    )  # fmt: skip
    sub_thresholds = (
        {subtype: ws.entry(sm_id).threshold for sm_id, subtype in SUBMODEL_IDS.items()} if ws.has_dlm2 else None
    )
    dlm1 = ws.entry(DLM1)
    if operating_point is None:
        same = cascade.threshold == dlm1.threshold
        operating_point = set_operating_point(dlm1) if same else "a threshold other than the set's own"
    points = {DLM1: operating_point}
    if sub_thresholds is not None:
        points.update({subtype: set_operating_point(ws.entry(sm)) for sm, subtype in SUBMODEL_IDS.items()})
    at = list(predictions.columns).index("diagnosis") + 1
    predictions.insert(at, "threshold", float(cascade.threshold))
    predictions.insert(at + 1, "operating_point", operating_point)
    metrics, rocs = cohort_metrics(
        predictions,
        dlm1_threshold=cascade.threshold,
        sub_thresholds=sub_thresholds,
        n_boot=n_boot,
        seed=seed,
    )
    overlap, seen = set_overlap(ws, cohort)
    predictions["seen_by_set"] = predictions["case_id"].map(seen).fillna("") if overlap is not None else None
    return Evaluation(
        overlap=overlap,
        weight_set_id=ws.id,
        weight_set_version=ws.version,
        threshold=cascade.threshold,
        fusion_rule=cascade.fusion_rule,
        predictions=predictions,
        metrics=metrics,
        roc=rocs,
        operating_points=points,
        n_boot=n_boot,
        seed=seed,
    )
