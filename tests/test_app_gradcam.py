"""Grad-CAM comparison page (pages/3_gradcam.py) under Streamlit's AppTest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from softmass_core.cascade import Cascade
from softmass_core.demo import demo_case
from softmass_core.focus import GRADE_TITLES, compare_focus, reader_mask_from_box
from softmass_core.gradcam import cams_for_result
from softmass_core.labels import DLM1
from softmass_core.store import ReaderStudyStore
from softmass_core.weights import WeightSet

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "3_gradcam.py")
TIMEOUT = 120
BOX = (100, 60, 300, 250)


@pytest.fixture(scope="module")
def weights_root(tiny_weights, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights_focus")
    shutil.copytree(tiny_weights, root / "tiny")
    return root


@pytest.fixture
def env(weights_root, tmp_path, monkeypatch):
    db = tmp_path / "reader.sqlite"
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights_root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTMASS_READER_DB", f"sqlite:///{db}")
    st_config.set_option("client.showErrorDetails", "full")
    return weights_root, db


def type_box(at: AppTest, case_id: str, modality: str, box=BOX) -> AppTest:
    for name, value in zip(("x0", "y0", "x1", "y1"), box, strict=True):
        at.number_input(key=f"focus.box.{case_id}.{modality}.{name}").set_value(value)
    return at.run()


def expected_comparison(weights: Path, case_id: str, model_id: str = DLM1, modality: str = "gray"):
    ws = WeightSet.load(weights)
    case = demo_case(case_id)
    result = Cascade(ws).run(case.to_case_images(), keep_features=True)
    cam = cams_for_result(ws, result, model_id)[modality]
    h, w = case.gray.shape[:2]
    return compare_focus(reader_mask_from_box(BOX, h, w), cam.full_image(w, h))


def test_page_runs_and_asks_for_an_area(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("Draw the area you looked at" in str(i.value) for i in at.info)
    assert at.button(key="focus.record").disabled


def test_typed_box_gives_the_grade_of_compare_focus(env):
    weights, _ = env
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    type_box(at, "demo-malignant-1", "gray")
    assert not at.exception
    expected = expected_comparison(weights / "tiny", "demo-malignant-1")
    headings = [str(s.value) for s in at.subheader]
    assert f"Overlap: {GRADE_TITLES[expected.grade]}" in headings
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Yours in model's"] == f"{expected.percent}%"
    assert metrics["IoU"] == f"{expected.iou:.2f}"
    assert expected.reader_pixels == 200 * 190


def test_grades_are_recorded_and_summarised_per_reader(env):
    weights, db = env
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    type_box(at, "demo-malignant-1", "gray")
    at.text_input(key="focus.reader_name").input("Dr Ada").run()
    at.button(key="focus.record").click().run()
    assert not at.exception
    assert any("Recorded" in str(s.value) for s in at.success)

    # A second case of another lesion type, graded for SM-1.
    at.selectbox(key="focus.demo_case").set_value("demo-lipoma-2").run()
    at.selectbox(key="focus.model").set_value("sm1").run()
    type_box(at, "demo-lipoma-2", "gray")
    at.button(key="focus.record").click().run()
    assert not at.exception

    # Recording the same case and model again is refused with the store's message ...
    at.button(key="focus.record").click().run()
    assert any("already graded" in str(e.value) for e in at.error)

    store = ReaderStudyStore(f"sqlite:///{db}")
    grades = store.focus_grades()
    assert list(grades["case_id"]) == ["demo-malignant-1", "demo-lipoma-2"]
    assert list(grades["lesion_type"]) == ["malignant", "lipoma"]
    assert list(grades["model"]) == [DLM1, "sm1"]
    assert set(grades["reader_name"]) == {"Dr Ada"}
    assert list(grades["shape"]) == ["box (typed)", "box (typed)"]
    first = expected_comparison(weights / "tiny", "demo-malignant-1")
    assert grades["grade"].iloc[0] == first.grade
    assert grades["reader_coverage"].iloc[0] == pytest.approx(first.reader_coverage)

    # ... and the Table 4 summary on the page has one row per lesion type plus the total.
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table.index) == ["Lipoma", "Malignant", "Total"]
    assert list(table["n"]) == [1, 1, 2]
    assert list(table.columns[:4]) == [GRADE_TITLES[g] for g in ("complete", "most", "partial", "none")]
    labels = {b.label for b in at.get("download_button")}
    assert {"Download this summary (CSV)", "Download every grade (CSV)"} <= labels
