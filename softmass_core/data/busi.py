"""A cohort CSV from the public BUSI breast-ultrasound set (benign vs malignant).

``python -m softmass_core busi-cohort --busi PATH --out data/busi`` reads
BUSI's ``labels.csv`` (as staged in ``shared/datasets/busi``, see its
SOURCE.md), and writes ``data/busi/cohort.csv`` plus copies of the images
(the cohort format requires images under the CSV's folder; nothing from the
data set is committed to the project).

* Near-duplicate groups (``dup_group``) never cross splits.
* The six groups that carry both labels are dropped (contradictory labels).
* Splits, stratified by label at group level and seeded: ``training``,
  ``validation`` (model selection) and ``test_internal`` (never used for any
  choice).
* ROI = the lesion mask's bounding box plus a margin (default 20 % of each
  side), clipped to the image.

BUSI has grayscale images only; ``cdfi_path`` stays empty.  Labels are
benign/malignant only (no subtype), so BUSI trains DLM-1 alone.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np

from softmass_core.errors import CohortError
from softmass_core.paths import make_dir

SPLITS = (("training", 0.70), ("validation", 0.15), ("test_internal", 0.15))


def _read_labels(busi: Path) -> list[dict[str, str]]:
    path = busi / "labels.csv"
    if not path.is_file():
        raise CohortError(
            f"{path} not found. Download BUSI (Al-Dhabyani et al., Data in Brief 2020;28:104863), "
            "stage it as described in the README and pass its folder with --busi."
        )
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def split_groups(rows: list[dict[str, str]], *, seed: int = 42) -> dict[str, str]:
    """``{dup_group: split}``: whole groups, stratified by label, seeded."""
    groups: dict[str, str] = {}
    for r in rows:
        groups.setdefault(r["dup_group"] or r["image"], r["label"])
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for label in sorted(set(groups.values())):
        names = sorted(g for g, lab in groups.items() if lab == label)
        rng.shuffle(names)
        n = len(names)
        cut1 = round(n * SPLITS[0][1])
        cut2 = cut1 + round(n * SPLITS[1][1])
        for i, g in enumerate(names):
            out[g] = SPLITS[0][0] if i < cut1 else SPLITS[1][0] if i < cut2 else SPLITS[2][0]
    return out


def build_busi_cohort(busi: str | Path, out_dir: str | Path, *, margin: float = 0.2, seed: int = 42) -> Path:
    """Write ``out_dir/cohort.csv`` and copy the images; return the CSV path."""
    busi, out_dir = Path(busi), Path(out_dir)
    rows = _read_labels(busi)
    labels_by_group: dict[str, set[str]] = {}
    for r in rows:
        labels_by_group.setdefault(r["dup_group"] or r["image"], set()).add(r["label"])
    contradictory = {g for g, labs in labels_by_group.items() if len(labs) > 1}
    kept = [r for r in rows if (r["dup_group"] or r["image"]) not in contradictory]
    split = split_groups(kept, seed=seed)
    make_dir(out_dir, "--out")
    make_dir(out_dir / "images", "--out")
    lines = []
    for r in kept:
        src = busi / r["image"]
        dst = out_dir / "images" / Path(r["image"]).name
        if not dst.exists():
            shutil.copyfile(src, dst)
        w, h = int(r["width"]), int(r["height"])
        x0, y0, x1, y1 = (int(r[k]) for k in ("roi_x0", "roi_y0", "roi_x1", "roi_y1"))
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        box = (
            max(0, int(round(x0 - mx))),
            max(0, int(round(y0 - my))),
            min(w, int(round(x1 + mx))),
            min(h, int(round(y1 + my))),
        )
        lines.append(
            {
                "case_id": Path(r["image"]).stem,
                "cohort": split[r["dup_group"] or r["image"]],
                "label": "malignant" if r["label"] == "malignant" else "benign",
                "gray_path": f"images/{dst.name}",
                "cdfi_path": "",
                "gray_roi": ",".join(str(v) for v in box),
                "cdfi_roi": "",
                "dup_group": r["dup_group"],
            }
        )
    csv_path = out_dir / "cohort.csv"
    tmp = csv_path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    tmp.replace(csv_path)
    counts: dict[str, list[int]] = {}
    for line in lines:
        c = counts.setdefault(line["cohort"], [0, 0])
        c[line["label"] == "malignant"] += 1
    summary = ", ".join(f"{k} {v[0] + v[1]} ({v[1]} malignant)" for k, v in counts.items())
    print(
        f"dropped {len(rows) - len(kept)} images of {len(contradictory)} contradictory groups; {summary}",
        file=sys.stderr,
    )
    return csv_path
