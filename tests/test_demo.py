"""Demo cases and the cached demo cohort (softmass_core.data.demo)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from softmass_core.data import demo, phantom
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import CaseImages
from softmass_core.io.roi import Roi
from softmass_core.labels import MALIGNANT, SUBTYPES


def test_twelve_cases_two_per_class_from_hospital_1():
    cases = demo.demo_cases()
    assert len(cases) == 12
    assert [c.case_id for c in cases] == list(demo.DEMO_CASE_IDS)
    assert [c.label for c in cases] == [lab for lab in (MALIGNANT, *SUBTYPES) for _ in range(2)]
    assert cases[2].case_id == "demo-lipoma-1" and cases[3].case_id == "demo-lipoma-2"
    assert {c.hospital for c in cases} == {1}
    for c in cases:
        for rgb, roi in ((c.gray, c.gray_roi), (c.cdfi, c.cdfi_roi)):
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
            h, w = rgb.shape[:2]
            assert isinstance(roi, Roi)
            assert 0 <= roi.x0 < roi.x1 <= w and 0 <= roi.y0 < roi.y1 <= h
        assert c.sex in ("F", "M") and 0 < c.age < 110
    # Two cases of one class differ (different seeds).
    assert not np.array_equal(cases[2].gray, cases[3].gray)


def test_cases_are_deterministic_and_cached():
    case = demo.demo_case("demo-hemangioma-2")
    assert demo.demo_case("demo-hemangioma-2") is case  # generated once per process
    label_index = demo.DEMO_LABELS.index("hemangioma")
    again = phantom.generate_case("hemangioma", hospital=1, seed=demo._case_seed(label_index, 2))
    np.testing.assert_array_equal(case.gray, again.gray)
    np.testing.assert_array_equal(case.cdfi, again.cdfi)
    assert case.gray_roi == again.gray_roi
    assert demo.demo_label("demo-hemangioma-2") == "hemangioma"


def test_shared_images_are_read_only():
    case = demo.demo_case("demo-malignant-1")
    with pytest.raises(ValueError):
        case.gray[0, 0, 0] = 1


def test_to_case_images():
    case = demo.demo_case("demo-neurinoma-1")
    images = case.to_case_images()
    assert isinstance(images, CaseImages)
    assert images.gray is case.gray and images.cdfi is case.cdfi
    assert images.gray_roi == case.gray_roi and images.cdfi_roi == case.cdfi_roi
    assert [m for m, _, _ in images.available()] == ["gray", "cdfi"]


def test_unknown_case_id_raises_with_the_choices():
    with pytest.raises(SoftmassError, match="demo-lipoma-1"):
        demo.demo_case("demo-lipoma-9")
    with pytest.raises(SoftmassError):
        demo.demo_label("nope")


def test_ensure_demo_cohort_generates_once_then_reuses(tmp_path, monkeypatch):
    calls = []

    def fake_generate(out_dir, *, scale, seed, progress=None):
        calls.append((Path(out_dir), scale, seed, progress))
        out = Path(out_dir) / "cohort.csv"
        out.write_text("case_id\n")
        return out

    monkeypatch.setattr(phantom, "generate_cohorts", fake_generate)
    tick = object()
    path = demo.ensure_demo_cohort(tmp_path, progress=tick)
    default = tmp_path / f"phantom-g2-s{demo.DEMO_COHORT_SCALE}-seed2023"
    assert demo.DEMO_COHORT_SCALE == 1.0  # the paper-sized draw, so the demo's CIs say something
    assert path == default / "cohort.csv"
    assert calls == [(default, demo.DEMO_COHORT_SCALE, demo.DEMO_SEED, tick)]
    assert demo.ensure_demo_cohort(tmp_path) == path
    assert len(calls) == 1  # reused
    other = demo.ensure_demo_cohort(tmp_path, scale=0.5, seed=7)
    assert other == tmp_path / "phantom-g2-s0.5-seed7" / "cohort.csv"
    assert len(calls) == 2


def test_ensure_demo_cohort_rejects_a_bad_scale(tmp_path):
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(SoftmassError, match="scale"):
            demo.ensure_demo_cohort(tmp_path, scale=bad)


def test_ensure_demo_cohort_writes_every_cohort_of_the_plan(tmp_path):
    seen = []
    path = demo.ensure_demo_cohort(tmp_path, scale=0.001, seed=5, progress=lambda done, total: seen.append(total))
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["cohort"] for r in rows} == set(phantom.COHORT_PLAN)
    hospitals = {r["cohort"]: {int(r["hospital"])} for r in rows}
    assert hospitals == {name: {plan[0]} for name, plan in phantom.COHORT_PLAN.items()}
    assert len(rows) == 6 * len(phantom.COHORT_PLAN)  # at least 1 per class: 0.001 x counts rounds up to 1
    assert seen and seen[-1] == len(rows)
    for r in rows[:2]:
        assert (path.parent / r["gray_path"]).is_file()
