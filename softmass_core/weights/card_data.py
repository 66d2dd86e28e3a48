"""What a weight set's manifest records, read out for people: estimates as text, headline figures, rows, fields.

Shared by the model card (:mod:`softmass_core.weights.modelcard`, which renders
Markdown from these) and the Weight sets page.  ``metrics`` is the
``{"cohorts": {name: {"dlm1": M, "dlm2": {subtype: M}}}}`` object that
:func:`softmass_core.cohorts.evaluate.evaluate` produces and ``train`` stores in
``manifest.json``.  Proportions are shown as percentages with one decimal,
AUC and F1 with three, as the paper prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from softmass_core.labels import cohort_label, display_name

METRIC_ROWS = (
    ("auc", "AUC", False),
    ("accuracy", "ACC (%)", True),
    ("sensitivity", "Sensitivity (%)", True),
    ("specificity", "Specificity (%)", True),
    ("ppv", "PPV (%)", True),
    ("npv", "NPV (%)", True),
    ("f1", "F1-score", False),
)


def number_or_nan(value: Any) -> float:
    """A float from a number or None (-> NaN)."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def format_estimate(est: Mapping[str, Any] | None, *, percent: bool = False, digits: int = 3) -> str:
    """``{"value", "ci_low", "ci_high"}`` -> ``"0.912 [0.850, 0.970]"`` (or ``"87.5 [84.7, 90.0]"``).

    ``percent=True`` multiplies by 100 and shows one decimal, as the paper's
    tables do for ACC, sensitivity, specificity, PPV and NPV.  Missing values
    show as ``"n/a"``; a missing interval is left out.
    """
    if est is None:
        return "n/a"
    value, lo, hi = (number_or_nan(est.get(k)) for k in ("value", "ci_low", "ci_high"))
    if math.isnan(value):
        return "n/a"
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, f"{{:.{digits}f}}")
    text = fmt.format(value * scale)
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{fmt.format(lo * scale)}, {fmt.format(hi * scale)}]"
    return text


#: Cohorts in the order cards show them: validation, the tests, anything else, and training last.
COHORT_ORDER = ("validation", "test_internal", "test_a", "test_b")


def cohort_order(cohorts: Sequence[str]) -> list[str]:
    """Validation, the tests, other cohorts as given, and training last (its figures flatter the model)."""
    head = [c for c in COHORT_ORDER if c in cohorts]
    rest = [c for c in cohorts if c not in COHORT_ORDER and c != "training"]
    return head + rest + (["training"] if "training" in cohorts else [])


# --------------------------------------------------------------------------- plain-language summary

#: Plain-language explanations of the terms the cards and the Weight sets page use (for tooltips).
GLOSSARY: dict[str, str] = {
    "AUC": "Area under the ROC curve: the chance that the model scores a random positive case (e.g. a malignant "
    "one) higher than a random negative one. 0.5 is guessing, 1.0 is perfect. It does not depend on the threshold.",
    "95% CI": "95% confidence interval: the range the true figure probably lies in, given how few cases were "
    "measured. A wide range means few cases, not a bad model.",
    "sensitivity": "Of the positive cases (e.g. the malignant ones), the share the model called positive.",
    "specificity": "Of the negative cases (e.g. the benign ones), the share the model called negative.",
    "ACC": "Accuracy: the share of all cases called correctly.",
    "PPV": "Positive predictive value: of the cases the model called positive, the share that were.",
    "NPV": "Negative predictive value: of the cases the model called negative, the share that were.",
    "F1": "One number balancing PPV and sensitivity (their harmonic mean).",
    "threshold": "The score at or above which a case is called positive (malignant, or the sub-model's subtype). "
    "Chosen on the validation cases.",
    "Youden's J": "How the thresholds were chosen: the score that makes sensitivity + specificity largest on the "
    "validation cases.",
    "fusion rule": "How the grey-scale and colour Doppler images' scores become one score for the case, e.g. "
    "their mean.",
    "test-time views": "Extra views of each image scored at prediction time (e.g. the image mirrored left to "
    "right); their probabilities are averaged.",
    "DeLong": "DeLong's method: how the AUC's confidence interval is worked out from the ranks of the scores.",
    "Clopper-Pearson": "An exact confidence interval for a proportion such as sensitivity.",
    "validation": "Cases from the same source as the training cases, kept out of training. The thresholds (and "
    "the best training round) were chosen on them, so their figures flatter the model a little.",
    "internal test": "Held-out cases from the same source as the training cases, never used to choose anything.",
    "external test": "Cases from another (simulated) hospital and scanner that the model never saw, not even to "
    "choose a threshold: the fairest figures.",
    "training": "The cases the model learned from: figures on them are optimistic and say little about new cases.",
    "sha256": "A fingerprint of each weight file; it is checked before the models load, so a changed or damaged "
    "file is refused.",
    "DLM-1": "The first model: benign or malignant.",
    "DLM-2": "Five sub-models (SM-1 to SM-5), one per benign subtype, run only when DLM-1 says benign; the "
    "highest-scoring sub-model names the subtype.",
}

#: What a set that does not say so itself is good for, by its ``data_kind``.
_TRUST_BY_KIND: dict[str, str] = {
    "simulated": "Seeing how the cascade, Grad-CAM and the metrics behave. It has only seen simulated images: "
    "its output on a real image means nothing.",
    "breast_ultrasound": "Seeing how a benign-or-malignant model behaves on real breast ultrasound. It has not "
    "seen superficial soft-tissue masses: its output on them means nothing clinically.",
    "soft_tissue_ultrasound": "Research on superficial soft-tissue masses. Not a medical device, not for clinical use.",
    "test": "Software tests only: its weights are random.",
}


def _models_text(manifest: Mapping[str, Any]) -> str:
    models = manifest.get("models") or {}
    n_sub = sum(1 for m in models if m != "dlm1")
    if n_sub:
        return f"DLM-1 (benign or malignant) and {n_sub} DLM-2 sub-models (one benign subtype each)"
    return "DLM-1 only (benign or malignant, never a subtype)"


def _estimate(entry: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    if not entry:
        return None
    est = (entry.get("metrics") or {}).get(key)
    return est if est and est.get("value") is not None else None


def headline_figures(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The card's headline: DLM-1 on each measured cohort but training, read from the manifest's metrics.

    One dict per cohort in display order (validation, tests): ``cohort``,
    ``label``, ``n``, ``n_positive``, ``auc``, ``sensitivity``,
    ``specificity`` (estimates ``{"value", "ci_low", "ci_high"}`` or None)
    and ``sub_auc_range`` (lowest and highest sub-model AUC, or None).
    """
    per = ((manifest.get("metrics") or {}).get("cohorts")) or {}
    out = []
    for cohort in cohort_order(list(per)):
        if cohort == "training":
            continue
        entry = per[cohort] or {}
        dlm1 = entry.get("dlm1") or {}
        subs = [_estimate(m, "auc") for m in (entry.get("dlm2") or {}).values()]
        sub_values = [e["value"] for e in subs if e is not None]
        out.append(
            {
                "cohort": cohort,
                "label": cohort_label(cohort),
                "n": dlm1.get("n"),
                "n_positive": dlm1.get("n_positive"),
                "auc": _estimate(dlm1, "auc"),
                "sensitivity": _estimate(dlm1, "sensitivity"),
                "specificity": _estimate(dlm1, "specificity"),
                "sub_auc_range": (min(sub_values), max(sub_values)) if sub_values else None,
            }
        )
    return out


def percent_estimate(est: Mapping[str, Any] | None) -> str:
    """``"91.2% [84.7, 95.9]"`` for a proportion's estimate (``"n/a"`` when missing)."""
    text = format_estimate(est, percent=True)
    return text if text == "n/a" else text.replace(" [", "% [", 1) if "[" in text else text + "%"


def plain_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What a weight set learned, what to trust it for, and its headline figures, in plain language.

    ``learned`` and ``trust_for`` come from the manifest's ``summary`` block
    when it has one (else from its ``data_kind`` and models), with the
    training counts from ``training``; ``figures`` are :func:`headline_figures`
    (read from the recorded metrics, never typed in).
    """
    written = manifest.get("summary") or {}
    learned = str(written.get("learned") or manifest.get("description") or "").strip()
    tr = manifest.get("training") or {}
    counts = ""
    if tr.get("n_train_cases"):
        counts = f"Trained on {tr['n_train_cases']} cases"
        if tr.get("n_train_images"):
            counts += f" ({tr['n_train_images']} images)"
        if tr.get("n_validation_cases"):
            counts += f", checked on {tr['n_validation_cases']} validation cases"
        counts += "."
    models = f"Models: {_models_text(manifest)}."
    trust = str(written.get("trust_for") or _TRUST_BY_KIND.get(manifest.get("data_kind", ""), "")).strip()
    return {
        "learned": " ".join(t for t in (learned, models, counts) if t),
        "trust_for": trust,
        "figures": headline_figures(manifest),
    }


def metrics_rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per cohort and task, cohorts in display order (training last, labelled optimistic).

    Columns: ``cohort``, ``task``, ``n (positive)`` and one column per metric
    of :data:`METRIC_ROWS` (``"0.912 [0.850, 0.970]"``; percentages for the
    proportions).
    """
    per = metrics.get("cohorts", metrics) if isinstance(metrics, Mapping) else {}
    rows: list[dict[str, str]] = []
    for cohort in cohort_order(list(per)):
        entry = per[cohort] or {}
        tasks = [("DLM-1 (malignant)", entry.get("dlm1"))]
        tasks += [(f"{display_name(t)} (DLM-2)", m) for t, m in (entry.get("dlm2") or {}).items()]
        for task, m in tasks:
            if not m:
                continue
            row = {
                "cohort": cohort_label(cohort),
                "task": task,
                "n (positive)": f"{m.get('n')} ({m.get('n_positive')})",
            }
            for key, title, pct in METRIC_ROWS:
                row[title] = format_estimate((m.get("metrics") or {}).get(key), percent=pct)
            rows.append(row)
    return rows


def training_fields(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The manifest's training record as readable ``(field, value)`` pairs (no raw dicts)."""
    tr = manifest.get("training") or manifest.get("training_data") or {}
    if isinstance(tr, str):
        return [("training data", tr)]
    cfg = tr.get("config") or {}
    src = tr.get("source") or {}
    out: list[tuple[str, str]] = []

    def add(name: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            out.append((name, _plain(value)))

    add("cohort file", tr.get("cohort_csv"))
    add("trained on", " + ".join(tr.get("train_cohorts") or []) or None)
    add(
        "training cases (images)",
        f"{tr['n_train_cases']} ({tr.get('n_train_images', '?')})" if tr.get("n_train_cases") else None,
    )
    add(
        "chosen on",
        f"{tr.get('n_validation_cases')} '{tr.get('validation_cohort')}' cases, by AUC"
        if tr.get("validation_cohort")
        else None,
    )
    if src:
        add("data drawn by", f"{src.get('generator', 'generator')} seed {src.get('seed')}, scale {src.get('scale')}")
    add("data", tr.get("data_source"))
    add("architecture", cfg.get("arch"))
    add("input (W x H)", f"{cfg['width']} x {cfg['height']} px" if cfg.get("width") else None)
    add("started from", cfg.get("init"))
    if cfg.get("pretrain_epochs"):
        add("shared pretraining", pretrain_text(cfg, tr.get("pretrain") or {}))
    add("fine-tuning", f"up to {cfg['epochs']} epochs per model" if cfg.get("epochs") else None)
    add("learning rate", " / ".join(str(cfg[k]) for k in ("lr", "finetune_lr") if k in cfg) or None)
    add("batch size", cfg.get("batch_size"))
    add("seed", cfg.get("seed"))
    add("device", tr.get("device"))
    add("training time", f"{tr['seconds']} s{resumed_text(tr)}" if tr.get("seconds") is not None else None)
    add("note", tr.get("note"))
    known = {"cohort_csv", "train_cohorts", "n_train_cases", "n_train_images", "n_validation_cases",
             "validation_cohort", "source", "data_source", "config", "pretrain", "device", "seconds",
             "seconds_in_earlier_processes", "seconds_note", "note", "reproduce"}  # fmt: skip
    for key, value in tr.items():
        if key not in known and not isinstance(value, (Mapping, list)):
            add(key.replace("_", " "), value)
    return out


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def task_auc(cohort_entry: Mapping[str, Any] | None, task: str) -> tuple[Mapping[str, Any] | None, str]:
    """(AUC estimate, "n (positive)") of ``task`` ("dlm1" or a subtype) in one cohort's metrics."""
    if not cohort_entry:
        return None, ""
    m = cohort_entry.get("dlm1") if task == "dlm1" else (cohort_entry.get("dlm2") or {}).get(task)
    if not m:
        return None, ""
    return (m.get("metrics") or {}).get("auc"), f"{m.get('n')} ({m.get('n_positive')})"


def resumed_text(tr: Mapping[str, Any]) -> str:
    earlier = tr.get("seconds_in_earlier_processes")
    return f" (a resumed run: {earlier} s of it before the last restart)" if earlier else ""


def pretrain_text(cfg: Mapping[str, Any], pre: Mapping[str, Any]) -> str:
    """``160 epochs`` or, when the run says where it stopped, ``up to 160 epochs (ran 118, ...)``."""
    planned = cfg.get("pretrain_epochs")
    if not pre.get("epochs_run"):
        return f"{planned} epochs"
    detail = [f"ran {pre['epochs_run']}"]
    if pre.get("epochs_scheduled"):
        detail.append(f"schedule fitted to {pre['epochs_scheduled']}")
    if pre.get("stopped_by") and pre["stopped_by"] != "epochs":
        detail.append(f"stopped by {pre['stopped_by']}")
    if pre.get("best_epoch") is not None:
        detail.append(f"best epoch {pre['best_epoch']}")
    return f"up to {planned} epochs ({', '.join(detail)})"
