"""Frame (app.py) and Case page (pages/1_case.py) under Streamlit's AppTest; canvas mapping unit tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from softmass_core.data.demo import demo_case
from softmass_core.inference.cascade import Cascade
from softmass_core.io.roi import Roi
from softmass_core.labels import display_name
from softmass_core.weights.weight_set import WeightSet
from ui.canvas import (
    CanvasGeometry,
    fit_canvas,
    last_rect,
    object_box,
    rect_to_image_roi,
    roi_to_rect,
    shape_points,
    shapes_to_image,
)

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120
KEY_WEIGHTS = "softmass.weights_dir"


@pytest.fixture(scope="module")
def weights_root(tiny_weights, tiny_weights_dlm1, tmp_path_factory) -> Path:
    """A weights folder holding a full tiny set and a DLM-1-only one."""
    root = tmp_path_factory.mktemp("weights_case")
    shutil.copytree(tiny_weights, root / "tiny")
    shutil.copytree(tiny_weights_dlm1, root / "tiny-dlm1")
    return root


@pytest.fixture
def env(weights_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(weights_root))
    monkeypatch.setenv("SOFTMASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTMASS_READER_DB", f"sqlite:///{tmp_path / 'reader.sqlite'}")
    st_config.set_option("client.showErrorDetails", "full")
    return weights_root


def texts(at: AppTest) -> list[str]:
    """Every visible text of the page (markdown, captions, alerts, metrics, headers)."""
    out = []
    for kind in ("markdown", "caption", "info", "success", "error", "warning", "title", "header", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [f"{m.label} {m.value}" for m in at.metric]
    out += [df.value.to_string() for df in at.dataframe]
    return out


# --------------------------------------------------------------------------- canvas mapping


def test_fit_canvas_keeps_aspect_and_never_enlarges():
    g = fit_canvas(1088, 704, 544)
    assert (g.width, g.height) == (544, 352) and g.sx == 2.0 and g.sy == 2.0
    small = fit_canvas(300, 200, 544)
    assert (small.width, small.height) == (300, 200)
    capped = fit_canvas(1000, 1000, 800, max_height=400)
    assert (capped.width, capped.height) == (400, 400)


def test_roi_round_trips_through_the_canvas_exactly():
    g = fit_canvas(544, 352, 400)  # scale 0.735...: fractional canvas coordinates
    for roi in (Roi(81, 44, 386, 313), Roi(0, 0, 544, 352), Roi(1, 2, 9, 11)):
        assert rect_to_image_roi(roi_to_rect(roi, g), g) == roi


def test_rect_scale_and_origin_are_honoured():
    g = CanvasGeometry(image_width=800, image_height=600, width=400, height=300)  # 2 image px per canvas px
    drawn = {"type": "Rect", "left": 10, "top": 20, "width": 50, "height": 40, "scaleX": 1, "scaleY": 1}
    assert rect_to_image_roi(drawn, g) == Roi(20, 40, 120, 120)
    resized = dict(drawn, scaleX=2.0, scaleY=0.5)  # the user dragged a handle
    assert rect_to_image_roi(resized, g) == Roi(20, 40, 220, 80)
    centred = dict(drawn, originX="center", originY="center")  # Fabric's default origin
    assert object_box(centred) == (-15.0, 0.0, 35.0, 40.0)
    assert rect_to_image_roi(centred, g) == Roi(0, 0, 70, 80)  # clipped to the image


def test_flipped_rect_and_clipping():
    g = CanvasGeometry(100, 100, 100, 100)
    flipped = {"type": "rect", "left": 50, "top": 50, "width": 20, "height": 10, "scaleX": -1, "scaleY": 1}
    assert rect_to_image_roi(flipped, g) == Roi(30, 50, 50, 60)
    outside = {"type": "rect", "left": 90, "top": 95, "width": 50, "height": 50}
    assert rect_to_image_roi(outside, g) == Roi(90, 95, 100, 100)


def test_last_rect_and_shapes():
    g = CanvasGeometry(200, 100, 100, 50)
    data = {
        "objects": [
            {"type": "rect", "left": 1, "top": 1, "width": 4, "height": 4},
            {"type": "path", "path": [["M", 10, 10], ["Q", 12, 10, 20, 10], ["L", 20, 20], ["L", 10, 20]]},
            {"type": "Rect", "left": 5, "top": 5, "width": 10, "height": 10},
            {"type": "circle", "left": 0, "top": 0, "radius": 3},
        ]
    }
    assert last_rect(data)["left"] == 5
    assert last_rect({"objects": []}) is None and last_rect(None) is None
    polygons, boxes = shapes_to_image(data, g)
    assert boxes == [(2, 2, 10, 10), (10, 10, 30, 30)]
    assert polygons == [[(20.0, 20.0), (40.0, 20.0), (40.0, 40.0), (20.0, 40.0)]]


def test_moved_path_follows_its_bounding_box():
    # A square path drawn at 10..20, then moved so that its box starts at (50, 60) and scaled x2.
    path = {
        "type": "path",
        "path": [["M", 10, 10], ["L", 20, 10], ["L", 20, 20], ["L", 10, 20]],
        "left": 50,
        "top": 60,
        "width": 10,
        "height": 10,
        "scaleX": 2,
        "scaleY": 2,
        "originX": "left",
        "originY": "top",
    }
    assert shape_points(path) == [(50.0, 60.0), (70.0, 60.0), (70.0, 80.0), (50.0, 80.0)]
    polygon = {
        "type": "polygon",
        "points": [{"x": 0, "y": 0}, {"x": 10, "y": 0}, {"x": 0, "y": 10}],
        "left": 0,
        "top": 0,
        "width": 10,
        "height": 10,
    }
    assert shape_points(polygon) == [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]


# --------------------------------------------------------------------------- frame


def test_app_frame_runs_with_sidebar_notice_and_weight_sets(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    side = [str(w.value) for w in at.sidebar.warning]
    assert any("not for clinical use" in w for w in side)
    picker = at.sidebar.selectbox(key=KEY_WEIGHTS)
    assert len(picker.options) == 2 and picker.value == str(env / "tiny")
    assert picker.options == ["tiny v0.0.1 (test weights)", "tiny-dlm1 v0.0.1 (test weights)"]
    assert any("DLM-1 + DLM-2" in str(c.value) for c in at.sidebar.caption)
    # The default page is the Case page.
    assert [t.value for t in at.title] == ["Case"]
    assert any(str(link.proto.label) == "Model card of this set" for link in at.sidebar.get("page_link"))

    # A session that picked the DLM-1-only set sees it named in the sidebar.  (A fresh AppTest:
    # under AppTest, a rerun of an st.navigation app drops the sidebar drawn before nav.run().)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[KEY_WEIGHTS] = str(env / "tiny-dlm1")
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox(key=KEY_WEIGHTS).value == str(env / "tiny-dlm1")
    assert any("DLM-1 only" in str(c.value) for c in at.sidebar.caption)


# --------------------------------------------------------------------------- case page


def roi_input(at: AppTest, base: str, name: str):
    """The ROI number input ``name`` (x0, y0, x1, y1) of ``base``: its key carries the ROI's version."""
    (found,) = [n for n in at.number_input if str(n.key).startswith(f"{base}.{name}.")]
    return found


def _case_page(env) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "1_case.py"), default_timeout=TIMEOUT)


def test_demo_case_run_shows_diagnosis_scores_and_path(env):
    at = _case_page(env).run()
    assert not at.exception
    at.selectbox(key="case.demo_case").set_value("demo-lipoma-1").run()
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception

    # The page shows what the cascade gives when run directly on the same case.
    case = demo_case("demo-lipoma-1")
    expected = Cascade(WeightSet.load(env / "tiny")).run(case.to_case_images())
    shown = texts(at)
    assert not [a for a in (*at.success, *at.error) if "Diagnosis" in str(a.value)]  # neutral text, no icons
    verdicts = [t for t in shown if t.startswith("Diagnosis: **")]
    assert verdicts == [f"Diagnosis: **{display_name(expected.diagnosis)}**"]
    assert any(t.startswith(f"**Verdict: {expected.verdict.capitalize()}**") for t in shown)
    assert any(f"DLM-1 P(malignant), case {expected.p_malignant:.3f}" == t for t in shown)
    assert any(expected.stopped_because == t for t in shown)
    assert any(t.startswith("**Path through the cascade:** **DLM-1**") for t in shown)
    charts = at.get("vega_lite_chart")
    assert len(charts) == (3 if expected.sub_scores is not None else 2)  # likelihood bar, DLM-1, DLM-2
    # The probability table lists every sub-model that ran.
    table = at.dataframe[0].value
    assert list(table.index)[-1].startswith("Case (mean")
    if expected.sub_scores is not None:
        assert [c for c in table.columns if c.startswith("SM-")] == [
            "SM-1 (lipoma)",
            "SM-2 (hemangioma)",
            "SM-3 (neurinoma)",
            "SM-4 (epidermal cyst)",
            "SM-5 (calcifying epithelioma)",
        ]
    # Grad-CAM images for both images and a report.
    assert len(at.get("image")) >= 4
    assert {b.label for b in at.get("download_button")} >= {"Download PDF", "Download PNG sheet", "Download JSON"}


def test_changing_roi_numbers_reruns_with_the_new_roi(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    case = demo_case("demo-malignant-1")
    key = "case.roi.demo-malignant-1.gray"
    assert roi_input(at, key, "x0").value == case.gray_roi.x0
    roi_input(at, key, "x0").set_value(case.gray_roi.x0 + 40).run()
    roi_input(at, key, "y1").set_value(case.gray_roi.y1 - 30).run()
    assert not at.exception

    new_roi = Roi(case.gray_roi.x0 + 40, case.gray_roi.y0, case.gray_roi.x1, case.gray_roi.y1 - 30)
    images = case.to_case_images()
    expected = Cascade(WeightSet.load(env / "tiny")).run(
        type(images)(gray=images.gray, cdfi=images.cdfi, gray_roi=new_roi, cdfi_roi=images.cdfi_roi)
    )
    assert expected.rois["gray"] == new_roi
    shown = texts(at)
    assert f"DLM-1 P(malignant), case {expected.p_malignant:.3f}" in shown
    # The canvas (or its stand-in under AppTest) agrees with the typed numbers.
    assert roi_input(at, key, "x0").value == new_roi.x0


def test_swapped_corners_are_normalised(env):
    at = _case_page(env).run()
    key = "case.roi.demo-malignant-1.gray"
    roi_input(at, key, "x1").set_value(10).run()  # now left of x0 = 81
    assert not at.exception
    assert (roi_input(at, key, "x0").value, roi_input(at, key, "x1").value) == (10, 81)


def test_an_impossible_roi_is_an_error_box_not_a_traceback(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    key = "case.roi.demo-malignant-1.gray"
    roi_input(at, key, "x0").set_value(200).run()
    roi_input(at, key, "x1").set_value(200).run()
    assert not at.exception
    assert any("zero area" in str(e.value) for e in at.error)


def test_dlm1_only_set_gives_benign_or_malignant_only(env):
    at = _case_page(env)
    at.session_state[KEY_WEIGHTS] = str(env / "tiny-dlm1")
    at.run()
    at.button(key="case.run").click().run()
    assert not at.exception
    shown = texts(at)
    assert any("DLM-1 only" in t for t in shown) or any("not run" in t for t in shown)
    verdicts = [t for t in shown if t.startswith("Diagnosis: **")]
    assert verdicts[0] in ("Diagnosis: **Malignant**", "Diagnosis: **Benign (subtype unknown)**")
    assert next(r for r in at.radio if r.label == "Operating point").options == ["Balanced (0.500)"]
    assert any("Only the balanced point" in t and "retune" in t for t in shown)


def test_uploaded_dicom_identifiers_never_appear(env):
    from conftest import synthetic_rgb
    from test_report import IDENTIFIERS, dicom_with_identifiers

    dicom = dicom_with_identifiers(synthetic_rgb(3)[:, :, 0])
    at = _case_page(env).run()
    at.radio(key="case.source").set_value("Upload images").run()
    at.file_uploader(key="case.upload.gray").set_value(("scan.dcm", dicom, "application/dicom")).run()
    assert not at.exception
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception
    shown = "\n".join(texts(at))
    assert "Diagnosis" in shown and "DICOM" in shown
    for ident in IDENTIFIERS:
        assert ident not in shown


def test_slider_and_extra_cam_reuse_the_cached_run(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    results = at.session_state["softmass.case.results"]
    assert len(results) == 1
    (run,) = results.values()
    n_images = len(at.get("image"))
    at.slider(key="case.alpha").set_value(0.8).run()
    options = at.selectbox(key="case.extra_cam").options
    assert options[0] == "(none)" and len(options) >= 4  # the sub-models not already shown
    at.selectbox(key="case.extra_cam").select_index(len(options) - 1).run()
    assert not at.exception
    after = at.session_state["softmass.case.results"]
    assert list(after.values()) == [run] and next(iter(after.values())) is run  # no new cascade run
    assert len(at.get("image")) == n_images + 2  # one more overlay per image


def test_multi_frame_dicom_offers_a_frame_picker_and_runs_the_chosen_frame(env):
    """Issue 15: a multi-frame DICOM (a colour cine) silently used frame 1."""
    import numpy as np
    from pydicom import uid
    from test_images import make_dicom

    from softmass_core.inference.cascade import CaseImages
    from softmass_core.io.images import load_image

    rows, cols, n_frames = 48, 64, 3
    frames = [synthetic_frame(seed, rows, cols) for seed in range(n_frames)]
    dicom = make_dicom(
        np.stack(frames).tobytes(),
        rows=rows,
        cols=cols,
        photometric="RGB",
        samples=3,
        frames=n_frames,
        ts=uid.ExplicitVRLittleEndian,
    )
    ws = WeightSet.load(env / "tiny")
    expected = [
        Cascade(ws).run(CaseImages(gray=load_image(dicom, frame=f).rgb, gray_roi=Roi(0, 0, cols, rows)))
        for f in range(n_frames)
    ]
    assert expected[0].p_malignant != expected[2].p_malignant  # the frames differ to the model

    at = _case_page(env).run()
    at.radio(key="case.source").set_value("Upload images").run()
    at.file_uploader(key="case.upload.gray").set_value(("cine.dcm", dicom, "application/dicom")).run()
    assert not at.exception, at.exception
    (picker,) = [s for s in at.slider if str(s.key).startswith("case.frame.gray.")]
    assert picker.value == 1 and picker.max == n_frames and picker.label == f"Frame (1 to {n_frames})"
    assert any(f"frame 1 of {n_frames}" in t for t in texts(at))
    at.button(key="case.run").click().run()
    assert f"DLM-1 P(malignant), case {expected[0].p_malignant:.3f}" in texts(at)

    base = [n.key for n in at.number_input if str(n.key).startswith("case.roi.")][0].rsplit(".", 2)[0]
    roi_input(at, base, "x0").set_value(4).run()  # an ROI the user set is kept across frames
    picker.set_value(3).run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert any(f"frame 3 of {n_frames}" in t for t in shown)
    third = Cascade(ws).run(CaseImages(gray=load_image(dicom, frame=2).rgb, gray_roi=Roi(4, 0, cols, rows)))
    assert f"DLM-1 P(malignant), case {third.p_malignant:.3f}" in shown
    assert roi_input(at, base, "x0").value == 4


def synthetic_frame(seed: int, rows: int, cols: int):
    """One colour frame (rows, cols, 3) uint8: frames of different seeds look different to a model."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (rows // 8, cols // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))


# --------------------------------------------------------------------------- result wording and report


def test_truth_caption_matches_on_benign_or_malignant_when_no_subtype_is_named():
    from ui.case_view import truth_caption

    # A DLM-1-only set (or DLM-2 not run) says benign: right for a lipoma.
    assert truth_caption("benign", "lipoma") == "Model: Benign (subtype unknown) | Truth: Lipoma (benign): match"
    assert truth_caption("malignant", "lipoma") == "Model: Malignant | Truth: Lipoma (benign): no match"
    assert truth_caption("malignant", "malignant") == "Model: Malignant | Truth: Malignant: match"
    assert truth_caption("benign", "malignant") == "Model: Benign (subtype unknown) | Truth: Malignant: no match"
    # A subtype named: matched exactly.
    assert truth_caption("lipoma", "lipoma") == "Model: Lipoma | Truth: Lipoma: match"
    assert truth_caption("lipoma", "hemangioma") == "Model: Lipoma | Truth: Hemangioma: no match (both benign)"
    assert truth_caption("lipoma", "malignant") == "Model: Lipoma | Truth: Malignant: no match"
    # A benign case of unknown subtype: benign is all there is to match.
    assert truth_caption("lipoma", "benign") == "Model: Lipoma | Truth: Benign (subtype unknown): match"


def test_dlm1_only_set_on_a_benign_demo_case_matches_on_benign_or_malignant(env):
    at = _case_page(env)
    at.session_state[KEY_WEIGHTS] = str(env / "tiny-dlm1")
    at.run()
    at.selectbox(key="case.demo_case").set_value("demo-lipoma-1").run()
    at.button(key="case.run").click().run()
    assert not at.exception
    result = Cascade(WeightSet.load(env / "tiny-dlm1")).run(demo_case("demo-lipoma-1").to_case_images())
    said = "Benign (subtype unknown)" if not result.malignant else "Malignant"
    verdict = "match" if not result.malignant else "no match"
    assert f"Simulated case. Model: {said} | Truth: Lipoma (benign): {verdict}." in texts(at)


def test_scoring_caption_says_views_and_fusion_with_plain_help(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    (caption,) = [c for c in at.caption if str(c.value).startswith("Test-time views:")]
    assert caption.value == (
        "Test-time views: one pass per image. Fusion rule: the case score is the mean of the 2 images' scores."
    )
    assert "mirror" in caption.proto.help and "'max' takes the more suspicious" in caption.proto.help
    (metric,) = [m for m in at.metric if m.label == "DLM-1 P(malignant), case"]
    assert "Fusion rule" in metric.proto.help


def test_extra_cam_select_shows_none_not_an_empty_choice(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    select = at.selectbox(key="case.extra_cam")
    assert select.value is not None and select.options[select.index] == "(none)"


def test_report_is_built_once_per_run_and_shown_models(env):
    """Issue 15: the report was rebuilt on every rerun (new bytes, new download address: 404s under load)."""
    import time

    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    assert not at.exception

    def downloads() -> dict[str, str]:
        return {b.label: b.proto.url for b in at.get("download_button")}

    def report_json() -> dict:
        import json

        (files,) = at.session_state["softmass.case.reports"].values()
        return json.loads(files.json)

    first, first_json = downloads(), report_json()
    assert all("/media/" in url for url in first.values()), first  # addresses named by the content
    time.sleep(1.1)  # the report's time stamp has whole seconds: a rebuilt report would differ now
    at.run()
    at.slider(key="case.alpha").set_value(0.8).run()  # the report's heatmaps have their own fixed opacity
    assert not at.exception
    assert downloads() == first and report_json() == first_json
    assert len(at.session_state["softmass.case.reports"]) == 1
    # Another sub-model's Grad-CAM shown: a new report with it.
    at.selectbox(key="case.extra_cam").select_index(1).run()
    (old_key, old), (new_key, new) = at.session_state["softmass.case.reports"].items()
    assert new_key[0] == old_key[0] and len(new_key[1]) == len(old_key[1]) + 1
    assert new.pdf != old.pdf and downloads()["Download PDF"] != first["Download PDF"]


def test_single_image_charts_show_the_image_once_and_have_room(tiny_weights):
    """Issue 15: with one image the DLM-1 chart's labels overlapped and the legend was cut."""
    from softmass_core.inference.cascade import CaseImages
    from ui import case_charts

    ws = WeightSet.load(tiny_weights)
    case = demo_case("demo-lipoma-1")
    one = Cascade(ws, threshold=1.0).run(CaseImages(gray=case.gray, gray_roi=case.gray_roi))  # benign: DLM-2 runs
    two = Cascade(ws, threshold=1.0).run(case.to_case_images())

    frame = case_charts.dlm1_frame(one)
    assert list(frame["source"]) == ["Grayscale B-mode (the case)"]
    assert list(case_charts.dlm1_frame(two)["source"]) == ["Grayscale B-mode", "CDFI", "Case (mean of images)"]
    # Room for the axes and every row: 32 px a row (two at least) on top of 64 px of axes.
    assert case_charts.dlm1_chart(one).to_dict()["height"] == 2 * 32 + 64
    assert case_charts.dlm1_chart(two).to_dict()["height"] == 3 * 32 + 64

    sub = case_charts.sub_scores_chart(one).to_dict()
    assert set(case_charts.sub_scores_frame(one)["source"]) == {"Grayscale B-mode (the case)"}
    assert sub["encoding"]["color"]["legend"] is None  # one source: no legend to cut
    sub2 = case_charts.sub_scores_chart(two).to_dict()
    assert sub2["encoding"]["color"]["legend"]["columns"] == 1  # one legend row per source
    assert sub2["height"] > sub["height"] >= 5 * 13 + 64


def test_roi_canvas_with_its_margin_fits_a_column_of_a_two_image_case():
    from ui.case_view import CANVAS_MARGIN, roi_canvas_geometry

    for size in ((544, 352), (512, 321), (1088, 704), (300, 200)):
        g = roi_canvas_geometry(*size)
        assert g.margin == CANVAS_MARGIN and g.canvas_width <= 452  # a column is 462 px on a 1400 px screen


def test_case_page_operating_point_chooser_and_indeterminate_wording(env, tmp_path, monkeypatch):
    """A set with operating points and an interval: the chooser re-decides the case; an indeterminate case says
    which threshold its range crosses and names the subtype 'if benign'."""
    from softmass_core.weights.modelcard import update_manifest

    case = demo_case("demo-lipoma-1")
    p = Cascade(WeightSet.load(env / "tiny")).run(case.to_case_images()).p_malignant
    folder = shutil.copytree(env / "tiny", tmp_path / "weights" / "pointed")

    def edit(m):
        d = m["models"]["dlm1"]
        d["threshold"] = p * 0.99  # balanced: just below the case's score, inside its range
        d["operating_points"] = {
            "rule_out": {"threshold": p / 3, "sensitivity": 0.96, "specificity": 0.4},
            "balanced": {"threshold": p * 0.99, "sensitivity": 0.8, "specificity": 0.8},
            "rule_in": {"threshold": min(1.0, p * 3 + 0.01), "sensitivity": 0.3, "specificity": 0.97},
        }
        d["interval"] = {"method": "test", "alpha": 0.1, "logit_halfwidth": 0.3, "validation_coverage": 0.9, "n": 30}

    update_manifest(folder, edit)
    monkeypatch.setenv("SOFTMASS_WEIGHTS", str(tmp_path / "weights"))
    at = _case_page(env)
    at.session_state[KEY_WEIGHTS] = str(folder)
    at.run()
    at.selectbox(key="case.demo_case").set_value("demo-lipoma-1").run()
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception
    assert not at.success and not [e for e in at.error if "Diagnosis" in str(e.value)]
    radio = next(r for r in at.radio if r.label == "Operating point")
    assert [o.split(" (")[0] for o in radio.options] == ["Rule-out", "Balanced", "Rule-in"]
    shown = texts(at)
    verdict = next(t for t in shown if t.startswith("**Verdict:"))
    assert verdict.startswith("**Verdict: Indeterminate**") and "crosses the balanced threshold" in verdict
    assert "subtype if benign:" in verdict  # DLM-2 ran on the indeterminate case
    assert any(t.startswith("Diagnosis: **Malignant**") and "threshold rule alone" in t for t in shown)
    radio.set_value("rule_in").run()
    assert not at.exception, at.exception
    verdict = next(t for t in texts(at) if t.startswith("**Verdict:"))
    assert verdict.startswith("**Verdict: Benign**") and "operating point rule_in" in verdict
    radio.set_value("rule_out").run()
    verdict = next(t for t in texts(at) if t.startswith("**Verdict:"))
    assert verdict.startswith("**Verdict: Malignant**")


def test_an_unreadable_upload_says_why_keeps_the_other_uploader_and_runs_nothing(env):
    """Found in Chromium: a text file as the B-mode image stopped the page, so the CDFI uploader vanished."""
    import io

    from conftest import synthetic_rgb
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(synthetic_rgb(5)).save(png, format="PNG")
    at = _case_page(env).run()
    at.radio(key="case.source").set_value("Upload images").run()
    at.file_uploader(key="case.upload.gray").set_value(("scan.png", b"hello, not a PNG", "image/png")).run()
    at.file_uploader(key="case.upload.cdfi").set_value(("doppler.png", png.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    errors = [str(e.value) for e in at.error]
    assert any("not an image" in e and "PNG" in e for e in errors), errors
    assert any("Replace or remove the Grayscale B-mode file" in str(i.value) for i in at.info)
    assert not [b for b in at.button if b.key == "case.run"]  # half a case never runs

    at.file_uploader(key="case.upload.gray").set_value(None).run()  # removed: the CDFI image alone is a case
    assert not at.exception, at.exception
    assert [b for b in at.button if b.key == "case.run"]


def test_occlusion_map_is_on_demand_cached_and_drawn_per_image(env):
    at = _case_page(env).run()
    at.button(key="case.run").click().run()
    assert not at.exception, at.exception
    n_images = len(at.get("image"))
    toggle = at.toggle(key="case.occlusion")
    # tiny set: 96 x 64 input, 15 windows of 32 px at stride 16, one view, one member, two images
    assert toggle.value is False and "30 forward passes" in toggle.label
    assert not any(k[1].startswith("occlusion") for k in at.session_state["softmass.case.cams"])
    toggle.set_value(True).run()
    assert not at.exception, at.exception
    images = at.get("image")
    assert len(images) == n_images + 2
    captions = [str(i.proto.imgs[0].caption) for i in images[-2:]]
    assert all(c.startswith("Occlusion DLM-1, ") and "Explains the malignant score" in c for c in captions), captions
    cached = [v for k, v in at.session_state["softmass.case.cams"].items() if k[1] == "occlusion:dlm1"]
    assert len(cached) == 1 and set(cached[0]) == {"gray", "cdfi"}
    at.slider(key="case.alpha").set_value(0.8).run()  # a rerun reuses the map
    again = [v for k, v in at.session_state["softmass.case.cams"].items() if k[1] == "occlusion:dlm1"]
    assert again[0] is cached[0]
    # The report written while the map is shown holds it.
    (files,) = [v for k, v in at.session_state["softmass.case.reports"].items() if "occlusion" in k[1]]
    report = json.loads(files.json)
    assert report["images"]["gray"]["occlusion_models"] == ["dlm1"]
    assert report["images"]["cdfi"]["occlusion_models"] == ["dlm1"]
