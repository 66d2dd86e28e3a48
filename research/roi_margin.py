"""How a BUSI weight set's DLM-1 AUC depends on the margin drawn around the lesion.

A reader draws the ROI by hand, loosely or tightly.  For every case of a
BUSI cohort (default ``validation``) the ROI is rebuilt from the lesion
mask's bounding box (BUSI's ``labels.csv``) plus a margin of 0, 10, 20 and
40 % of each side (clipped to the image; the cohort's own ROIs use 20 %),
and the set's cascade scores the case as the app would.  Prints one row per
margin: AUC with its DeLong 95 % CI.

    python research/roi_margin.py --weights weights/busi --cohort data/busi/cohort.csv \\
        --labels /work/shared/datasets/busi/labels.csv [--which validation] [--out margins.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.cohorts.cohort import read_cohort  # noqa: E402
from softmass_core.inference.cascade import Cascade, CaseImages  # noqa: E402
from softmass_core.io.images import load_image  # noqa: E402
from softmass_core.io.roi import Roi  # noqa: E402
from softmass_core.labels import MALIGNANT  # noqa: E402
from softmass_core.stats.roc import auc_delong  # noqa: E402
from softmass_core.weights.weight_set import WeightSet  # noqa: E402

MARGINS = (0.0, 0.1, 0.2, 0.4)


def mask_boxes(labels_csv: Path) -> dict[str, tuple[int, int, int, int, int, int]]:
    """``{case_id: (x0, y0, x1, y1, width, height)}`` of each lesion mask's box."""
    out = {}
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            box = tuple(int(r[k]) for k in ("roi_x0", "roi_y0", "roi_x1", "roi_y1", "width", "height"))
            out[Path(r["image"]).stem] = box
    return out


def with_margin(box: tuple[int, ...], margin: float) -> Roi:
    x0, y0, x1, y1, w, h = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return Roi(
        max(0, round(x0 - mx)), max(0, round(y0 - my)), min(w, round(x1 + mx)), min(h, round(y1 + my))
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="weights/busi")
    ap.add_argument("--cohort", default="data/busi/cohort.csv")
    ap.add_argument("--labels", default="/work/shared/datasets/busi/labels.csv", type=Path)
    ap.add_argument("--which", default="validation")
    ap.add_argument("--out")
    args = ap.parse_args()
    cascade = Cascade(WeightSet.load(args.weights))
    rows = read_cohort(args.cohort).subset([args.which]).rows
    boxes = mask_boxes(args.labels)
    images = {r.case_id: load_image(r.paths["gray"]).rgb for r in rows}
    y = np.array([r.label == MALIGNANT for r in rows], dtype=int)
    results = []
    print(
        f"| margin | AUC [95% CI] ({args.which}, n={len(rows)}, {cascade.weight_set.id} {cascade.weight_set.manifest.version}) |"
    )
    print("|---|---|")
    for margin in MARGINS:
        scores = []
        for i in range(0, len(rows), 16):
            batch = [
                cascade.prepare(CaseImages(gray=images[r.case_id], gray_roi=with_margin(boxes[r.case_id], margin)))
                for r in rows[i : i + 16]
            ]
            scores += [res.p_malignant for res in cascade.run_batch(batch)]
        est = auc_delong(y, np.array(scores))
        results.append({"margin": margin, "auc": est.value, "ci": [est.ci_low, est.ci_high]})
        print(f"| {margin:.0%} | {est.value:.3f} [{est.ci_low:.3f}, {est.ci_high:.3f}] |")
    if args.out:
        Path(args.out).write_text(json.dumps({"cohort": args.which, "n": len(rows), "margins": results}, indent=2))


if __name__ == "__main__":
    main()
