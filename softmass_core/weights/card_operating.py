"""Model-card section on DLM-1's operating points and score interval (``models.dlm1``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from softmass_core.weights.operating import NO_POINTS, POINT_LABELS, POINTS


def operating_markdown(manifest: Mapping[str, Any]) -> list[str]:
    """``## Operating points and score interval``: the three thresholds and the interval, or why there are none."""
    dlm1 = (manifest.get("models") or {}).get("dlm1") or {}
    lines = ["## Operating points and score interval", ""]
    ops = dlm1.get("operating_points")
    if not ops:
        lines += [f"Only the balanced threshold is offered: {NO_POINTS}.", ""]
    else:
        lines += [
            "DLM-1 can be read at three thresholds, chosen and measured on the validation cohort:",
            "",
            "| point | threshold | validation sensitivity | validation specificity | how chosen |",
            "|---|---|---|---|---|",
        ]
        for name in POINTS:
            p = ops[name]
            how = p.get("rule", "") + (f"; **{p['note']}**" if p.get("note") else "")
            lines.append(
                f"| {POINT_LABELS[name]} | {p['threshold']:.3f} | {p['sensitivity']:.3f} | {p['specificity']:.3f} | "
                f"{how} |"
            )
        lines.append("")
    iv = dlm1.get("interval")
    if not iv:
        lines += ["No score interval is recorded: every case's interval is its score alone, never indeterminate.", ""]
        return lines
    hw = iv.get("logit_halfwidth")
    width = "infinite (the interval is [0, 1])" if hw is None else f"{hw:.3f} on the logit scale"
    level = 1 - float(iv["alpha"])
    lines += [
        f"Score interval: {iv['method']}, at {level:.0%}; half-width {width}, calibrated on {iv['n']} "
        f"`{iv.get('cohort', 'validation')}` cases (coverage there {iv['validation_coverage']:.3f}).",
    ]
    tests = iv.get("test_coverage") or {}
    if tests:
        cov = ", ".join(f"`{c}` {v['coverage']:.3f} (n={v['n']})" for c, v in tests.items())
        lines.append(f"Coverage with fresh ROI re-drawings (another seed): {cov}.")
    if iv.get("note"):
        lines.append(f"Note: {iv['note']}.")
    lines += [
        "A case is **indeterminate** when its interval crosses the chosen threshold; DLM-2 still scores it "
        'and its subtype is shown as "if benign".',
        f"What the interval does not cover: {iv.get('not_covered', 'the model’s own uncertainty')}",
        "",
    ]
    return lines
