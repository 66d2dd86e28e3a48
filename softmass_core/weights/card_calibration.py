"""Model-card sections on calibration and Grad-CAM localisation (Markdown lines).

* ``models.<id>.temperature`` (written by ``retune``): the fitted temperature,
  validation ECE before / after in-sample and cross-validated, kept or not.
* ``cam_localisation`` (written by ``research/cam_localisation.py --record``):
  where the Grad-CAM maps sit relative to the lesion masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from softmass_core.stats.calibration import ECE_BINS


def _f(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def calibration_markdown(manifest: Mapping[str, Any]) -> list[str]:
    """The calibration section; empty when no model has a ``temperature``."""
    models = {mid: e["temperature"] for mid, e in (manifest.get("models") or {}).items() if e.get("temperature")}
    if not models:
        return []
    lines = [
        "## Calibration",
        "",
        f"Expected calibration error (ECE, {ECE_BINS} equal-width bins of P(positive)) of each model's case score on "
        "validation, before and after temperature scaling. One temperature T per model divides the per-image "
        "logits (every test-time view) before the softmax, fitted by minimising the NLL of the case score. "
        "In-sample: T fitted and measured on the same validation cases (optimistic). Cross-validated: T fitted "
        "on 4/5, measured on the held-out 1/5 (stratified 5-fold). T is applied only when it lowers the "
        "cross-validated ECE; thresholds were then chosen on the scores the cascade gives.",
        "",
        "| model | T | ECE at T = 1 | ECE in-sample | ECE cross-validated | applied |",
        "|---|---|---|---|---|---|",
    ]
    for mid, t in models.items():
        if "cv_ece_after" not in t:
            lines.append(f"| {mid} | not fitted | | | | no: {t.get('how', '')} |")
            continue
        lines.append(
            f"| {mid} | {t['value']:.3f} | {_f(t.get('ece_before'))} | {_f(t.get('ece_after'))} | "
            f"{_f(t.get('cv_ece_after'))} | {'yes' if t['kept'] else 'no (T = 1)'} |"
        )
    return lines + [""]


def cam_localisation_markdown(loc: Mapping[str, Any] | None) -> list[str]:
    """The Grad-CAM localisation section; empty without ``cam_localisation``."""
    if not loc:
        return []
    lines = ["## Where the Grad-CAM maps sit", "", str(loc.get("description", "")), ""]
    lines += [
        "| map | energy inside the lesion | pointing-game hits | energy in the outer 10% band | maxima in that band |",
        "|---|---|---|---|---|",
    ]
    for row in loc.get("rows", []):
        lines.append(
            f"| {row['name']} | {row['energy_inside']:.3f} | {row['hits']}/{row['n']} ({row['hit_rate']:.3f}) | "
            f"{row['border_energy']:.3f} | {row['max_in_border_band']}/{row['n']} |"
        )
    lines.append("")
    if loc.get("lesion_area_share") is not None:
        lines.append(f"Lesion share of the ROI area (what a uniform map scores): {loc['lesion_area_share']:.3f}.")
    if loc.get("shipped_cam_energy_in_padding") is not None:
        lines.append(
            f"Zero padding is {loc['padded_input_share']:.3f} of the model input on average; the shipped map puts "
            f"{loc['shipped_cam_energy_in_padding']:.3f} of its energy there (dropped when it is mapped onto the ROI)."
        )
    if loc.get("adopted_layer"):
        lines.append(f"The app's DLM-1 Grad-CAM now uses `{loc['adopted_layer']}` (`gradcam_target_layer`).")
    for note in loc.get("notes", []):
        lines.append(f"- {note}")
    if loc.get("command"):
        lines += ["", f"Reproduce: `{loc['command']}`"]
    return lines + [""]
