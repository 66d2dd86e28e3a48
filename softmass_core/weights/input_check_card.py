"""The model card's "Input check" section, from the manifest's ``input_check`` block.

The block is written by :func:`softmass_core.training.input_stats.fit_input_check`
(threshold, validation flag rate, what it was fitted on) and, optionally, its
``measured`` part by ``research/input_check_eval.py --record`` (AUROC and flag
rates on other domains, pictures and fresh in-distribution cases).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WHY = (
    "Chosen by measurement (research/input_check_eval.py, docs/experiments.md): DLM-1's pooled last-stage "
    "features, scored by Mahalanobis distance, energy or nearest neighbours, did not separate simulated from real "
    "ultrasound (they are trained to ignore texture); the first stage's texture statistics did."
)


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.1%}"


def input_check_markdown(block: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines of the section (says "not available" for a set without statistics)."""
    lines = ["## Input check (unlike the training data)", ""]
    if not block:
        return [*lines, "Input check not available for this set: `retune` with its cohort CSV fits one.", ""]
    fit = block.get("fitted_on") or {}
    limits = ", ".join(f"{m} {float(t):.2f}" for m, t in (block.get("threshold") or {}).items())
    rates = ", ".join(f"{m} {_pct(r)}" for m, r in (block.get("validation_flag_rate") or {}).items())
    plaus = block.get("plausibility") or {}
    lines += [
        f"- Score: {block.get('method_doc', block.get('method'))}. {WHY}",
        f"- Fitted on {fit.get('n_train_images')} images of {fit.get('train_cohorts')} "
        f"(`{fit.get('cohort_csv')}`, {fit.get('date')}); limit per modality: {limits}, the lowest that flags at "
        f"most {_pct(block.get('target_rate'))} of `{fit.get('validation_cohort')}` images; flagged there: {rates}.",
        f"- Plausibility checks (refused whatever the score): ROI under {plaus.get('min_side_px')} px on a side, "
        f"blank ROI (grey-level spread under {plaus.get('blank_std')}), colour in the B-mode slot "
        f"({plaus.get('gray_chroma')}). A CDFI image without colour is not refused (an avascular lesion has no flow).",
        f"- Statistics file `{block.get('file')}` (sha256 `{str(block.get('sha256'))[:12]}...`), checked on load.",
    ]
    measured = block.get("measured") or {}
    if measured.get("end_to_end"):
        lines += ["", "Cases flagged end to end (any image of a case):", "", "| set | flagged | cases | rate |"]
        lines.append("|---|---|---|---|")
        for name, r in measured["end_to_end"].items():
            lines.append(f"| {name} | {r['n_flagged']} | {r['n']} | {_pct(r['rate'])} |")
        if measured.get("command"):
            lines += ["", f"Measured with `{measured['command']}` ({measured.get('date')})."]
    return [*lines, ""]
