"""AppTest of the Reader-study page (pages/4_reader_study.py).

Blind -> reveal -> assisted; identity by name and PIN; readers never see
other readers' reads or the results; the study administrator does, with the
right passphrase only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from softmass_core.errors import StoreError
from softmass_core.labels import MALIGNANT, display_name
from softmass_core.reader_study import cases as study
from softmass_core.reader_study.store import ReaderStudyStore
from softmass_core.stats.intervals import clopper_pearson_ci
from tests.conftest import make_tiny_weight_set

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui import reader_view  # noqa: E402

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "4_reader_study.py")
TIMEOUT = 120
PASSPHRASE = "correct horse battery staple"
ADMIN_ENV = study.ADMIN_PASSPHRASE_ENV


@pytest.fixture
def app_env(tmp_path_factory, tmp_path, monkeypatch):
    """A tiny weight set and a fresh reader database (a new SQLite file per test); no admin passphrase."""
    weights = tmp_path_factory.getbasetemp() / "reader_weights"
    if not (weights / "tiny" / "manifest.json").exists():
        make_tiny_weight_set(weights / "tiny")
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTMASS_READER_DB", str(tmp_path / "reads.sqlite"))
    monkeypatch.delenv(ADMIN_ENV, raising=False)
    for name in [m for m in sys.modules if m == "ui.common"]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def _texts(at: AppTest) -> str:
    """Everything written on the page as text (markdown, captions, headings, alerts, metrics)."""
    parts = [
        e.value
        for e in (*at.markdown, *at.caption, *at.subheader, *at.title, *at.info, *at.success, *at.error, *at.warning)
    ]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def _frames(at: AppTest) -> list[pd.DataFrame]:
    return [df.value for df in at.dataframe]


def _downloads(at: AppTest) -> set[str]:
    return {b.label for b in at.get("download_button")}


def _register(at: AppTest, name: str, years: int) -> AppTest:
    at.radio(key="reader.identify_mode").set_value(reader_view.MODE_NEW).run()
    at.text_input(key="reader.new_name").input(name)
    at.number_input(key="reader.years").set_value(years)
    return _click(at, "Register")


def _new_pin(at: AppTest) -> str:
    text = next(str(s.value) for s in at.success if "Your PIN is" in str(s.value))
    return text.split("Your PIN is **")[1].split("**")[0]


def _identify(at: AppTest, name: str, pin: str) -> AppTest:
    at.radio(key="reader.identify_mode").set_value(reader_view.MODE_RETURNING).run()
    at.text_input(key="reader.name").input(name)
    at.text_input(key="reader.pin").input(pin)
    return _click(at, "Continue")


def _blind_radio(at: AppTest):
    return next(r for r in at.radio if r.label == "Diagnosis")


def _revised_radio(at: AppTest):
    return next(r for r in at.radio if r.label == "Revised diagnosis")


def _click(at: AppTest, label: str) -> AppTest:
    return next(b for b in at.button if b.label == label).click().run()


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _nothing_of_others(at: AppTest) -> None:
    """No results table, chart, export or model column on the page."""
    assert not _downloads(at)
    assert not at.get("vega_lite_chart") or "P(malignant)" in _texts(at)  # only the reveal's own chart
    for frame in _frames(at):
        assert "With the DLM" not in frame.columns and "model_p_malignant" not in frame.columns
        assert "Reader" not in frame.columns and "true_label" not in frame.columns


def _read_one(at: AppTest, blind: str, revised: str) -> AppTest:
    _blind_radio(at).set_value(blind).run()
    at = _click(at, "Record blind diagnosis")
    _revised_radio(at).set_value(revised).run()
    return _click(at, "Record revised diagnosis")


def test_blind_then_reveal_then_assisted_on_the_study_cases(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _no_errors(at)
    assert "Identify yourself" in _texts(at)
    assert not at.radio or all(r.label != "Diagnosis" for r in at.radio)  # no case before the reader identifies
    _nothing_of_others(at)

    at = _register(at, "Dr Test", 8)
    _no_errors(at)
    assert "Reading as **Dr Test**" in _texts(at)
    pin = _new_pin(at)
    assert len(pin) == 9 and pin[4] == "-"
    assert "Case 1 of 12" in _texts(at)
    # Blind: the two images only; no probability, no heatmap, and nothing names the case, its id or class.
    assert len(at.image) == 2
    text = _texts(at)
    assert "P(malignant)" not in text and "Grad-CAM" not in text and "DLM diagnosis" not in text
    assert "demo-" not in text and not any(cid in text for cid in study.STUDY_CASE_IDS)
    assert not at.get("vega_lite_chart")
    radio = _blind_radio(at)
    assert radio.value is None
    assert next(b for b in at.button if b.label == "Record blind diagnosis").disabled

    store = ReaderStudyStore(app_env / "reads.sqlite")
    first = store.reads()
    assert list(first["seq"]) == [1] and first["state"].iloc[0] == "new"
    case_id = first["case_id"].iloc[0]
    assert case_id in study.STUDY_CASE_IDS  # the study's own cases, not the Case page's demo cases
    truth = study.study_label(case_id)
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
    assert "Case 2 of 12" in _texts(at)  # the next case, blind again
    assert "P(malignant)" not in _texts(at)

    reads = store.reads()
    row = reads[reads["case_id"] == case_id].iloc[0]
    assert row["state"] == "complete" and row["experience_years"] == 8
    assert 0.0 <= row["model_p_malignant"] <= 1.0
    assert list(reads.sort_values("seq")["seq"]) == [1, 2]

    # The reader sees their own answers, without the true class, and nothing of anyone else.
    own = next(f for f in _frames(at) if "Your diagnosis (images only)" in f.columns)
    assert own.to_dict("records")[0] == {
        "Case": 1,
        "Your diagnosis (images only)": reader_view.answer_name(wrong),
        "Your diagnosis with the DLM": reader_view.answer_name(truth),
    }
    _nothing_of_others(at)

    # The same case cannot be read blind again by the same reader.
    with pytest.raises(StoreError):
        store.record_blind(int(row["reader_id"]), case_id, malignant=True, subtype=None)


def test_switching_reader_mid_study_shows_no_results(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at = _register(at, "Reader A", 3)
    at = _read_one(at, MALIGNANT, MALIGNANT)
    _no_errors(at)
    at = _click(at, "Switch reader")
    _no_errors(at)
    # Back at the identify form: no results, no reads of anyone, no export, no chart.
    assert "Identify yourself" in _texts(at)
    _nothing_of_others(at)
    assert not at.get("vega_lite_chart") and not at.dataframe
    # No passphrase is configured: the page says where the results are.
    assert "available only on the command line" in _texts(at)
    assert "python -m softmass_core reader-study" in _texts(at)

    # A second reader who has finished nothing sees only their own (empty) progress.
    at = _register(at, "Reader B", 1)
    _no_errors(at)
    assert "Reading as **Reader B**" in _texts(at) and "0 of 12 cases read" in str(at.get("progress")[0].proto)
    _nothing_of_others(at)
    assert "Nothing recorded yet." in _texts(at)


def test_a_new_session_resumes_with_name_and_pin_only(app_env):
    store = ReaderStudyStore(app_env / "reads.sqlite")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at = _register(at, "Reader A", 3)
    pin = _new_pin(at)
    _blind_radio(at).set_value(MALIGNANT).run()
    at = _click(at, "Record blind diagnosis")
    _no_errors(at)
    a = store.reader_id("Reader A")

    # Another session typing Reader A's name without the PIN is refused ...
    other = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    other = _identify(other, "Reader A", "")
    assert any("PIN" in str(e.value) for e in other.error)
    other = _identify(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "Reader A", "2345-6789")
    assert any("does not match reader 'Reader A'" in str(e.value) for e in other.error)
    assert "Reading as" not in _texts(other) and not any(r.label == "Revised diagnosis" for r in other.radio)
    # ... and so is registering under their name (it would have resumed as them before).
    other = _register(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "Reader A", 0)
    assert any("already registered" in str(e.value) for e in other.error)
    assert "Reading as" not in _texts(other)
    assert store.readers().set_index("name").loc["Reader A", "experience_years"] == 3  # unchanged

    # With the PIN (typed in small letters, without the dash), Reader A lands on the reveal, not a second blind read.
    again = _identify(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "Reader A", pin.lower().replace("-", ""))
    _no_errors(again)
    assert "Reading as **Reader A**" in _texts(again)
    assert "Your blind diagnosis: **Malignant** (recorded)." in _texts(again)
    assert not any(r.label == "Diagnosis" for r in again.radio)
    assert "Your PIN is" not in _texts(again)  # the PIN is shown only at registration
    assert store.readers().set_index("name").loc["Reader A", "experience_years"] == 3

    b = store.register_reader("Reader B").reader_id
    ids = list(study.STUDY_CASE_IDS)
    order_a, order_b = reader_view.reading_order(a, ids), reader_view.reading_order(b, ids)
    assert sorted(order_a) == sorted(ids) and order_a != order_b
    assert order_a == reader_view.reading_order(a, ids)  # stable for a reader
    assert store.reads(a)["case_id"].iloc[0] == order_a[0]  # the page followed that order


def test_administrator_sees_results_with_the_right_passphrase_only(app_env, monkeypatch):
    monkeypatch.setenv(ADMIN_ENV, PASSPHRASE)
    store = ReaderStudyStore(app_env / "reads.sqlite")
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at = _register(at, "Dr Test", 8)
    case_id = None
    at = _read_one(at, MALIGNANT, MALIGNANT)
    case_id = store.reads()["case_id"].iloc[0]
    truth_malignant = study.study_label(case_id) == MALIGNANT

    # A reader mid-study: no administrator form, no results.
    assert "Administrator passphrase" not in [t.label for t in at.text_input]
    _nothing_of_others(at)

    at = _click(at, "Switch reader")
    assert "available only on the command line" not in _texts(at)
    at.text_input(key="reader.admin_passphrase").input("wrong passphrase")
    at = _click(at, "Show the results")
    assert any("not right" in str(e.value) for e in at.error)
    _nothing_of_others(at)
    assert not at.dataframe

    at.text_input(key="reader.admin_passphrase").input(PASSPHRASE)
    at = _click(at, "Show the results")
    _no_errors(at)
    assert "Study administrator: results" in _texts(at)
    summary = next(f for f in _frames(at) if "With the DLM" in f.columns)
    bvm = summary[summary["Task"] == "Benign vs malignant"].iloc[0]
    assert bvm["Reader"] == "Dr Test" and bvm["Cases"] == 1 and bvm["Experience (years)"] == "8"
    expected = "100.0% (1/1)" if truth_malignant else "0.0% (0/1)"
    assert bvm["Blind (images only)"].startswith(expected) and bvm["With the DLM"].startswith(expected)
    assert _downloads(at) == {"All reads, in order (CSV)", "Accuracy summary (CSV)"}
    assert at.get("vega_lite_chart")
    # Plain-language help for the statistics the results name.
    caption = next(c for c in at.caption if "Clopper-Pearson" in str(c.value))
    assert "McNemar" in caption.proto.help and "exact" in caption.proto.help

    # The administrator issues a PIN; it works, and leaving the view hides everything again.
    at.selectbox(key="reader.admin_pin_reader").set_value(store.reader_id("Dr Test")).run()
    at = _click(at, "Issue a new PIN")
    new = next(str(s.value) for s in at.success if "New PIN for" in str(s.value)).split("**")[3]
    assert store.identify_reader("Dr Test", new) == store.reader_id("Dr Test")
    at = _click(at, "Lock the results")
    assert "Identify yourself" in _texts(at) and not at.dataframe and not _downloads(at)


def test_an_older_reader_without_a_pin_is_sent_to_the_administrator(app_env):
    import sqlalchemy as sa

    from softmass_core.reader_study.store import readers_table

    store = ReaderStudyStore(app_env / "reads.sqlite")
    old = store.register_reader("Dr Old", experience_years=20).reader_id
    with store.engine.begin() as conn:  # as the upgrade leaves a reader of schema 1
        conn.execute(sa.update(readers_table).where(readers_table.c.id == old).values(pin_hash=None))
    at = _identify(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), "Dr Old", "2345-6789")
    assert any("ask the study administrator" in str(e.value) for e in at.error)
    assert "Reading as" not in _texts(at)


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


def test_accuracy_chart_panels_keep_their_end_labels_apart():
    from ui import charts

    summary = pd.DataFrame(
        [
            {
                "reader_id": 1,
                "reader_name": "R1",
                "task": task,
                "n": 2,
                "correct_before": 2,
                "accuracy_before": 1.0,
                "ci_before_low": 0.16,
                "ci_before_high": 1.0,
                "correct_after": 0,
                "accuracy_after": 0.0,
                "ci_after_low": 0.0,
                "ci_after_high": 0.84,
            }
            for task in ("benign_vs_malignant", "benign_subtype")
        ]
    )
    spec = charts.reader_accuracy_chart(summary).to_dict()
    # The left panel's "100%" and the right one's "0%" overhang their panels by about half a label each;
    # 48 px between panels and 12 px of padding inside each keep them (and points at 0% and 100%) apart.
    assert spec["spacing"] >= 40
    x = spec["spec"]["layer"][0]["encoding"]["x"]
    assert x["scale"]["padding"] >= 10 and x["scale"]["domain"] == [0, 1]


def test_the_passphrase_may_come_from_streamlit_secrets(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.secrets[study.ADMIN_PASSPHRASE_SECRET] = PASSPHRASE
    at.run()
    assert "available only on the command line" not in _texts(at)
    at.text_input(key="reader.admin_passphrase").input(PASSPHRASE)
    at = _click(at, "Show the results")
    _no_errors(at)
    assert "Study administrator: results" in _texts(at)
    assert "No study case has been read blind and with the model yet." in _texts(at)
