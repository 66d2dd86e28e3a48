"""AppTest of the Cohort page (pages/2_cohort.py) on tiny random weight sets."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_tiny_weight_set

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "2_cohort.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """Two tiny weight sets (A with DLM-2, B DLM-1 only) and a fresh cache, set before the app imports ui."""
    root = tmp_path_factory.mktemp("cohort_app")
    weights = root / "weights"
    make_tiny_weight_set(weights / "tiny")
    make_tiny_weight_set(weights / "tiny-dlm1", with_dlm2=False, seed=1)
    mp = pytest.MonkeyPatch()
    mp.setenv("SOFTMASS_WEIGHTS", str(weights))
    mp.setenv("SOFTMASS_CACHE", str(root / "cache"))
    for name in [m for m in sys.modules if m == "ui" or m.startswith("ui.")]:
        mp.delitem(sys.modules, name)  # ui.common reads the env vars at import
    yield root
    mp.undo()


def _frame(at: AppTest, test):
    """The first table shown for which ``test(frame)`` is true (AppTest does not expose dataframe keys)."""
    return next(v for v in (df.value for df in at.dataframe) if test(v))


def _table2(at: AppTest):
    return _frame(at, lambda v: v.index.name == "DLM-1")


def _charts(at: AppTest) -> list[str]:
    """Each altair chart as text: its Vega-Lite spec followed by its data tables."""
    from streamlit import dataframe_util

    out = []
    for chart in at.get("vega_lite_chart"):
        tables = [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]
        out.append(chart.proto.spec + "\n" + "\n".join(t.to_csv(index=False) for t in tables))
    return out


def _no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_page_runs_and_waits_for_a_cohort(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    _no_errors(at)
    assert "Cohort metrics" in at.title[0].value
    assert at.button(key="cohort.run").disabled is False  # the demo cohort can be generated
    assert any("press **Evaluate**" in i.value for i in at.info)
    # One source of truth: no weight-set picker of its own, the sidebar's set named instead.
    assert not [s for s in at.selectbox if s.label == "Weight set"]
    assert any("Weight set: **tiny" in m.value for m in at.markdown)


@pytest.mark.slow
def test_demo_cohort_table2_roc_threshold_and_compare(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.select_slider(key="cohort.scale").set_value(0.05).run()
    at.button(key="cohort.run").click().run()
    _no_errors(at)

    # Labelled as simulated data, not soft-tissue clinical performance.
    assert any("simulated cases" in w.value and "not" in w.value for w in at.warning)

    # The demo evaluates the held-out cohorts at first; its training cohort is one click away.
    t2 = _table2(at)
    assert list(t2.columns) == ["validation", "test_a", "test_b"]
    at.run()  # the cohort file exists now, so the page offers its cohorts
    assert list(_table2(at).columns) == ["validation", "test_a", "test_b"]
    names = next(m for m in at.multiselect if m.label == "Cohorts to evaluate")
    assert names.options[0] == "training" and names.value == ["validation", "test_a", "test_b"]
    names.set_value(["training", "validation", "test_a", "test_b"]).run()
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    t2 = _table2(at)
    assert list(t2.columns) == ["training", "validation", "test_a", "test_b"]
    assert list(t2.index[:8]) == [
        "Cases (malignant)",
        "AUC",
        "ACC (%)",
        "Sensitivity (%)",
        "Specificity (%)",
        "PPV (%)",
        "NPV (%)",
        "F1-score",
    ]
    auc = t2.loc["AUC", "training"]
    assert auc.count("[") == 1 and auc[:2] in ("0.", "1.")

    specs = _charts(at)
    roc = [s for s in specs if "ROC, DLM-1, malignant vs benign" in s]
    assert roc and ("training: AUC 0." in roc[0] or "training: AUC 1." in roc[0])
    assert sum("ROC," in s for s in specs) == 6  # DLM-1 and SM-1..SM-5 tabs
    assert any("Calibration" in s or "Observed vs predicted" in s for s in specs)
    t3 = _frame(at, lambda v: "Subtype" in v.columns)
    assert len(t3) == 5 * 4 and set(t3["Subtype"]) >= {"Lipoma", "Epidermal cyst"}
    assert any(df.value.index.name == "Characteristic" for df in at.dataframe)  # Table 1

    # Threshold 0: every case is called malignant, so sensitivity is 100% and specificity 0%.
    slider = at.slider[0]
    assert slider.label.startswith("DLM-1 threshold")
    slider.set_value(0.0).run()
    _no_errors(at)
    t2 = _table2(at)
    assert t2.loc["Sensitivity (%)", "training"].startswith("100.0 [")
    assert t2.loc["Specificity (%)", "training"].startswith("0.0 [")
    slider.set_value(1.0).run()
    assert _table2(at).loc["Sensitivity (%)", "training"].startswith("0.0 [")

    # Compare with the DLM-1-only set B, labelled as the comparison set: overlaid ROC curves, paired DeLong test.
    assert at.selectbox(key="cohort.compare.ws").label == "Comparison weight set (B)"
    at.button(key="cohort.compare.run").click().run()
    _no_errors(at)
    delong = _frame(at, lambda v: "p (DeLong)" in v.columns)
    assert list(delong["Cohort"]) == ["training", "validation", "test_a", "test_b"]
    assert {"AUC A (tiny)", "AUC B (tiny-dlm1)", "p (DeLong)"} <= set(delong.columns)
    assert any("solid" in s and "B, training: AUC" in s for s in _charts(at))

    downloads = {b.label for b in at.get("download_button")}
    assert {"Predictions (CSV)", "Metrics with 95% CIs (CSV)"} <= downloads


def _cohort_zip() -> bytes:
    rng = np.random.default_rng(0)
    labels = ["malignant", "lipoma", "malignant", "hemangioma", "malignant", "neurinoma"]
    rows = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, label in enumerate(labels):
            for kind in ("gray", "cdfi"):
                img = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
                png = io.BytesIO()
                img.save(png, format="PNG")
                zf.writestr(f"study/img/c{i}_{kind}.png", png.getvalue())
            rows.append(f'c{i},mine,{label},img/c{i}_gray.png,img/c{i}_cdfi.png,"4,4,60,44",')
        zf.writestr("study/cohort.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


def test_uploaded_zip_is_evaluated_and_bad_zip_is_explained(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="cohort.source").set_value("Upload a zip (cohort CSV + images)").run()
    at.file_uploader(key="cohort.upload").set_value(("bad.zip", b"not a zip", "application/zip")).run()
    assert at.error and "not a readable zip" in at.error[0].value

    at.file_uploader(key="cohort.upload").set_value(("study.zip", _cohort_zip(), "application/zip")).run()
    _no_errors(at)
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    t2 = _table2(at)
    assert list(t2.columns) == ["mine"]
    assert t2.loc["Cases (malignant)", "mine"] == "6 (3)"
    assert not any(df.value.index.name == "Characteristic" for df in at.dataframe)  # no age/sex: no Table 1
    assert any("cohort file you chose" in w.value for w in at.warning)


def test_server_path_errors_are_shown(app_env, tmp_path):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.radio(key="cohort.source").set_value("Cohort folder or CSV on the server").run()
    at.text_input(key="cohort.path").input(str(tmp_path / "missing")).run()
    assert at.error and "does not exist" in at.error[0].value
    (tmp_path / "cohort.csv").write_text("case_id,cohort,label,gray_path\nc1,x,unknown_label,a.png\n")
    at.text_input(key="cohort.path").input(str(tmp_path)).run()
    assert at.error and "line 2" in at.error[0].value


# --------------------------------------------------------------------------- benign / malignant labels only


def _write_cohort(root: Path, labels: dict[str, list[str]]) -> Path:
    rng = np.random.default_rng(7)
    rows = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi,age,sex"]
    for cohort, labs in labels.items():
        for i, label in enumerate(labs):
            cid = f"{cohort}-{i}"
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / f"{cid}.png")
            rows.append(f"{cid},{cohort},{label},{cid}.png,,,,{30 + i},{'MF'[i % 2]}")
    (root / "cohort.csv").write_text("\n".join(rows) + "\n")
    return root / "cohort.csv"


@pytest.fixture(scope="module")
def benign_malignant_csv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bm_cohort")
    labels = ["malignant", "benign", "benign", "malignant", "benign", "benign", "benign", "malignant", "benign"]
    return _write_cohort(root, {"validation": labels, "test_a": labels[::-1]})


def _server_cohort(at: AppTest, csv_path: Path) -> AppTest:
    at.radio(key="cohort.source").set_value("Cohort folder or CSV on the server").run()
    return at.text_input(key="cohort.path").input(str(csv_path)).run()


def test_benign_malignant_cohort_shows_dlm1_and_says_why_sub_models_are_missing(app_env, benign_malignant_csv):
    at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    t2 = _table2(at)
    assert t2.loc["Cases (malignant)", "validation"] == "9 (3)"
    assert t2.loc["AUC", "validation"] != "n/a"
    t3 = _frame(at, lambda v: "Subtype" in v.columns)
    assert len(t3) == 5 * 2 and set(t3["AUC"]) == {"n/a"}
    assert set(t3["Note"]) == {"Not computable: no case of a known benign subtype in this cohort."}
    assert any("No sub-model can be measured" in i.value for i in at.info)
    ece = [c.value for c in at.caption if c.value.startswith("Expected calibration error of DLM-1")]
    assert ece and "10 equal-width bins" in ece[0] and "validation 0." in ece[0]
    table1 = [df.value for df in at.dataframe if df.value.index.name == "Characteristic"]
    assert table1 and all(not (t.drop(columns=["p"]) == "").all(axis=1).any() for t in table1)


# --------------------------------------------------------------------------- downloads state their threshold


@pytest.fixture
def downloads(monkeypatch):
    """Every download button's data by label, as the page hands it to Streamlit."""
    from streamlit.elements.widgets.button import ButtonMixin

    seen: dict[str, tuple[str, str]] = {}
    real = ButtonMixin.download_button

    def capture(self, label, data, file_name=None, *args, **kwargs):
        seen[label] = (data if isinstance(data, str) else data.decode(), file_name)
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(ButtonMixin, "download_button", capture)
    return seen


def _csv(text: str):
    import pandas as pd

    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def test_every_download_states_the_threshold_and_operating_point_it_used(app_env, benign_malignant_csv, downloads):
    at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    own = at.slider[0].value
    preds = _csv(downloads["Predictions (CSV)"][0])
    assert set(preds["threshold"]) == {own}
    assert set(preds["operating_point"]) == {"set's operating threshold (default 0.5)"}
    metrics = _csv(downloads["Metrics with 95% CIs (CSV)"][0])
    assert {"threshold", "operating_point", "computable", "note"} <= set(metrics.columns)
    assert set(metrics.loc[metrics["task"] == "dlm1", "threshold"]) == {own}
    lipoma = metrics[metrics["task"] == "lipoma"]
    assert set(lipoma["note"]) == {"no case of a known benign subtype in this cohort"}
    assert not lipoma["computable"].astype(str).eq("True").any()

    # Move the slider: every call and every file follows it and says it was chosen on the page.
    at.slider[0].set_value(0.0).run()
    _no_errors(at)
    preds = _csv(downloads["Predictions (CSV)"][0])
    assert preds["pred_malignant"].eq(1).all() and preds["diagnosis"].eq("malignant").all()
    assert set(preds["threshold"]) == {0.0}
    assert set(preds["operating_point"]) == {"chosen on this page (the set's own is 0.500)"}
    metrics = _csv(downloads["Metrics with 95% CIs (CSV)"][0])
    dlm1 = metrics[metrics["task"] == "dlm1"]
    assert set(dlm1["threshold"]) == {0.0} and set(dlm1["operating_point"]) == {
        "chosen on this page (the set's own is 0.500)"
    }
    assert set(dlm1.loc[dlm1["metric"] == "sensitivity", "value"]) == {"1.0"}  # read as text: keep_default_na
    assert set(metrics.loc[metrics["task"] == "lipoma", "operating_point"]) == {
        "set's operating threshold (default 0.5)"
    }
    table2 = downloads["Table 2 (CSV)"][0]
    assert "Operating point,chosen on this page" in table2 and "Threshold,0.000" in table2
    assert downloads["Predictions (CSV)"][1].endswith("_t0.000.csv")
    t3 = _csv(downloads["Table 3 (CSV)"][0])
    assert {"Threshold", "Operating point", "Note"} <= set(t3.columns)


# --------------------------------------------------------------------------- cache: revisits and the slider


def test_a_second_visit_shows_the_stored_evaluation_without_running_a_model(app_env, benign_malignant_csv, monkeypatch):
    from softmass_core.inference.cascade import Cascade

    at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()  # evaluated now or by an earlier test: stored on disk either way
    _no_errors(at)
    first = _table2(at)

    def no_models(*args, **kwargs):
        raise AssertionError("a model ran on a revisit")

    monkeypatch.setattr(Cascade, "probabilities", no_models)
    again = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    _no_errors(again)  # no button pressed: the stored evaluation is shown at once
    assert _table2(again).equals(first)
    assert any("Read from the evaluation cache" in c.value for c in again.caption)
    again.button(key="cohort.run").click().run()  # pressing Evaluate is instant too
    _no_errors(again)


def test_moving_the_slider_back_reuses_the_metrics(app_env, benign_malignant_csv, monkeypatch):
    from ui import cohort_data

    at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()
    calls = []
    real = cohort_data.metrics_at_threshold

    def counting(ev, threshold):
        calls.append(threshold)
        return real(ev, threshold)

    monkeypatch.setattr(cohort_data, "metrics_at_threshold", counting)
    for value in (0.123, 0.877, 0.123, 0.877):
        at.slider[0].set_value(value).run()
        _no_errors(at)
    assert calls == [0.123, 0.877]  # the second visit of each threshold is served from the cache


def test_the_sidebar_weight_set_is_the_one_evaluated(app_env, benign_malignant_csv):
    from ui.common import KEY_WEIGHTS

    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state[KEY_WEIGHTS] = str(app_env / "weights" / "tiny")
    at = _server_cohort(at.run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()
    assert at.subheader[0].value.startswith("tiny v")
    at.session_state[KEY_WEIGHTS] = str(app_env / "weights" / "tiny-dlm1")
    at.run()
    _no_errors(at)
    # The sidebar now picks tiny-dlm1: the page never shows tiny's results as if they were its own.
    assert not at.subheader or at.subheader[0].value.startswith("tiny-dlm1 v")
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    assert at.subheader[0].value.startswith("tiny-dlm1 v")
    assert not [df for df in at.dataframe if "Subtype" in df.value.columns]  # DLM-1 only: no Table 3
    # Back to tiny in the sidebar: its stored evaluation comes back without pressing Evaluate.
    at.session_state[KEY_WEIGHTS] = str(app_env / "weights" / "tiny")
    at.run()
    _no_errors(at)
    assert at.subheader[0].value.startswith("tiny v")


def test_decision_curve_is_drawn_and_its_csv_matches_the_predictions(app_env, benign_malignant_csv, downloads):
    at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
    at.button(key="cohort.run").click().run()
    _no_errors(at)
    assert any(e.label.startswith("Decision curve of DLM-1") for e in at.expander)
    curve = _csv(downloads["Decision curve (CSV)"][0]).astype({"threshold": float, "net_benefit": float})
    preds = _csv(downloads["Predictions (CSV)"][0])
    cohort = curve["cohort"].iloc[0]
    assert len(curve) == 99 and set(curve["cohort"]) == {cohort}
    mine = preds[preds["cohort"] == cohort]
    p, sick = mine["p_malignant"].astype(float), mine["y_malignant"].astype(int) == 1
    at_half = curve.loc[curve["threshold"] == 0.5, "net_benefit"].item()
    called = p >= 0.5
    assert at_half == pytest.approx(((called & sick).sum() - (called & ~sick).sum()) / len(mine), abs=1e-9)


# --------------------------------------------------------------------------- operating points (issue 17)


def test_operating_point_chooser_moves_metrics_downloads_and_marks_the_roc(app_env, benign_malignant_csv, downloads):
    """The tiny set gets rule-out/rule-in points; choosing one moves Table 2, the downloads and the ROC marks."""
    from softmass_core.weights.modelcard import update_manifest

    folder = app_env / "weights" / "tiny"
    before = (folder / "manifest.json").read_text()

    def edit(m):
        m["models"]["dlm1"]["operating_points"] = {
            name: {"threshold": t, "sensitivity": 0.9, "specificity": 0.8}
            for name, t in zip(("rule_out", "balanced", "rule_in"), (0.0, 0.5, 1.0))
        }

    try:
        at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
        at.button(key="cohort.run").click().run()
        _no_errors(at)
        radio = next(r for r in at.radio if r.label == "Operating point")
        assert radio.options == ["Balanced (0.500)", "Custom"] and radio.value == "balanced"
        assert any("Only the balanced point" in c.value for c in at.caption)
        update_manifest(folder, edit)
        at = _server_cohort(AppTest.from_file(PAGE, default_timeout=TIMEOUT).run(), benign_malignant_csv)
        at.button(key="cohort.run").click().run()
        _no_errors(at)
        radio = next(r for r in at.radio if r.label == "Operating point")
        assert radio.options == ["Rule-out (0.000)", "Balanced (0.500)", "Rule-in (1.000)", "Custom"]
        assert any("Rule-in" in c and "Rule-out" in c for c in _charts(at))  # the ROC marks all three points
        radio.set_value("rule_out").run()
        _no_errors(at)
        assert at.slider[0].value == 0.0  # the slider follows the point
        preds = _csv(downloads["Predictions (CSV)"][0])
        assert preds["pred_malignant"].eq(1).all() and set(preds["threshold"]) == {0.0}
        assert preds["operating_point"].str.startswith("rule_out operating point").all()
        at.slider[0].set_value(0.3).run()  # moving the slider makes it a custom threshold
        assert next(r for r in at.radio if r.label == "Operating point").value == "custom"
        assert set(_csv(downloads["Predictions (CSV)"][0])["operating_point"]) == {
            "chosen on this page (the set's own is 0.500)"
        }
    finally:
        (folder / "manifest.json").write_text(before)
