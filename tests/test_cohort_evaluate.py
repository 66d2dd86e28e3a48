"""Cohort CSV validation and evaluation of a weight set over a cohort."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from softmass_core.cascade import Cascade
from softmass_core.cohort import read_cohort
from softmass_core.errors import CohortError
from softmass_core.evaluate import evaluate
from softmass_core.labels import SUBTYPES
from softmass_core.weights import WeightSet

HEADER = "case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi,age,sex"


def _images(root, names):
    rng = np.random.default_rng(3)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / name)


@pytest.fixture
def cohort_dir(tmp_path):
    labels = ["malignant", *SUBTYPES]
    names, lines = [], [HEADER]
    for cohort in ("validation", "test_a"):
        for i in range(2):
            for label in labels:
                cid = f"{cohort}-{label}-{i}"
                names += [f"{cid}_g.png", f"{cid}_c.png"]
                lines.append(f'{cid},{cohort},{label},{cid}_g.png,{cid}_c.png,"5,5,70,50",,{30 + i},{"MF"[i]}')
    _images(tmp_path, names)
    (tmp_path / "cohort.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_read_valid_cohort(cohort_dir):
    c = read_cohort(cohort_dir / "cohort.csv")
    assert c.names == ["validation", "test_a"]
    assert len(c.rows) == 24
    r = c.rows[0]
    assert r.rois["gray"].as_string() == "5,5,70,50" and r.rois["cdfi"] is None
    assert r.age == 30 and r.sex == "M"
    assert len(c.subset(["test_a"]).rows) == 12


def test_every_bad_row_reported_at_once(tmp_path):
    _images(tmp_path, ["a.png"])
    (tmp_path / "outside.png").write_bytes(b"")
    lines = [
        HEADER,
        "c1,training,lipoma,a.png,,,,,",  # fine
        "c2,training,sarcoma,a.png,,,,,",  # unknown label
        "c3,training,lipoma,missing.png,,,,,",  # missing file
        'c4,training,lipoma,a.png,,"1,2,3",,,',  # bad ROI
        "c5,training,lipoma,../outside.png,,,,,",  # escapes
        "c6,training,lipoma,/etc/passwd,,,,,",  # absolute
        "c1,training,lipoma,a.png,,,,,",  # duplicate id
        "c8,training,lipoma,,,,,,",  # no image
        'c9,training,lipoma,a.png,,"500,500,600,600",,,',  # ROI outside the 80x60 image
        "c10,training,lipoma,a.png,,,,abc,X",  # bad age and sex
    ]
    (tmp_path / "sub").mkdir()
    csv_path = tmp_path / "cohort.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CohortError) as info:
        read_cohort(csv_path)
    msg = str(info.value)
    problems = info.value.problems
    for expected in (
        "line 3 (c2): unknown label 'sarcoma'",
        "line 4 (c3): gray_path: file 'missing.png' not found",
        "line 5 (c4): gray_roi",
        "line 6 (c5): gray_path: path '../outside.png' leaves the cohort folder",
        "line 7 (c6): gray_path: path '/etc/passwd' is absolute",
        "line 8 (c1): case_id 'c1' repeats line 2",
        "line 9 (c8): no image",
        "line 10 (c9): gray_roi 500,500,600,600 lies outside the 80x60 image",
        "line 11 (c10): age 'abc'",
        "line 11 (c10): sex 'X'",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert "problem(s)" in msg


def test_missing_columns_and_empty(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("case_id,label\nx,lipoma\n")
    with pytest.raises(CohortError, match=r"missing column\(s\) \['cohort'\]"):
        read_cohort(p)
    p.write_text("")
    with pytest.raises(CohortError, match="empty"):
        read_cohort(p)
    with pytest.raises(CohortError, match="does not exist"):
        read_cohort(tmp_path / "nope.csv")


def test_evaluate_tables_and_metrics(cohort_dir, tiny_weights, tmp_path):
    ws = WeightSet.load(tiny_weights)
    cascade = Cascade(ws)
    seen = []
    ev = evaluate(
        cascade, read_cohort(cohort_dir / "cohort.csv"), batch_size=5, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (0, 24) and seen[-1] == (24, 24)
    pred = ev.predictions
    assert len(pred) == 24 and set(pred["cohort"]) == {"validation", "test_a"}
    # fused score = mean of the two images, and each image score equals a single-case cascade run
    np.testing.assert_allclose(pred["p_malignant"], (pred["gray_dlm1"] + pred["cdfi_dlm1"]) / 2)
    row = read_cohort(cohort_dir / "cohort.csv").rows[3]
    from softmass_core.cascade import CaseImages
    from softmass_core.images import load_image

    single = cascade.run(
        CaseImages(
            gray=load_image(row.paths["gray"]).rgb,
            cdfi=load_image(row.paths["cdfi"]).rgb,
            gray_roi=row.rois["gray"],
        ),
        run_all=True,
    )
    got = pred.set_index("case_id").loc[row.case_id]
    assert got["p_malignant"] == pytest.approx(single.p_malignant, abs=1e-6)
    assert got["diagnosis"] == single.diagnosis
    assert got["score_lipoma"] == pytest.approx(single.sub_scores["lipoma"], abs=1e-6)
    m = ev.metrics["validation"]
    assert m["dlm1"]["n"] == 12 and m["dlm1"]["n_positive"] == 2
    assert set(m["dlm2"]) == set(SUBTYPES)
    assert m["dlm2"]["lipoma"]["n"] == 10 and m["dlm2"]["lipoma"]["n_positive"] == 2
    assert ev.roc["validation"]["dlm1"]["fpr"][0] == 0.0
    files = ev.write(tmp_path / "out")
    data = json.loads(files["metrics_json"].read_text())  # strict JSON: no NaN/Infinity
    assert data["cohorts"]["test_a"]["dlm1"]["counts"].keys() == {"tp", "fp", "fn", "tn"}
    table = ev.metrics_table()
    assert {"cohort", "task", "metric", "value", "ci_low", "ci_high"} <= set(table.columns)


def test_evaluate_reports_unreadable_image(cohort_dir, tiny_weights):
    (cohort_dir / "validation-lipoma-0_g.png").write_bytes(b"not a png")
    with pytest.raises(CohortError, match=r"validation-lipoma-0.*gray image"):
        evaluate(Cascade(WeightSet.load(tiny_weights)), read_cohort(cohort_dir / "cohort.csv"))
