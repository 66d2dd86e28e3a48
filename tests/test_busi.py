"""BUSI cohort builder: duplicate groups never cross splits, contradictory groups are dropped."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from softmass_core.cohorts.cohort import read_cohort
from softmass_core.data.busi import SPLITS, build_busi_cohort, split_groups

COLUMNS = ["image", "label", "roi_x0", "roi_y0", "roi_x1", "roi_y1", "width", "height", "dup_group"]


def _fake_busi(root, n_groups=40):
    (root / "images" / "benign").mkdir(parents=True)
    (root / "images" / "malignant").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    k = 0
    for g in range(n_groups):
        label = "malignant" if g % 3 == 0 else "benign"
        for _ in range(1 + g % 2):  # some groups hold two near-duplicates
            k += 1
            name = f"images/{label}/{label}_{k:03d}.png"
            Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(root / name)
            rows.append([name, label, 10, 10, 50, 40, 80, 60, f"dup{g:03d}"])
    # one contradictory group: the same lesion filed under both labels
    for label in ("benign", "malignant"):
        k += 1
        name = f"images/{label}/{label}_{k:03d}.png"
        Image.fromarray(rng.integers(0, 255, (60, 80), dtype=np.uint8)).save(root / name)
        rows.append([name, label, 0, 0, 80, 60, 80, 60, "dupXXX"])
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return rows


def test_build_busi_cohort(tmp_path):
    rows = _fake_busi(tmp_path / "busi")
    csv_path = build_busi_cohort(tmp_path / "busi", tmp_path / "out", margin=0.25)
    cohort = read_cohort(csv_path)
    assert {r.cohort for r in cohort.rows} == {name for name, _ in SPLITS}
    assert len(cohort.rows) == len(rows) - 2  # the contradictory pair is gone
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    split_of: dict[str, set[str]] = {}
    for r in table:
        split_of.setdefault(r["dup_group"], set()).add(r["cohort"])
        assert r["dup_group"] != "dupXXX"
    assert all(len(s) == 1 for s in split_of.values())  # no group crosses splits
    # ROI = mask box 10,10,50,40 plus 25 % of each side, clipped to the 80 x 60 image
    first = cohort.rows[0]
    assert first.rois["gray"].as_string() == "0,2,60,48"
    assert first.paths["gray"].is_relative_to(tmp_path / "out")


def test_split_is_stratified_and_seeded():
    rows = [{"image": f"i{i}", "label": "malignant" if i < 30 else "benign", "dup_group": f"g{i}"} for i in range(100)]
    a = split_groups(rows, seed=1)
    assert a == split_groups(rows, seed=1)
    assert a != split_groups(rows, seed=2)
    mal = [a[f"g{i}"] for i in range(30)]
    assert (mal.count("training"), mal.count("validation"), mal.count("test_internal")) == (21, 4, 5)
