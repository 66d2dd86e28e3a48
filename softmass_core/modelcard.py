"""Model-card tables in the form of the paper's Tables 2 and 3, from manifest metrics.

``metrics`` is the ``{"cohorts": {name: {"dlm1": M, "dlm2": {subtype: M}}}}``
object that :func:`softmass_core.evaluate.evaluate` produces and ``train``
stores in ``manifest.json``.  Proportions are shown as percentages with one
decimal, AUC and F1 with three, as the paper prints them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from softmass_core.labels import SUBTYPES, display_name
from softmass_core.stats.formatting import format_p

METRIC_ROWS = (
    ("auc", "AUC", False),
    ("accuracy", "ACC (%)", True),
    ("sensitivity", "Sensitivity (%)", True),
    ("specificity", "Specificity (%)", True),
    ("ppv", "PPV (%)", True),
    ("npv", "NPV (%)", True),
    ("f1", "F1-score", False),
)


def _num(value: Any) -> float:
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
    value, lo, hi = (_num(est.get(k)) for k in ("value", "ci_low", "ci_high"))
    if math.isnan(value):
        return "n/a"
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, f"{{:.{digits}f}}")
    text = fmt.format(value * scale)
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{fmt.format(lo * scale)}, {fmt.format(hi * scale)}]"
    return text


#: Cohorts in the order cards show them: validation, the tests, anything else, and training last.
COHORT_ORDER = ("validation", "test_internal", "test_a", "test_b")

#: How each cohort of a weight set's metrics is named for people.
COHORT_NAMES: dict[str, str] = {
    "validation": "validation",
    "test_internal": "internal test",
    "test_a": "external test A",
    "test_b": "external test B",
    "training": "training (optimistic)",
}


def _order(cohorts: Sequence[str]) -> list[str]:
    """Validation, the tests, other cohorts as given, and training last (its figures flatter the model)."""
    head = [c for c in COHORT_ORDER if c in cohorts]
    rest = [c for c in cohorts if c not in COHORT_ORDER and c != "training"]
    return head + rest + (["training"] if "training" in cohorts else [])


def cohort_label(name: str) -> str:
    """``"external test A"`` for ``test_a``, ``"training (optimistic)"`` for ``training``; others as given."""
    return COHORT_NAMES.get(name, name)


def table2_markdown(metrics: Mapping[str, Any], cohorts: Sequence[str] | None = None) -> str:
    """DLM-1 performance per cohort (rows: metrics; columns: cohorts)."""
    per = metrics.get("cohorts", metrics)
    names = _order(list(cohorts or per))
    head = "| | " + " | ".join(
        f"{cohort_label(c)} (n={per[c]['dlm1']['n']}, {per[c]['dlm1']['n_positive']} malignant)" for c in names
    )
    lines = [head + " |", "|---|" + "---|" * len(names)]
    for key, title, pct in METRIC_ROWS:
        cells = [format_estimate(per[c]["dlm1"]["metrics"].get(key), percent=pct) for c in names]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table3_markdown(metrics: Mapping[str, Any], cohorts: Sequence[str] | None = None) -> str:
    """DLM-2 one-vs-rest performance per subtype and cohort (benign cases only)."""
    per = metrics.get("cohorts", metrics)
    names = [c for c in _order(list(cohorts or per)) if per[c].get("dlm2")]
    if not names:
        return "_This weight set has DLM-1 only._"
    titles = [t for _, t, _ in METRIC_ROWS]
    lines = ["| | n (positive) | " + " | ".join(titles) + " |", "|---|---|" + "---|" * len(titles)]
    for subtype in SUBTYPES:
        lines.append(f"| **{display_name(subtype)}** | | " + " | ".join("" for _ in titles) + " |")
        for c in names:
            m = per[c]["dlm2"][subtype]
            cells = [format_estimate(m["metrics"].get(k), percent=p) for k, _, p in METRIC_ROWS]
            lines.append(f"| {cohort_label(c)} | {m['n']} ({m['n_positive']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    for cohort in _order(list(per)):
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


def _figure_sentence(fig: Mapping[str, Any]) -> str:
    text = (
        f"**{fig['label']}** ({fig['n']} cases, {fig['n_positive']} malignant): DLM-1 AUC {format_estimate(fig['auc'])}"
    )
    if fig["sensitivity"] and fig["specificity"]:
        text += (
            f"; at the set's threshold, sensitivity {percent_estimate(fig['sensitivity'])} and specificity "
            f"{percent_estimate(fig['specificity'])}"
        )
    if fig["sub_auc_range"]:
        lo, hi = fig["sub_auc_range"]
        text += f"; DLM-2 sub-model AUCs {lo:.3f} to {hi:.3f}"
    return text + "."


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


def summary_markdown(manifest: Mapping[str, Any]) -> list[str]:
    """Lines of the card's opening "In short" section (:func:`plain_summary` as Markdown)."""
    summary = plain_summary(manifest)
    lines = ["## In short", "", f"**What it learned.** {summary['learned']}", ""]
    if summary["trust_for"]:
        lines += [f"**What to trust it for.** {summary['trust_for']}", ""]
    if summary["figures"]:
        lines += [
            "**Headline figures** (95% confidence intervals in brackets; training figures are left out: "
            "they flatter the model):",
            "",
        ]
        lines += [f"- {_figure_sentence(fig)}" for fig in summary["figures"]]
        lines.append("")
    return lines


def metrics_rows(metrics: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per cohort and task, cohorts in display order (training last, labelled optimistic).

    Columns: ``cohort``, ``task``, ``n (positive)`` and one column per metric
    of :data:`METRIC_ROWS` (``"0.912 [0.850, 0.970]"``; percentages for the
    proportions).
    """
    per = metrics.get("cohorts", metrics) if isinstance(metrics, Mapping) else {}
    rows: list[dict[str, str]] = []
    for cohort in _order(list(per)):
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
        add("shared pretraining", _pretrain_text(cfg, tr.get("pretrain") or {}))
    add("fine-tuning", f"up to {cfg['epochs']} epochs per model" if cfg.get("epochs") else None)
    add("learning rate", " / ".join(str(cfg[k]) for k in ("lr", "finetune_lr") if k in cfg) or None)
    add("batch size", cfg.get("batch_size"))
    add("seed", cfg.get("seed"))
    add("device", tr.get("device"))
    add("training time", f"{tr['seconds']} s{_resumed_text(tr)}" if tr.get("seconds") is not None else None)
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


def _tta_line(views: Sequence[str]) -> str:
    if "hflip" in views:
        return (
            "- Test-time augmentation: every image is also scored mirrored left to right and the two "
            "probabilities are averaged; Grad-CAM maps are averaged the same way."
        )
    return "- Test-time augmentation: none (one pass per image)."


def render_model_card(manifest: Mapping[str, Any]) -> str:
    """A model-card README (Markdown) from a manifest dictionary."""
    m = manifest
    lines = [f"# Weight set `{m['id']}` {m.get('version', '')}", ""]
    lines += [
        "> **Research demo, not a medical device, not for clinical use.** " + str(m.get("intended_use", "")),
        "",
    ]
    if m.get("description"):
        lines += [str(m["description"]), ""]
    lines += summary_markdown(m)
    kind = {
        "simulated": "simulated ultrasound (softmass phantom): not real patients",
        "breast_ultrasound": "breast ultrasound: not superficial soft-tissue masses",
        "soft_tissue_ultrasound": "superficial soft-tissue ultrasound",
        "test": "test weights",
    }.get(m.get("data_kind", ""), m.get("data_kind", ""))
    lines += ["## Data and limitations", "", f"Data kind: **{kind}**.", ""]
    for item in m.get("limitations", []) or []:
        lines.append(f"- {item}")
    if m.get("limitations"):
        lines.append("")
    arch = m.get("architecture", {})
    spec = m.get("input", {})
    lines += [
        "## Model",
        "",
        f"- Architecture: timm `{arch.get('timm_name')}`{' ' + str(arch['timm_args']) if arch.get('timm_args') else ''}, classifier replaced, "
        "built with `pretrained=False` and loaded from safetensors.",
        f"- Input: ROI resized to {spec.get('width')} x {spec.get('height')} (W x H), resize mode "
        f"`{spec.get('resize_mode', 'stretch')}`, interpolation `{spec.get('interpolation', 'bilinear')}`, "
        f"mean {spec.get('mean')}, std {spec.get('std')}; grayscale replicated to 3 channels.",
        f"- Case score: {m.get('fusion', {}).get('rule', 'mean')} of the available images' probabilities.",
        _tta_line(m.get("test_time_augmentation") or []),
        "",
        "| model | labels | threshold | how chosen | storage | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for mid, e in m.get("models", {}).items():
        lines.append(
            f"| {mid} | {' / '.join(e['labels'])} | {e['threshold']:.3f} | {e.get('threshold_method', '')} | "
            f"{e.get('storage_dtype', 'float32')} | `{e['sha256'][:16]}...` |"
        )
    lines.append("")
    tr = m.get("training") or {}
    if tr:
        cfg = tr.get("config", {})
        lines += [
            "## Training",
            "",
            f"- Cohort CSV: `{tr.get('cohort_csv')}`; trained on {tr.get('n_train_cases')} cases "
            f"({tr.get('n_train_images')} images) of {tr.get('train_cohorts')}, selected on "
            f"{tr.get('n_validation_cases')} `{tr.get('validation_cohort')}` cases by AUC.",
            f"- Init `{cfg.get('init')}`, shared multi-task pretraining {_pretrain_text(cfg, tr.get('pretrain') or {})}, "
            f"fine-tuning up to {cfg.get('epochs')} epochs per model, AdamW lr {cfg.get('lr')} / "
            f"{cfg.get('finetune_lr')}, batch {cfg.get('batch_size')}, seed {cfg.get('seed')}.",
            f"- Device `{tr.get('device')}`; wall time {tr.get('seconds')} s{_resumed_text(tr)}. "
            f"{tr.get('seconds_note', '')}".rstrip(),
        ]
        if tr.get("data_source"):
            lines.append(f"- Data: {tr['data_source']}")
        if tr.get("note"):
            lines.append(f"- Note: {tr['note']}")
        if tr.get("reproduce"):
            lines += ["- Reproduce:", "", "```bash", str(tr["reproduce"]), "```"]
        lines.append("")
    metrics = m.get("metrics") or {}
    if metrics.get("cohorts"):
        lines += [
            "## Measured performance",
            "",
            "CI methods: " + "; ".join(f"{k}: {v}" for k, v in (metrics.get("ci_methods") or {}).items()) + ".",
            "",
            "### DLM-1 (benign vs malignant), in the form of the paper's Table 2",
            "",
            table2_markdown(metrics),
            "",
        ]
        if any(c.get("dlm2") for c in metrics["cohorts"].values()):
            lines += [
                "### DLM-2 (one-vs-rest on benign cases), in the form of the paper's Table 3",
                "",
                table3_markdown(metrics),
                "",
            ]
    lines += replicates_markdown(m.get("replicates"), metrics)
    lines += shift_markdown(m.get("scanner_shift"))
    lines += ablation_markdown(m.get("ablation"))
    for note in m.get("notes", []) or []:
        lines.append(f"- {note}")
    lines += [
        "## Changelog",
        "",
        *[f"- {c.get('version')} ({c.get('date')}): {c.get('changes')}" for c in m.get("changelog", [])],
        "",
    ]
    return "\n".join(lines)


def _auc_cell(value: Any) -> str:
    v = _num(value)
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def shift_markdown(shift: Mapping[str, Any] | None) -> list[str]:
    """Lines of the "scanner shift on identical lesions" section (``softmass_core.shift`` rows)."""
    if not shift or not shift.get("rescans"):
        return []
    lines = ["## Scanner shift on identical lesions", ""]
    if shift.get("description"):
        lines += [str(shift["description"]), ""]
    for key, entry in shift["rescans"].items():
        where = f"as `{entry['rescan']}`" if entry.get("rescan") else f"({key})"
        lines += [
            f"### `{entry.get('original', '?')}` re-scanned {where}",
            "",
            "| task | n (positive) | AUC, as first scanned | AUC, re-scanned | difference [95% CI] | p (paired DeLong) |",
            "|---|---|---|---|---|---|",
        ]
        for r in entry.get("rows", []):
            diff, lo, hi, pv = (_num(r.get(k)) for k in ("difference", "ci_low", "ci_high", "p_value"))
            cell = "n/a" if math.isnan(diff) else f"{diff:+.3f}"
            if not (math.isnan(lo) or math.isnan(hi)):
                cell += f" [{lo:+.3f}, {hi:+.3f}]"
            p_text = format_p(pv)
            lines.append(
                f"| {r.get('task')} | {r.get('n')} ({r.get('n_positive')}) | {_auc_cell(r.get('auc_original'))} | "
                f"{_auc_cell(r.get('auc_rescan'))} | {cell} | {p_text} |"
            )
        lines.append("")
        if entry.get("command"):
            lines += ["```bash", str(entry["command"]), "```", ""]
    return lines


def _task_auc(cohort_entry: Mapping[str, Any] | None, task: str) -> tuple[Mapping[str, Any] | None, str]:
    """(AUC estimate, "n (positive)") of ``task`` ("dlm1" or a subtype) in one cohort's metrics."""
    if not cohort_entry:
        return None, ""
    m = cohort_entry.get("dlm1") if task == "dlm1" else (cohort_entry.get("dlm2") or {}).get(task)
    if not m:
        return None, ""
    return (m.get("metrics") or {}).get("auc"), f"{m.get('n')} ({m.get('n_positive')})"


def _source_text(entry: Mapping[str, Any]) -> str:
    """Where a replicate's cases came from: the generator's own record (``phantom.json``), else the CSV path."""
    src = entry.get("source") or {}
    if not src:
        return f"Cases from `{entry.get('cohort_csv')}`."
    n = sum((src.get("cohorts") or {}).values())
    scale, difficulty = (_num(src.get(k)) for k in ("scale", "difficulty"))
    return (
        f"{n} simulated cases drawn afresh with `phantom --seed {src.get('seed')} --scale {scale:g}` "
        f"(difficulty {difficulty:g}, generator version {src.get('generator_version')})."
    )


def replicates_markdown(replicates: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None) -> list[str]:
    """Lines of the "larger independent samples" section: each replicate's AUC beside the recorded one."""
    if not replicates:
        return []
    recorded = (metrics or {}).get("cohorts") or {}
    lines = [
        "## Larger independent samples (replicates)",
        "",
        "The same cohorts drawn again: new cases, never seen in training or model selection, scored at the "
        "set's own operating point. With a few dozen positives per task, a cohort's AUC moves by a few "
        "hundredths from one draw to the next; a larger replicate pins the figure down. "
        "AUC [95% CI, DeLong] and n (positive) of each.",
        "",
    ]
    for key, entry in replicates.items():
        per = entry.get("cohorts") or {}
        names = _order(list(per))
        tasks = ["dlm1"] + [t for t in SUBTYPES if any((per[c].get("dlm2") or {}).get(t) for c in names)]
        lines += [f"### `{key}`", "", _source_text(entry), ""]
        head, rule = ["task"], ["---"]
        for c in names:
            head += [f"{cohort_label(c)}, recorded", f"{cohort_label(c)}, replicate"]
            rule += ["---", "---"]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(rule) + "|"]
        for t in tasks:
            cells = ["DLM-1 (malignant)" if t == "dlm1" else display_name(t)]
            for c in names:
                for est, n in (_task_auc(recorded.get(c), t), _task_auc(per.get(c), t)):
                    cells.append(f"{format_estimate(est)} {n}".strip() if est else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if entry.get("command"):
            lines += ["```bash", str(entry["command"]), "```", ""]
    return lines


def ablation_markdown(ablation: Mapping[str, Any] | None) -> list[str]:
    """Lines of the ablation section: one row per training variant, AUC per task and cohort."""
    if not ablation or not ablation.get("arms"):
        return []
    arms = ablation["arms"]
    tasks: list[str] = []
    for arm in arms:
        for per in (arm.get("auc") or {}).values():
            tasks += [t for t in per if t not in tasks]
    lines = ["## What the starting point bought (ablation)", ""]
    if ablation.get("description"):
        lines += [str(ablation["description"]), ""]
    cohorts: list[str] = []
    for arm in arms:
        cohorts += [c for c in (arm.get("auc") or {}) if c not in cohorts]
    for cohort in cohorts:
        lines += [
            f"AUC on `{cohort}`:",
            "",
            "| variant | " + " | ".join(tasks) + " |",
            "|---|" + "---|" * len(tasks),
        ]
        for arm in arms:
            per = (arm.get("auc") or {}).get(cohort, {})
            lines.append(f"| {arm.get('name')} | " + " | ".join(_auc_cell(per.get(t)) for t in tasks) + " |")
        lines.append("")
    for arm in arms:
        if arm.get("command"):
            lines.append(f"- {arm.get('name')}: `{arm['command']}`")
    lines.append("")
    return lines


def _resumed_text(tr: Mapping[str, Any]) -> str:
    earlier = tr.get("seconds_in_earlier_processes")
    return f" (a resumed run: {earlier} s of it before the last restart)" if earlier else ""


def _pretrain_text(cfg: Mapping[str, Any], pre: Mapping[str, Any]) -> str:
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


def ablation_arm(name: str, manifest: Mapping[str, Any], cohorts: Sequence[str] | None = None) -> dict[str, Any]:
    """One ablation row from a trained weight set's manifest: AUC per cohort and task, and its command.

    Tasks are ``dlm1`` and the subtype names of DLM-2 where the set has them.
    """
    per_cohort = (manifest.get("metrics") or {}).get("cohorts") or {}
    auc: dict[str, dict[str, float | None]] = {}
    for cohort in _order(list(cohorts or per_cohort)):
        entry = per_cohort.get(cohort)
        if not entry:
            continue
        tasks = (["dlm1"] if entry.get("dlm1") else []) + list(entry.get("dlm2") or {})
        auc[cohort] = {t: (_task_auc(entry, t)[0] or {}).get("value") for t in tasks}
    out: dict[str, Any] = {"name": name, "weight_set": f"{manifest.get('id')} {manifest.get('version', '')}".strip()}
    out["auc"] = auc
    reproduce = ((manifest.get("training") or {}).get("reproduce") or "").strip().splitlines()
    if reproduce:
        out["command"] = reproduce[-1]
    return out


def nan_to_none(obj: Any) -> Any:
    """``obj`` with every float NaN (in nested dicts, lists and tuples) replaced by None, for standard JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [nan_to_none(v) for v in obj]
    return obj


def update_manifest(folder, edit) -> dict[str, Any]:
    """Apply ``edit(manifest)`` to ``folder/manifest.json``, write it back and rewrite the model card.

    Only the manifest's descriptive sections change; the weight files and their
    sha256 are untouched.  Returns the edited manifest.
    """
    import json
    from pathlib import Path

    path = Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    text = json.dumps(nan_to_none(manifest), indent=2, allow_nan=False, default=lambda _: None)
    path.write_text(text + "\n", encoding="utf-8")
    write_model_card(folder)
    return manifest


def write_model_card(folder) -> None:
    """Rewrite ``folder/README.md`` from ``folder/manifest.json``."""
    import json
    from pathlib import Path

    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (folder / "README.md").write_text(render_model_card(manifest), encoding="utf-8")
