"""Model cards: a weight set's ``README.md`` rendered as Markdown from its manifest.

The card's sections (in short, data and limitations, model, training, the
measured performance in the form of the paper's Tables 2 and 3, replicates,
scanner shift, ablation, changelog) are rendered here; the figures and texts
they show are read out of the manifest by :mod:`softmass_core.weights.card_data`.
:func:`update_manifest` edits a manifest and rewrites its card in one step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from softmass_core.labels import SUBTYPES, cohort_label, display_name
from softmass_core.stats.formatting import format_p
from softmass_core.weights.card_calibration import calibration_markdown, cam_localisation_markdown
from softmass_core.weights.card_data import (
    METRIC_ROWS,
    cohort_order,
    format_estimate,
    number_or_nan,
    percent_estimate,
    plain_summary,
    pretrain_text,
    resumed_text,
    task_auc,
)
from softmass_core.weights.card_operating import operating_markdown
from softmass_core.weights.card_selection import roi_margin_markdown, selection_markdown
from softmass_core.weights.input_check_card import input_check_markdown
from softmass_core.weights.manifest import MANIFEST_NAME, rewrite_manifest


def table2_markdown(metrics: Mapping[str, Any], cohorts: Sequence[str] | None = None) -> str:
    """DLM-1 performance per cohort (rows: metrics; columns: cohorts)."""
    per = metrics.get("cohorts", metrics)
    names = cohort_order(list(cohorts or per))
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
    names = [c for c in cohort_order(list(cohorts or per)) if per[c].get("dlm2")]
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
            f"{'ONNX graph' if e.get('format') == 'onnx' else e.get('storage_dtype', 'float32')} | "
            f"{_sha_cell(e)} |"
        )
    lines.append("")
    lines += _ensemble_lines(m.get("models", {}))
    lines += operating_markdown(m)
    lines += packed_markdown(m.get("packed"), m.get("models") or {})
    lines += calibration_markdown(m) + cam_localisation_markdown(m.get("cam_localisation"))
    lines += selection_markdown(m.get("selection")) + roi_margin_markdown(m.get("roi_margins"))
    tr = m.get("training") or {}
    if tr:
        cfg = tr.get("config", {})
        lines += [
            "## Training",
            "",
            f"- Cohort CSV: `{tr.get('cohort_csv')}`; trained on {tr.get('n_train_cases')} cases "
            f"({tr.get('n_train_images')} images) of {tr.get('train_cohorts')}, selected on "
            f"{tr.get('n_validation_cases')} `{tr.get('validation_cohort')}` cases by AUC.",
            f"- Init `{cfg.get('init')}`, shared multi-task pretraining {pretrain_text(cfg, tr.get('pretrain') or {})}, "
            f"fine-tuning up to {cfg.get('epochs')} epochs per model, AdamW lr {cfg.get('lr')} / "
            f"{cfg.get('finetune_lr')}, batch {cfg.get('batch_size')}, seed {cfg.get('seed')}.",
            f"- Device `{tr.get('device')}`; wall time {tr.get('seconds')} s{resumed_text(tr)}. "
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
    lines += input_check_markdown(m.get("input_check"))
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
    v = number_or_nan(value)
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def shift_markdown(shift: Mapping[str, Any] | None) -> list[str]:
    """Lines of the "scanner shift on identical lesions" section (``softmass_core.cohorts.shift`` rows)."""
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
            diff, lo, hi, pv = (number_or_nan(r.get(k)) for k in ("difference", "ci_low", "ci_high", "p_value"))
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


def _source_text(entry: Mapping[str, Any]) -> str:
    """Where a replicate's cases came from: the generator's own record (``phantom.json``), else the CSV path."""
    src = entry.get("source") or {}
    if not src:
        return f"Cases from `{entry.get('cohort_csv')}`."
    n = sum((src.get("cohorts") or {}).values())
    scale, difficulty = (number_or_nan(src.get(k)) for k in ("scale", "difficulty"))
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
        names = cohort_order(list(per))
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
                for est, n in (task_auc(recorded.get(c), t), task_auc(per.get(c), t)):
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


def update_manifest(folder, edit) -> dict[str, Any]:
    """Apply ``edit(manifest)`` to ``folder/manifest.json``, write it back and rewrite the model card.

    Only the manifest's descriptive sections change; the weight files and their
    sha256 are untouched.  Returns the edited manifest.
    """
    manifest = rewrite_manifest(folder, edit)
    write_model_card(folder)
    return manifest


def write_model_card(folder) -> None:
    """Rewrite ``folder/README.md`` from ``folder/manifest.json``."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    (folder / "README.md").write_text(render_model_card(manifest), encoding="utf-8")


def _sha_cell(entry: Mapping[str, Any]) -> str:
    """A model's sha256 prefix, or for an ensemble the member count and the first member's."""
    members = entry.get("members")
    if isinstance(members, list) and members:
        return f"{len(members)} members: `{str(members[0].get('sha256'))[:16]}...`, ..."
    return f"`{str(entry.get('sha256'))[:16]}...`"


def _ensemble_lines(models: Mapping[str, Any]) -> list[str]:
    """How an ensemble model scores, for a set that has one."""
    ensembles = {mid: len(e["members"]) for mid, e in models.items() if isinstance(e.get("members"), list)}
    if not ensembles:
        return []
    which = ", ".join(f"{mid} of {k} members" for mid, k in ensembles.items())
    return [
        f"Ensembles: {which}. An ensemble's members share its architecture, labels, temperature and threshold; "
        "its probability is the mean of the members' (each member's logits divided by the temperature before "
        "its softmax), its Grad-CAM the mean of the members' maps (each scaled to [0, 1] first), and the input "
        "check reads the first member's features.",
        "",
    ]


def packed_markdown(packed: Mapping[str, Any] | None, models: Mapping[str, Any]) -> list[str]:
    """Where a packed set's weights came from, and a warning while its thresholds are unvalidated."""
    if not packed:
        return []
    lines = ["## Packed from checkpoints", ""]
    if any(str(e.get("threshold_method", "")).startswith("unvalidated") for e in models.values()):
        lines += [
            "**Thresholds not validated.** Every threshold is 0.5, never checked on a validation cohort; "
            "re-pack with `--cohort` (or run `retune`) before reading anything into a verdict.",
            "",
        ]
    for model_id, source in (packed.get("sources") or {}).items():
        listed = source.get("members") if isinstance(source.get("members"), list) else [source]
        for k, src in enumerate(listed, 1):
            steps = "; ".join(src.get("steps") or []) or "a plain state dict"
            name = f"{model_id} member {k}" if len(listed) > 1 else model_id
            lines.append(f"- {name}: `{src.get('file')}` (sha256 `{str(src.get('sha256'))[:16]}...`), "
                         f"{src.get('loaded')}; {steps}.")  # fmt: skip
    if packed.get("command"):
        lines += ["", "```bash", str(packed["command"]), "```"]
    return [*lines, ""]
