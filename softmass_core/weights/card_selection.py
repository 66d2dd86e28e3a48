"""Model-card sections of a set chosen by cross-validation: the candidates, the rule, and ROI-margin robustness.

``selection`` (manifest) records how a set's recipe was chosen before its
validation and test figures were looked at: the protocol's file, the data
the choice used, each candidate's pooled out-of-fold AUC with its CI and
per-fold AUCs, the rule and the winner.  ``roi_margins`` records the DLM-1
AUC when the ROI is drawn with other margins around the lesion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _ci(values: Any) -> str:
    lo, hi = values
    return f"[{lo:.3f}, {hi:.3f}]"


def selection_markdown(sel: Mapping[str, Any] | None) -> list[str]:
    """The "How this set was chosen" section, or nothing when the manifest has no ``selection``."""
    if not sel:
        return []
    lines = ["## How this set was chosen", ""]
    if sel.get("protocol"):
        lines.append(f"Protocol, written before the results: `{sel['protocol']}`. {sel.get('data', '')}".rstrip())
        lines.append("")
    lines += [
        "| recipe | network, start | pooled out-of-fold AUC [95% CI] | per-fold AUCs | CPU time |",
        "|---|---|---|---|---|",
    ]
    for c in sel.get("candidates", []):
        if c.get("oof_auc") is None:
            lines.append(f"| `{c['recipe']}` | {c.get('network', '')} | not run: {c.get('why', '')} | | |")
            continue
        folds = ", ".join(f"{a:.3f}" for a in c.get("fold_aucs", []))
        mark = " (chosen)" if c["recipe"] == sel.get("winner") else ""
        if c.get("partial"):
            mark += f" ({c['partial']}, {c.get('n_cases')} cases)"
        lines.append(
            f"| `{c['recipe']}`{mark} | {c.get('network', '')} | {c['oof_auc']:.3f} {_ci(c['oof_auc_ci'])} | "
            f"{folds} | {c.get('seconds', 0) / 60:.0f} min |"
        )
    lines.append("")
    for key, label in (("rule", "Rule"), ("outcome", "Outcome"), ("members", "Shipped"), ("device", "Where")):
        if sel.get(key):
            lines.append(f"- {label}: {sel[key]}")
    for pair in sel.get("paired_on_shared_cases", []):
        lines.append(
            f"- On the {pair['n']} cases ({pair['n_positive']} malignant) both scored out of fold: `{pair['a']}` "
            f"{pair['auc_a']:.3f} vs `{pair['b']}` {pair['auc_b']:.3f}, difference {pair['auc_difference']:+.3f} "
            f"[{pair['ci_low']:+.3f}, {pair['ci_high']:+.3f}], paired DeLong p = {pair['p_value']:.4f}."
        )
    if sel.get("earlier_round"):
        er = sel["earlier_round"]
        figures = ", ".join(f"`{r}` {v['auc']:.3f} {_ci(v['ci'])}" for r, v in er.get("oof_auc", {}).items())
        lines.append(f"- Earlier round ({er.get('why', '')}): {figures}.")
    if sel.get("reproduce"):
        lines += ["- Reproduce:", "", "```bash", str(sel["reproduce"]), "```"]
    return [*lines, ""]


def roi_margin_markdown(rm: Mapping[str, Any] | None) -> list[str]:
    """The ROI-margin table: DLM-1 AUC when the ROI is the lesion box plus 0-40 % margins."""
    if not rm:
        return []
    lines = [
        "## ROI margin",
        "",
        f"DLM-1 AUC on `{rm.get('cohort')}` (n = {rm.get('n')}) when the ROI is the lesion mask's box plus a margin "
        "of each side (the cohort's own ROIs use 20 %); `research/roi_margin.py`.",
        "",
        "| margin | AUC [95% CI] |",
        "|---|---|",
    ]
    lines += [f"| {r['margin']:.0%} | {r['auc']:.3f} {_ci(r['ci'])} |" for r in rm.get("margins", [])]
    return [*lines, ""]
