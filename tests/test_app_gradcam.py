"""Grad-CAM comparison page (pages/3_gradcam.py) under Streamlit's AppTest."""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from softmass_core.data.demo import demo_case
from softmass_core.inference.cascade import Cascade
from softmass_core.inference.focus import GRADE_TITLES, compare_focus, reader_mask_from_box
from softmass_core.inference.gradcam import cams_for_result
from softmass_core.labels import DLM1, model_name
from softmass_core.reader_study.store import ReaderStudyStore, focus_grades_table
from softmass_core.weights.weight_set import WeightSet
from ui import reader_view

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


def register(at: AppTest, name: str) -> AppTest:
    """Register a new reader in the page's identify form (the same identity as the reader study)."""
    at.radio(key="focus.identify_mode").set_value(reader_view.MODE_NEW).run()
    at.text_input(key="focus.new_name").input(name)
    return next(b for b in at.button if b.label == "Register").click().run()


def test_recording_needs_an_identified_reader(env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    type_box(at, "demo-malignant-1", "gray")
    assert at.button(key="focus.record").disabled  # an area, but nobody identified
    at = register(at, "Dr Ada")
    assert not at.exception and not at.error
    assert any("Recording as **Dr Ada**" in str(m.value) for m in at.markdown)
    assert not at.button(key="focus.record").disabled


def test_grades_are_recorded_and_summarised_per_reader(env):
    weights, db = env
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    type_box(at, "demo-malignant-1", "gray")
    at = register(at, "Dr Ada")
    at.button(key="focus.record").click().run()
    assert not at.exception
    assert any("Recorded" in str(s.value) for s in at.success)

    # The same case graded for SM-1, and a second case of another lesion type for DLM-1.
    at.selectbox(key="focus.model").set_value("sm1").run()
    at.button(key="focus.record").click().run()
    assert not at.exception and not at.error
    at.selectbox(key="focus.demo_case").set_value("demo-lipoma-2").run()
    at.selectbox(key="focus.model").set_value(DLM1).run()
    type_box(at, "demo-lipoma-2", "gray")
    at.button(key="focus.record").click().run()
    assert not at.exception and not at.error

    # Recording the same case and model again is refused in words for people, and nothing is overwritten ...
    at.button(key="focus.record").click().run()
    errors = [str(e.value) for e in at.error]
    assert len(errors) == 1 and "You already graded DLM-1" in errors[0] and "Replace my earlier grade" in errors[0]
    assert "replace=True" not in errors[0]
    # ... until the reader ticks "Replace my earlier grade".
    at.checkbox(key="focus.replace").check().run()
    at.button(key="focus.record").click().run()
    assert not at.error and any("Recorded" in str(s.value) for s in at.success)

    store = ReaderStudyStore(f"sqlite:///{db}")
    grades = store.focus_grades()
    assert list(grades["case_id"]) == ["demo-malignant-1", "demo-malignant-1", "demo-lipoma-2"]
    assert list(grades["lesion_type"]) == ["malignant", "malignant", "lipoma"]
    assert list(grades["model"]) == [DLM1, "sm1", DLM1]
    assert set(grades["weight_set"]) == {"tiny v0.0.1"}  # the set whose model was graded
    assert set(grades["reader_name"]) == {"Dr Ada"}
    assert list(grades["shape"]) == ["box (typed)"] * 3
    first = expected_comparison(weights / "tiny", "demo-malignant-1")
    assert grades["grade"].iloc[0] == first.grade
    assert grades["reader_coverage"].iloc[0] == pytest.approx(first.reader_coverage)

    # Table 4 with "All models": one table per model, so the malignant case graded for DLM-1 and SM-1
    # is one case in each, not two in one total.
    table = at.dataframe[-1].value
    assert list(table.columns[:2]) == ["Model", "Lesion type"]
    rows = list(zip(table["Model"], table["Lesion type"], table["n"], strict=True))
    assert rows == [
        ("DLM-1", "Lipoma", 1),
        ("DLM-1", "Malignant", 1),
        ("DLM-1", "Total", 2),
        (model_name("sm1"), "Malignant", 1),
        (model_name("sm1"), "Total", 1),
    ]
    assert list(table.columns[2:6]) == [GRADE_TITLES[g] for g in ("complete", "most", "partial", "none")]

    # One model: the paper's layout, one row per lesion type plus the total.
    at.selectbox(key="focus.summary_model").set_value(DLM1).run()
    table = at.dataframe[-1].value
    assert list(table.index) == ["Lipoma", "Malignant", "Total"]
    assert list(table["n"]) == [1, 1, 2]

    # Both downloads say which weight set the grades are of (the page writes what these functions give).
    assert {"Download this summary (CSV)", "Download every grade (CSV)"} <= {b.label for b in at.get("download_button")}
    buffer = io.StringIO()
    store.export_csv(buffer, table="focus")
    every = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert list(every["weight_set"]) == ["tiny v0.0.1"] * 3


def test_a_grade_of_an_older_softmass_is_summarised_apart(env):
    _, db = env
    store = ReaderStudyStore(f"sqlite:///{db}")
    ada = store.register_reader("Dr Ada").reader_id
    kwargs = dict(lesion_type="lipoma", model=DLM1, grade="most", reader_coverage=0.6, iou=0.3, shape="box")
    store.record_focus_grade(ada, "demo-lipoma-1", weight_set="tiny v0.0.1", **kwargs)
    with store.engine.begin() as conn:  # as the schema upgrade leaves a grade of schema 1
        conn.execute(
            focus_grades_table.insert().values(
                reader_id=ada, case_id="demo-lipoma-2", weight_set=None, recorded_at=datetime(2026, 1, 1), **kwargs
            )
        )
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    sets = at.selectbox(key="focus.summary_set")
    assert sets.options == ["tiny v0.0.1", "not recorded (graded by an older softmass)"]
    assert list(at.dataframe[-1].value["n"]) == [1, 1]  # the active set's grade only: lipoma + total
    sets.set_value("").run()
    assert "weight set not recorded" in str(at.subheader[-1].value)
    assert list(at.dataframe[-1].value["n"]) == [1, 1]
