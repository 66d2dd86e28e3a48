"""Measure out-of-distribution scores for a weight set's input check (issue 17, part 1).

For one weight set (work on a COPY: ``--fit`` writes its input check) this
computes DLM-1's pooled pre-logit features of the training and validation
ROIs and of several "unlike" sets, and reports for four candidate scores

* ``stage1_texture`` (shipped): Mahalanobis distance of the channel means and standard deviations of DLM-1's
  first stage (Lee et al. 2018 use such lower-layer statistics too), one Gaussian per modality;
* ``mahalanobis``: pooled pre-logit features, one Gaussian, Ledoit-Wolf covariance (Lee et al. 2018), per modality;
* ``mahalanobis_tied``: class-conditional means (benign / malignant), tied Ledoit-Wolf covariance, min over classes;
* ``energy``: -logsumexp of DLM-1's logits (Liu et al. 2020), no statistics needed;
* ``knn``: distance to the 10th nearest training feature after L2 normalisation (Sun et al. 2022),

the AUROC of validation (in distribution) against each set and the share of
each set flagged at the threshold that flags 5 % of validation.  With
``--fit`` it then fits the shipped check (:func:`fit_input_check`) and runs
the cascade end to end on every set, counting flagged cases (plausibility
checks included).  Prints a markdown table; ``--json`` writes the numbers.

    python research/input_check_eval.py --weights /tmp/ood/phantom --cohort data/phantom/cohort.csv \\
        --other data/busi/cohort.csv:validation,test_internal --fresh /tmp/ood/fresh/cohort.csv --fit
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference.cascade import Cascade, CaseImages  # noqa: E402
from softmass_core.io.images import load_image  # noqa: E402
from softmass_core.io.roi import prepare  # noqa: E402
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES  # noqa: E402
from softmass_core.training.input_stats import fit_gaussian, fit_input_check, limit_at, mahalanobis  # noqa: E402
from softmass_core.weights.weight_set import WeightSet  # noqa: E402


def pictures() -> dict[str, np.ndarray]:
    """Non-ultrasound pictures made offline: two photographs and synthetic images."""
    from PIL import Image, ImageDraw
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for k, img in enumerate(load_sample_images().images):
        out[f"photo{k}"] = img
        h, w = img.shape[:2]
        for j, (y, x) in enumerate([(0, 0), (h // 2, 0), (0, w // 2), (h // 2, w // 2)]):
            out[f"photo{k}_crop{j}"] = np.ascontiguousarray(img[y : y + h // 2, x : x + w // 2])
        out[f"photo{k}_gray"] = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    text = Image.new("RGB", (400, 300), "white")
    d = ImageDraw.Draw(text)
    for i in range(12):
        d.text((10, 10 + 22 * i), "Lorem ipsum dolor sit amet, consectetur adipiscing elit " * 2, fill="black")
    out["text_on_white"] = np.asarray(text)
    chart = np.zeros((240, 360, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    for i, c in enumerate(colours * 2):
        chart[(i // 6) * 120 : (i // 6 + 1) * 120, (i % 6) * 60 : (i % 6 + 1) * 60] = (
            c if i < 6 else tuple(v // 2 for v in c)
        )
    out["colour_chart"] = chart
    out["noise_rgb"] = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out["noise_gray"] = np.repeat(rng.integers(0, 256, (240, 320, 1), dtype=np.uint8), 3, axis=2)
    out["black_8x8"] = np.zeros((8, 8, 3), np.uint8)
    out["gradient"] = np.repeat(np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))[:, :, None], 3, axis=2)
    # Sector-scan pictures (a fan of speckle): cardiac-like (dark chambers) and obstetric-like (skull ellipse).
    for name in ("cardiac_like", "obstetric_like"):
        for s in range(3):
            h, w = 300, 400
            yy, xx = np.mgrid[0:h, 0:w]
            r = np.hypot(xx - w / 2, yy + 20)
            ang = np.arctan2(xx - w / 2, yy + 20)
            fan = (r < h + 10) & (np.abs(ang) < 0.7)
            img = rng.gamma(2.0, 30.0, (h, w)) * fan
            if name == "cardiac_like":
                for cx, cy, a, b in [(170, 120, 40, 60), (240, 130, 35, 55), (175, 220, 35, 40), (245, 225, 30, 38)]:
                    img[((xx - cx - 10 * s) / a) ** 2 + ((yy - cy) / b) ** 2 < 1] *= 0.1
            else:
                e = ((xx - 200 - 15 * s) / 90) ** 2 + ((yy - 160) / 70) ** 2
                img[(e > 0.85) & (e < 1.0)] = 230
                img[e < 0.85] *= 0.4
            img = np.clip(img, 0, 255).astype(np.uint8)
            out[f"{name}{s}"] = np.repeat(img[:, :, None], 3, axis=2)
    return out


def features_of(cascade: Cascade, items: list[tuple[np.ndarray, object]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DLM-1's pooled pre-logit features (N, D), logits (N, C) and first-stage texture features (the shipped
    check's) for ``[(rgb, roi)]``, one plain view."""
    import torch

    from softmass_core.weights.backbone import check_features

    spec = cascade.weight_set.input_spec
    model = cascade.weight_set.model(DLM1)
    pre, logits, tex = [], [], []
    for start in range(0, len(items), 32):
        x = torch.from_numpy(np.stack([prepare(rgb, roi, spec).array for rgb, roi in items[start : start + 32]]))
        with torch.no_grad():
            x = model.stem(x)
            for i, stage in enumerate(model.stages):
                x = stage(x)
                if i == 0:
                    tex.append(check_features(x).numpy())
            f = model.forward_head(model.norm_pre(x), pre_logits=True)
            logits.append(model.head.fc(f).numpy())
        pre.append(f.numpy())
    return tuple(np.concatenate(v).astype(np.float64) for v in (pre, logits, tex))


def cohort_items(csv: str, cohorts: list[str] | None, modality: str) -> tuple[list, list[int], list]:
    c = read_cohort(csv).subset(cohorts)
    rows = [r for r in c.rows if modality in r.paths]
    return (
        [(load_image(r.paths[modality]).rgb, r.rois.get(modality)) for r in rows],
        [int(r.label == MALIGNANT) for r in rows],
        rows,
    )


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(len(inside)), np.ones(len(outside))], np.r_[inside, outside]))


class Scorers:
    def __init__(self, train: np.ndarray, y: np.ndarray, train_tex: np.ndarray) -> None:
        from sklearn.covariance import LedoitWolf

        self.tex_mean, self.tex_prec = fit_gaussian(train_tex)
        self.mean, self.prec = fit_gaussian(train)
        means = np.stack([train[y == k].mean(axis=0) for k in (0, 1)])
        self.cls_means = means
        self.cls_prec = LedoitWolf().fit(train - means[y]).precision_
        self.bank = train / np.linalg.norm(train, axis=1, keepdims=True)

    def __call__(self, method: str, f: np.ndarray, logits: np.ndarray, tex: np.ndarray) -> np.ndarray:
        from scipy.special import logsumexp

        if method == "stage1_texture":
            return mahalanobis(tex, self.tex_mean, self.tex_prec)
        if method == "mahalanobis":
            return mahalanobis(f, self.mean, self.prec)
        if method == "mahalanobis_tied":
            return np.min([mahalanobis(f, m, self.cls_prec) for m in self.cls_means], axis=0)
        if method == "energy":
            return -logsumexp(logits, axis=1)
        if method == "knn":
            g = f / np.linalg.norm(f, axis=1, keepdims=True)
            d = np.sqrt(np.maximum(2 - 2 * g @ self.bank.T, 0))
            return np.sort(d, axis=1)[:, min(9, d.shape[1] - 1)]
        raise ValueError(method)


METHODS = ("stage1_texture", "mahalanobis", "mahalanobis_tied", "energy", "knn")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="a COPY of a weight set (--fit writes into it)")
    ap.add_argument("--cohort", required=True, help="the set's cohort CSV (training and validation cohorts)")
    ap.add_argument("--other", action="append", default=[], help="CSV:cohort1,cohort2 of another domain")
    ap.add_argument("--fresh", action="append", default=[], help="CSV[:cohorts] of fresh in-distribution cases")
    ap.add_argument("--fit", action="store_true", help="fit the shipped check and count flagged cases end to end")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()

    ws = WeightSet.load(args.weights)
    cascade = Cascade(ws)
    training = ws.manifest.raw.get("training") or {}
    train_c, val_c = training.get("train_cohorts", ["training"]), training.get("validation_cohort", "validation")
    pics = pictures()
    results: dict = {"weights": args.weights, "methods": {}, "end_to_end": {}}
    for m in MODALITIES:
        items, y, _ = cohort_items(args.cohort, train_c, m)
        if not items:
            continue
        tr_f, _, tr_t = features_of(cascade, items)
        sc = Scorers(tr_f, np.asarray(y), tr_t)
        val_items, _, _ = cohort_items(args.cohort, [val_c], m)
        val = features_of(cascade, val_items)
        sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for spec in args.other:
            csv, _, names = spec.partition(":")
            it, _, _ = cohort_items(csv, names.split(",") if names else None, "gray")  # other domains: B-mode
            sets[f"other:{Path(csv).parent.name}"] = features_of(cascade, it)
        for spec in args.fresh:
            csv, _, names = spec.partition(":")
            it, _, _ = cohort_items(csv, names.split(",") if names else None, m)
            if it:
                sets[f"fresh:{Path(csv).parent.name}{':' + names if names else ''}"] = features_of(cascade, it)
        sets["pictures"] = features_of(cascade, [(img, None) for img in pics.values()])
        for method in METHODS:
            v = sc(method, *val)
            thr = limit_at(v, [False] * len(v))
            row = {"val_flag_rate": float(np.mean(v > thr))}
            for name, feats in sets.items():
                o = sc(method, *feats)
                row[name] = {"auroc": auroc(v, o), "flag_rate": float(np.mean(o > thr)), "n": len(o)}
            results["methods"].setdefault(m, {})[method] = row
    if args.fit:
        block = fit_input_check(args.weights, args.cohort)
        results["fitted"] = {k: block[k] for k in ("threshold", "validation_flag_rate")}
        cascade = Cascade(WeightSet.load(args.weights))
        ends: dict[str, list] = {}
        for spec in [*args.other, *args.fresh, f"{args.cohort}:{val_c}"]:
            csv, _, names = spec.partition(":")
            c = read_cohort(csv).subset(names.split(",") if names else None)
            key = f"{Path(csv).parent.name}:{names or 'all'}"
            flags = []
            for r in c.rows:
                imgs = {mm: load_image(r.paths[mm]).rgb for mm in r.paths}
                if spec in args.other:  # another domain goes in as B-mode only
                    imgs = {"gray": imgs.get("gray", next(iter(imgs.values())))}
                case = CaseImages(**imgs, **{f"{mm}_roi": r.rois.get(mm) for mm in imgs})
                flags.append(bool(cascade.run(case).input_check.out_of_distribution))
            ends[key] = flags
        for slot in ("gray", "cdfi"):
            ends[f"pictures as {slot}"] = [
                bool(cascade.run(CaseImages(**{slot: img})).input_check.out_of_distribution) for img in pics.values()
            ]
            results["pictures_missed_" + slot] = [
                k
                for k, img in pics.items()
                if not cascade.run(CaseImages(**{slot: img})).input_check.out_of_distribution
            ]
        results["end_to_end"] = {
            k: {"n": len(v), "n_flagged": int(sum(v)), "rate": sum(v) / len(v)} for k, v in ends.items()
        }
    for m, methods in results["methods"].items():
        names = [k for k in next(iter(methods.values())) if k != "val_flag_rate"]
        print(f"\n{args.weights} {m}: AUROC vs validation / share flagged at the 5 % validation limit")
        print("| method | val flagged | " + " | ".join(names) + " |")
        print("|---|---|" + "---|" * len(names))
        for method, row in methods.items():
            cells = [f"{row[k]['auroc']:.3f} / {row[k]['flag_rate']:.0%} (n {row[k]['n']})" for k in names]
            print(f"| {method} | {row['val_flag_rate']:.1%} | " + " | ".join(cells) + " |")
    if results["end_to_end"]:
        print("\nshipped check end to end (cases flagged):")
        for k, v in results["end_to_end"].items():
            print(f"  {k}: {v['n_flagged']}/{v['n']} = {v['rate']:.1%}")
        print("fitted:", results["fitted"])
        print("pictures not flagged:", results.get("pictures_missed_gray"), results.get("pictures_missed_cdfi"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
