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


def test_demo_cohort_table2_roc_threshold_and_compare(app_env):
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    at.select_slider(key="cohort.scale").set_value(0.05).run()
    at.button(key="cohort.run").click().run()
    _no_errors(at)

    # Labelled as simulated data, not soft-tissue clinical performance.
    assert any("simulated cases" in w.value and "not" in w.value for w in at.warning)

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

    # Compare with the DLM-1-only set B: overlaid ROC curves and the paired DeLong test.
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
