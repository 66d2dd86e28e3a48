"""Tests of the simulated-case generator (softmass_core.data.phantom) and the histogram baseline."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmass_core.data.phantom import (
    COHORT_PLAN,
    CSV_COLUMNS,
    GENERATOR_VERSION,
    HOSPITALS,
    PHANTOM_LABELS,
    PROVENANCE_NAME,
    generate_case,
    generate_cohorts,
    plan_cases,
    read_provenance,
    scaled_counts,
)
from softmass_core.data.phantom.bmode import _compound_posterior, _resample_lines
from softmass_core.data.phantom.classes import GROUPS, p_swap_for, sample_age_sex, sample_lesion
from softmass_core.data.phantom.scanner import with_overrides
from softmass_core.errors import SoftmassError
from softmass_core.labels import MALIGNANT, SUBTYPES
from softmass_core.training.baseline import (
    fit_logistic,
    histogram_baseline,
    histogram_features,
    predict_logistic,
    rank_auc,
)


def _sector(hospital: int) -> tuple[int, int, int, int]:
    sc = HOSPITALS[hospital]
    y0, x0 = sc.sector_yx
    return x0, y0, x0 + sc.sector_hw[1], y0 + sc.sector_hw[0]


def _posterior_minus_beside(case) -> float:
    """Mean grey just below the lesion minus the mean grey at the same depth beside it."""
    g = case.gray.mean(axis=2)
    x0, y0, x1, y1 = case.meta["lesion_box_gray"]
    sx0, _, sx1, sy1 = _sector(case.hospital)
    w, h = x1 - x0, y1 - y0
    r0, r1 = int(y1 + 2), int(min(sy1, y1 + 2 + max(6, 0.5 * h)))
    cx = 0.5 * (x0 + x1)
    below = g[r0:r1, int(cx - 0.25 * w) : int(cx + 0.25 * w)]
    left = g[r0:r1, max(sx0, int(x0 - 0.6 * w)) : max(sx0, int(x0 - 0.2 * w))]
    right = g[r0:r1, min(sx1, int(x1 + 0.2 * w)) : min(sx1, int(x1 + 0.6 * w))]
    side = np.concatenate([left.ravel(), right.ravel()])
    if r1 - r0 < 3 or side.size < 20 or below.size == 0:
        return float("nan")
    return float(below.mean() - side.mean())


def _colour_fraction(case) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in case.meta["lesion_box_cdfi"])
    crop = case.cdfi[y0:y1, x0:x1].astype(int)
    return float(((crop.max(axis=2) - crop.min(axis=2)) > 40).mean())


# ----------------------------------------------------------------------------- single cases
def test_same_seed_gives_identical_bytes_and_different_seed_differs():
    a = generate_case("lipoma", hospital=1, seed=5)
    b = generate_case("lipoma", hospital=1, seed=5)
    c = generate_case("lipoma", hospital=1, seed=6)
    assert a.gray.tobytes() == b.gray.tobytes()
    assert a.cdfi.tobytes() == b.cdfi.tobytes()
    assert (a.gray_roi, a.cdfi_roi, a.age, a.sex) == (b.gray_roi, b.cdfi_roi, b.age, b.sex)
    assert a.meta == b.meta
    assert a.gray.tobytes() != c.gray.tobytes()


@pytest.mark.parametrize("hospital", [1, 2, 3])
def test_shapes_dtypes_and_demographics(hospital):
    case = generate_case(MALIGNANT, hospital=hospital, seed=1)
    h, w = HOSPITALS[hospital].canvas_hw
    for img in (case.gray, case.cdfi):
        assert img.shape == (h, w, 3)
        assert img.dtype == np.uint8
    assert case.label == MALIGNANT and case.hospital == hospital
    assert 5 <= case.age <= 90 and case.sex in ("M", "F")
    assert isinstance(case.meta["signs"], list)


@pytest.mark.parametrize("label", PHANTOM_LABELS)
def test_roi_inside_image_and_around_the_lesion(label):
    for seed in (0, 1):
        case = generate_case(label, hospital=1 + seed, seed=seed)
        for img, roi, box, centre in (
            (case.gray, case.gray_roi, case.meta["lesion_box_gray"], case.meta["lesion_center_gray"]),
            (case.cdfi, case.cdfi_roi, case.meta["lesion_box_cdfi"], case.meta["lesion_center_cdfi"]),
        ):
            x0, y0, x1, y1 = roi.to_list()
            assert all(isinstance(v, int) for v in roi.to_list())
            assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
            assert x0 <= centre[0] < x1 and y0 <= centre[1] < y1
            # the ROI holds the (visible part of the) lesion with a margin
            assert x0 <= box[0] + 1 and y0 <= box[1] + 1 and x1 >= box[2] - 1 and y1 >= box[3] - 1
            assert (x1 - x0) * (y1 - y0) > (box[2] - box[0]) * (box[3] - box[1])


def test_hospitals_differ_in_size_and_texture():
    def texture(case) -> tuple[float, float]:
        """(1-px over 6-px grey step ratio: lower = coarser speckle, grey sd) in the upper tissue."""
        x0, y0, x1, y1 = _sector(case.hospital)
        h = y1 - y0
        g = case.gray[y0 + h // 5 : y0 + h // 2, x0:x1].mean(axis=2)
        fine = np.abs(np.diff(g, axis=1)).mean()
        coarse = np.abs(g[:, 6:] - g[:, :-6]).mean()
        return float(fine / (coarse + 1e-6)), float(g.std())

    stats = {
        h: np.array([texture(generate_case("epidermal_cyst", hospital=h, seed=s)) for s in range(3)]) for h in (1, 2, 3)
    }
    shapes = {generate_case("lipoma", hospital=h, seed=0).gray.shape for h in (1, 2, 3)}
    assert len(shapes) == 3
    ratio = {h: v[:, 0].mean() for h, v in stats.items()}
    sd = {h: v[:, 1].mean() for h, v in stats.items()}
    # hospital 3 (9 MHz, coarse line density) has the coarsest speckle; hospital 2 compounds (smoother, lower sd)
    assert ratio[3] < min(ratio[1], ratio[2])
    assert sd[2] < sd[1]


def test_steered_compounding_makes_posterior_signs_shallower_and_wider():
    post = np.zeros((80, 30), dtype=np.float32)
    post[:, 10:20] = 10.0  # a 10 dB shadow straight below the lesion
    plain = np.zeros((80, 100), dtype=np.float32)
    plain[:, 40:70] = post
    same = _compound_posterior(post, 40, 100, 1e-9)  # no steering: the same shadow
    np.testing.assert_allclose(same, plain, atol=1e-4)
    out = _compound_posterior(post, 40, 100, 15.0)
    deep = out[-1]
    assert deep.max() < 10.0 * 0.75  # shallower once the steered frames part
    assert (deep > 0.5).sum() > 2 * (plain[-1] > 0.5).sum()  # wider at depth
    assert (out[0] > 0.5).sum() == (plain[0] > 0.5).sum()  # not yet spread at the lesion's base
    # enhancement (negative dB) is softened the same way
    assert -_compound_posterior(-post, 40, 100, 15.0)[-1].min() < 10.0 * 0.75


def test_coarse_line_sampling_keeps_flat_areas_and_loses_fine_lateral_detail():
    flat = np.full((5, 60), 0.4, dtype=np.float32)
    np.testing.assert_allclose(_resample_lines(flat, 3.0), flat, atol=1e-6)
    stripes = np.tile(np.array([0.0, 1.0], dtype=np.float32), (5, 30))
    out = _resample_lines(stripes, 3.0)
    assert out.shape == stripes.shape
    assert np.abs(np.diff(out, axis=1)).mean() < 0.5 * np.abs(np.diff(stripes, axis=1)).mean()


def test_edge_enhancement_sharpens_the_speckle(monkeypatch):
    def fine_over_coarse(case) -> float:
        x0, y0, x1, y1 = _sector(case.hospital)
        g = case.gray[y0 + 40 : y1 - 40, x0:x1].mean(axis=2)
        return float(np.abs(np.diff(g, axis=0)).mean() / (np.abs(g[6:] - g[:-6]).mean() + 1e-6))

    plain = with_overrides(HOSPITALS[3], edge_enhance=0.0, line_pitch=1.0)
    monkeypatch.setitem(HOSPITALS, 3, plain)
    soft = np.mean([fine_over_coarse(generate_case("lipoma", hospital=3, seed=s)) for s in range(2)])
    monkeypatch.setitem(HOSPITALS, 3, with_overrides(plain, edge_enhance=1.5))
    sharp = np.mean([fine_over_coarse(generate_case("lipoma", hospital=3, seed=s)) for s in range(2)])
    assert sharp > 1.1 * soft


def test_hospital_3_readers_draw_tighter_rois():
    def margin(case) -> float:
        x0, y0, x1, y1 = case.gray_roi.to_list()
        bx0, by0, bx1, by1 = case.meta["lesion_box_gray"]
        return ((x1 - x0) * (y1 - y0)) / ((bx1 - bx0) * (by1 - by0))

    assert HOSPITALS[3].roi_margin[1] < HOSPITALS[1].roi_margin[0] + 0.1
    loose = np.median([margin(generate_case("neurinoma", hospital=1, seed=s)) for s in range(8)])
    tight = np.median([margin(generate_case("neurinoma", hospital=3, seed=s)) for s in range(8)])
    assert tight < loose


def test_unknown_label_and_bad_difficulty_are_refused():
    with pytest.raises(SoftmassError, match="Cannot simulate"):
        generate_case("benign")
    with pytest.raises(SoftmassError, match="difficulty"):
        generate_case("lipoma", difficulty=1.5)
    with pytest.raises(SoftmassError, match="hospital"):
        generate_case("lipoma", hospital=7)


# ----------------------------------------------------------------------------- class signs
def test_epidermal_cyst_shows_posterior_enhancement():
    diffs = [_posterior_minus_beside(generate_case("epidermal_cyst", seed=s, difficulty=0.0)) for s in range(6)]
    assert np.nanmean(diffs) > 8.0


def test_pilomatricoma_casts_a_posterior_shadow():
    diffs = [_posterior_minus_beside(generate_case("calcifying_epithelioma", seed=s, difficulty=0.0)) for s in range(6)]
    assert np.nanmean(diffs) < -5.0


def test_pilomatricoma_calcific_foci_are_bright_spots():
    contrasts = []
    for s in range(4):
        case = generate_case("calcifying_epithelioma", seed=s, difficulty=0.0)
        assert case.meta["calc_foci_gray"], "every pilomatricoma has calcification (Hwang 2005: 100 %)"
        g = case.gray.mean(axis=2)
        x0, y0, x1, y1 = (int(round(v)) for v in case.meta["lesion_box_gray"])
        lesion_median = np.median(g[y0:y1, x0:x1])
        peaks = [g[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].max() for x, y in case.meta["calc_foci_gray"]]
        contrasts.append(np.mean(peaks) - lesion_median)
    assert np.mean(contrasts) > 50.0


def test_malignant_cdfi_has_more_colour_in_the_lesion_than_lipoma_or_cyst():
    def mean_colour(label: str) -> float:
        return float(np.mean([_colour_fraction(generate_case(label, seed=s, difficulty=0.0)) for s in range(6)]))

    malignant = mean_colour(MALIGNANT)
    assert malignant > 2 * mean_colour("lipoma")
    assert malignant > 2 * mean_colour("epidermal_cyst")


def test_signs_follow_the_class():
    lipoma = [generate_case("lipoma", seed=s, difficulty=0.0).meta for s in range(6)]
    assert sum("striations" in m["signs"] for m in lipoma) >= 2  # 71 % in Salmaso & Taricco
    assert all(m["vascular_pattern"] in ("none", "minimal") for m in lipoma if "vascular" not in m["swapped"])


# ----------------------------------------------------------------------------- parameters
def test_difficulty_raises_the_group_swap_rate():
    rng = np.random.default_rng(0)
    n = 400
    easy = sum(len(sample_lesion("lipoma", rng, 0.0).swapped) for _ in range(n)) / (5 * n)
    hard = sum(len(sample_lesion("lipoma", rng, 1.0).swapped) for _ in range(n)) / (5 * n)
    assert p_swap_for(0.0) == pytest.approx(0.05) and p_swap_for(1.0) == pytest.approx(0.40)
    assert abs(easy - 0.05) < 0.03 and abs(hard - 0.40) < 0.06


def test_age_follows_table_1():
    rng = np.random.default_rng(1)
    malignant = [sample_age_sex(MALIGNANT, rng)[0] for _ in range(2000)]
    benign = [sample_age_sex("lipoma", rng)[0] for _ in range(2000)]
    pilo = [sample_age_sex("calcifying_epithelioma", rng)[0] for _ in range(2000)]
    sexes = [sample_age_sex("hemangioma", rng)[1] for _ in range(2000)]
    assert abs(np.mean(malignant) - 49.1) < 1.5 and abs(np.std(malignant) - 16.1) < 1.5
    assert abs(np.mean(benign) - 33.9) < 1.0
    assert np.mean(pilo) < np.mean(benign) - 5
    assert min(malignant + benign + pilo) >= 5 and max(malignant + benign + pilo) <= 90
    assert abs(sexes.count("M") / 2000 - 0.5) < 0.05


# ----------------------------------------------------------------------------- cohorts
def test_cohort_plan_matches_table_1():
    totals = {name: sum(counts.values()) for name, (_, counts) in COHORT_PLAN.items()}
    assert totals == {"training": 618, "validation": 154, "test_a": 156, "test_b": 123}
    assert {name: h for name, (h, _) in COHORT_PLAN.items()} == {
        "training": 1,
        "validation": 1,
        "test_a": 2,
        "test_b": 3,
    }
    assert COHORT_PLAN["test_b"][1] == {
        MALIGNANT: 10,
        "lipoma": 28,
        "hemangioma": 20,
        "neurinoma": 18,
        "epidermal_cyst": 27,
        "calcifying_epithelioma": 20,
    }
    assert set(COHORT_PLAN["training"][1]) == {MALIGNANT, *SUBTYPES}


def test_plan_cases_scales_counts_and_seeds_each_case_independently():
    plan = plan_cases("training", seed=7, scale=0.1)
    counts = {lab: sum(1 for _, lab2, _ in plan if lab2 == lab) for lab in PHANTOM_LABELS}
    assert (
        counts
        == scaled_counts("training", 0.1)
        == {
            MALIGNANT: 3,
            "lipoma": 12,
            "hemangioma": 12,
            "neurinoma": 12,
            "epidermal_cyst": 16,
            "calcifying_epithelioma": 6,
        }
    )
    assert scaled_counts("test_a", 0.001) == dict.fromkeys(PHANTOM_LABELS, 1)
    assert plan == plan_cases("training", seed=7, scale=0.1)
    assert len({s for _, _, s in plan}) == len(plan)
    assert [s for _, _, s in plan_cases("training", seed=8, scale=0.1)] != [s for _, _, s in plan]


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    (out / "cohort.csv").write_text("stale\n")
    (out / PROVENANCE_NAME).write_text("stale\n")
    seen_csv_during_run = []

    def progress(done: int, total: int) -> None:
        seen_csv_during_run.append((out / "cohort.csv").exists() or (out / PROVENANCE_NAME).exists())

    path = generate_cohorts(out, seed=11, scale=0.001, cohorts=["training", "test_b"], progress=progress)
    return path, seen_csv_during_run


def test_generate_cohorts_writes_csv_with_relative_paths(tiny_cohort):
    path, _ = tiny_cohort
    assert path.name == "cohort.csv"
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 12
    for cohort, hospital in (("training", "1"), ("test_b", "3")):
        sub = [r for r in rows if r["cohort"] == cohort]
        assert sorted(r["label"] for r in sub) == sorted(PHANTOM_LABELS)
        assert {r["hospital"] for r in sub} == {hospital}
    for r in rows:
        for kind in ("gray", "cdfi"):
            rel = r[f"{kind}_path"]
            assert "\\" not in rel and not Path(rel).is_absolute()
            assert rel == f"images/{r['cohort']}/{r['case_id']}_{kind}.png"
            with Image.open(path.parent / rel) as im:
                assert im.mode == "RGB"
                w, h = im.size
            x0, y0, x1, y1 = (int(v) for v in r[f"{kind}_roi"].split(","))
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert r["sex"] in ("M", "F") and 5 <= int(r["age"]) <= 90
    assert len({r["case_id"] for r in rows}) == 12


def test_generate_cohorts_writes_the_csv_last(tiny_cohort):
    path, seen = tiny_cohort
    assert seen and not any(seen)  # the stale CSV was removed and the new one only appears at the end
    assert not (path.parent / "cohort.csv.tmp").exists()


def test_generate_cohorts_names_each_cases_atypical_feature_groups(tmp_path):
    # difficulty 1: p_swap 0.4 per group, so nearly every case has some group drawn from another class
    path = generate_cohorts(tmp_path, seed=4, scale=0.001, cohorts=["validation"], difficulty=1.0)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    plan = {f"va-{index:04d}": case_seed for index, _, case_seed in plan_cases("validation", seed=4, scale=0.001)}
    cells = []
    for r in rows:
        case = generate_case(r["label"], hospital=1, seed=plan[r["case_id"]], difficulty=1.0)
        assert r["atypical"] == ";".join(f"{g}:{c}" for g, c in case.meta["swapped"].items())
        for part in filter(None, r["atypical"].split(";")):
            group, source = part.split(":")
            assert group in GROUPS and source in PHANTOM_LABELS and source != r["label"]
        cells.append(r["atypical"])
    assert any(cells) and len(set(cells)) > 1


def test_generate_cohorts_records_how_the_cases_were_drawn(tiny_cohort, tmp_path):
    path, _ = tiny_cohort
    source = read_provenance(path)
    assert source == {
        "generator": "softmass phantom",
        "generator_version": GENERATOR_VERSION,
        "seed": 11,
        "scale": 0.001,
        "difficulty": 0.2,
        "cohorts": {"training": 6, "test_b": 6},
        "rescan_hospital": None,
    }
    # a CSV made elsewhere has no provenance; an unreadable or foreign file is not taken for one
    assert read_provenance(tmp_path / "cohort.csv") is None
    (tmp_path / PROVENANCE_NAME).write_text("{not json")
    assert read_provenance(tmp_path / "cohort.csv") is None
    (tmp_path / PROVENANCE_NAME).write_text('{"seed": 3}')
    assert read_provenance(tmp_path / "cohort.csv") is None


def test_generate_cohorts_refuses_unknown_cohort(tmp_path):
    with pytest.raises(SoftmassError, match="Unknown cohort"):
        generate_cohorts(tmp_path, cohorts=["nope"])


# ----------------------------------------------------------------------------- baseline
def test_histogram_features_known_answer():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, 10:] = 255
    img[0, 0] = (255, 0, 0)
    f = histogram_features(img, (0, 0, 20, 10), bins=4)
    assert f.shape == (7,)
    assert f[:4].sum() == pytest.approx(1.0)
    assert f[-1] == pytest.approx(1 / 200)
    assert histogram_features(img, (10, 0, 20, 10), bins=4)[3] == pytest.approx(1.0)


def test_rank_auc_known_answers():
    assert rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert rank_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert np.isnan(rank_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_logistic_regression_separates_separable_data():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-2, 1, (50, 3)), rng.normal(2, 1, (50, 3))])
    y = np.r_[np.zeros(50), np.ones(50)]
    model = fit_logistic(X, y)
    assert rank_auc(y, predict_logistic(model, X)) > 0.99


def test_histogram_baseline_runs_on_a_generated_cohort(tiny_cohort):
    path, _ = tiny_cohort
    res = histogram_baseline(path, eval_cohorts=("test_b",))
    assert set(res) == {MALIGNANT, *SUBTYPES}
    for per in res.values():
        assert set(per) == {"training", "test_b"}
        assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in per.values())
