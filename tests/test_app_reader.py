"""AppTest of the Reader-study page (pages/4_reader_study.py): blind -> reveal -> assisted, and the summary."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from softmass_core.demo import DEMO_CASE_IDS, demo_label
from softmass_core.errors import StoreError
from softmass_core.labels import MALIGNANT, display_name
from softmass_core.metrics import clopper_pearson_ci
from softmass_core.store import ReaderStudyStore
from tests.conftest import make_tiny_weight_set

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui import reader_view  # noqa: E402

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "4_reader_study.py")
TIMEOUT = 120


@pytest.fixture
def app_env(tmp_path_factory, tmp_path, monkeypatch):
    """A tiny weight set and a fresh reader database (a new SQLite file per test)."""
    weights = tmp_path_factory.getbasetemp() / "reader_weights"
    if not (weights / "tiny" / "manifest.json").exists():
        make_tiny_weight_set(weights / "tiny")
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTMASS_READER_DB", str(tmp_path / "reads.sqlite"))
    for name in [m for m in sys.modules if m == "ui.common"]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def _texts(at: AppTest) -> str:
    """Everything written on the page as text (markdown, captions, metrics, headings, alerts)."""
    parts = [e.value for e in (*at.markdown, *at.caption, *at.subheader, *at.title, *at.info, *at.success)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _identify(at: AppTest, name: str, years: int) -> AppTest:
    at.text_input(key="reader.name").input(name)
    at.number_input(key="reader.years").set_value(years)
    return at.button[0].click().run()


def _blind_radio(at: AppTest):
    return next(r for r in at.radio if r.label == "Diagnosis")


def _revised_radio(at: AppTest):
    return next(r for r in at.radio if r.label == "Revised diagnosis")


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_blind_then_reveal_then_assisted_and_summary(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _no_errors(at)
    assert "Identify yourself" in _texts(at)
    assert not at.radio  # no case before the reader identifies

    at = _identify(at, "Dr Test", 8)
    _no_errors(at)
    assert "Reading as **Dr Test**" in _texts(at)
    assert "Case 1" in _texts(at)
    # Blind: the two images only; no probability, no heatmap, and nothing names the case's class or id.
    assert len(at.image) == 2
    text = _texts(at)
    assert "P(malignant)" not in text and "Grad-CAM" not in text and "DLM diagnosis" not in text
    assert "demo-" not in text
    assert not at.get("vega_lite_chart")
    radio = _blind_radio(at)
    assert radio.value is None
    assert next(b for b in at.button if b.label == "Record blind diagnosis").disabled

    store = ReaderStudyStore(app_env / "reads.sqlite")
    first = store.reads()
    assert list(first["seq"]) == [1] and first["state"].iloc[0] == "new"
    case_id = first["case_id"].iloc[0]
    truth = demo_label(case_id)
    wrong = "lipoma" if truth == MALIGNANT else MALIGNANT

    radio.set_value(wrong).run()
    at = _click(at, "Record blind diagnosis")
    _no_errors(at)
    # Revealed only now: probabilities and heatmaps of the DLM, and the revised-diagnosis form.
    text = _texts(at)
    assert "P(malignant), DLM-1" in text and "Grad-CAM heatmap of DLM-1" in text
    assert len(at.image) >= 4  # the two images and at least the two DLM-1 heatmaps
    assert store.reader_state(int(first["reader_id"].iloc[0]), case_id) == "blind_done"
    revised = _revised_radio(at)
    assert revised.value == wrong  # starts from the blind answer
    assert not any(r.label == "Diagnosis" for r in at.radio)  # the blind read cannot be redone

    revised.set_value(truth).run()
    at = _click(at, "Record revised diagnosis")
    _no_errors(at)
    assert "Case 2" in _texts(at)  # the next case, blind again
    assert "P(malignant)" not in _texts(at)

    reads = store.reads()
    row = reads[reads["case_id"] == case_id].iloc[0]
    assert row["state"] == "complete" and row["experience_years"] == 8
    assert 0.0 <= row["model_p_malignant"] <= 1.0
    assert list(reads.sort_values("seq")["seq"]) == [1, 2]

    # No feedback while reading: the results wait until the reader has finished every case.
    assert not at.dataframe and "once you have read every case" in _texts(at)
    # The coordinator's view (nobody reading) shows the summary: wrong before, right after.
    at = _click(at, "Switch reader")
    _no_errors(at)
    summary = next(df.value for df in at.dataframe if "With the DLM" in df.value.columns)
    bvm = summary[summary["Task"] == "Benign vs malignant"].iloc[0]
    assert bvm["Reader"] == "Dr Test" and bvm["Cases"] == 1 and bvm["Experience (years)"] == "8"
    assert bvm["Blind (images only)"].startswith("0.0% (0/1)")
    assert bvm["With the DLM"].startswith("100.0% (1/1)")
    assert {b.label for b in at.get("download_button")} == {"All reads, in order (CSV)", "Accuracy summary (CSV)"}

    # The same case cannot be read blind again by the same reader.
    with pytest.raises(StoreError):
        store.record_blind(int(row["reader_id"]), case_id, malignant=True, subtype=None)


def test_a_new_session_resumes_at_the_reveal_and_order_is_per_reader(app_env):
    store = ReaderStudyStore(app_env / "reads.sqlite")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at = _identify(at, "Reader A", 3)
    _blind_radio(at).set_value(MALIGNANT).run()
    at = _click(at, "Record blind diagnosis")
    _no_errors(at)

    # A new browser session of the same reader lands on the reveal, not on a second blind read.
    again = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    again = _identify(again, "Reader A", 3)
    _no_errors(again)
    assert "Your blind diagnosis: **Malignant** (recorded)." in _texts(again)
    assert not any(r.label == "Diagnosis" for r in again.radio)

    a = int(store.readers().query("name == 'Reader A'")["id"].iloc[0])
    b = store.register_reader("Reader B")
    order_a = reader_view.reading_order(a, list(DEMO_CASE_IDS))
    order_b = reader_view.reading_order(b, list(DEMO_CASE_IDS))
    assert sorted(order_a) == sorted(DEMO_CASE_IDS) and order_a != order_b
    assert order_a == reader_view.reading_order(a, list(DEMO_CASE_IDS))  # stable for a reader
    assert store.reads(a)["case_id"].iloc[0] == order_a[0]  # the page followed that order


def test_summary_table_formats_the_papers_figures():
    # Radiologist 1 of the paper: 50/58 before, 52/58 after (benign vs malignant).
    before, after = clopper_pearson_ci(50, 58), clopper_pearson_ci(52, 58)
    summary = pd.DataFrame(
        [
            {
                "reader_id": 1,
                "reader_name": "R1",
                "task": "benign_vs_malignant",
                "n": 58,
                "correct_before": 50,
                "accuracy_before": 50 / 58,
                "ci_before_low": before[0],
                "ci_before_high": before[1],
                "correct_after": 52,
                "accuracy_after": 52 / 58,
                "ci_after_low": after[0],
                "ci_after_high": after[1],
                "mcnemar_b": 0,
                "mcnemar_c": 2,
                "mcnemar_statistic": 0.0,
                "mcnemar_p": 0.5,
                "mcnemar_method": "exact binomial",
            }
        ]
    )
    table = reader_view.summary_table(summary)
    assert table.loc[0, "Blind (images only)"] == "86.2% (50/58) [74.6, 93.9]"
    assert table.loc[0, "With the DLM"] == "89.7% (52/58) [78.8, 96.1]"
    assert table.loc[0, "McNemar p"] == "0.500 (exact binomial)"
    assert reader_view.answer_name("epidermal_cyst") == f"Benign: {display_name('epidermal_cyst')}"
