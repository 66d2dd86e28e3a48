"""Grad-CAM comparison: the reader marks where they looked; the page grades the overlap (paper, Table 4)."""

from __future__ import annotations

import io

import streamlit as st

from softmass_core.focus import (
    GRADE_TITLES,
    GRADES,
    cam_region,
    compare_focus,
    reader_mask_from_paths,
    summarise_grades,
    summarise_grades_by_model,
)
from softmass_core.gradcam import overlay_cam
from softmass_core.labels import COHORT_LABELS, DLM1, MODALITY_NAMES, MODEL_IDS, display_name, model_name
from softmass_core.roi import draw_roi
from softmass_core.store import GradeExistsError
from ui import reader_view as view
from ui.canvas import fit_canvas, shapes_to_image
from ui.case_view import (
    CANVAS_MAX_WIDTH,
    case_cams,
    case_input,
    draw_canvas,
    guarded_call,
    overlap_picture,
    roi_editor,
    run_case,
)
from ui.common import DISCLAIMER, active_weight_set, guarded, reader_store

PREFIX = "focus"
MODES = {"Box": "rect", "Polygon": "polygon", "Free-hand": "freedraw"}
SHAPE_NAMES = {"rect": "box", "polygon": "polygon", "freedraw": "free-hand"}

st.title("Grad-CAM comparison")
st.caption(
    "Mark the area you looked at to reach your diagnosis; the page grades how it coincides with the model's "
    "area of most concern (Grad-CAM at or above half its maximum), as in Table 4 of Long et al. 2023. " + DISCLAIMER
)
ws = active_weight_set()

case = case_input(PREFIX)
if case is None:
    st.stop()

s1, s2, s3 = st.columns(3)
with s1:
    modality = st.radio(
        "Image", list(case.images), format_func=MODALITY_NAMES.get, horizontal=True, key=f"{PREFIX}.modality"
    )
with s2:
    model_id = st.selectbox("Model", list(ws.manifest.models), format_func=model_name, key=f"{PREFIX}.model")
with s3:
    if case.label is not None:
        lesion_type = case.label
        st.markdown(f"**Lesion type:** {display_name(lesion_type)} (known for this demo case)")
    else:
        lesion_type = st.selectbox(
            "Lesion type (pathology)", list(COHORT_LABELS), format_func=display_name, key=f"{PREFIX}.lesion"
        )
image = case.images[modality]

with st.expander("ROI the model sees (as on the Case page)"):
    rois = {m: roi_editor(PREFIX, case, img, canvas=False) for m, img in case.images.items()}
key, result = guarded_call(run_case, ws, case, rois)
cam = guarded_call(case_cams, ws, key, result, model_id)[modality]
full_cam = cam.full_image(image.width, image.height)

left, right = st.columns(2)
with left:
    st.subheader("Your area")
    mode_name = st.radio(
        "Draw as",
        list(MODES),
        horizontal=True,
        key=f"{PREFIX}.mode",
        help="Box: drag. Polygon: click the corners, then click the first one to close it. "
        "Free-hand: draw a closed outline. Several shapes count as one area.",
    )
    mode = MODES[mode_name]
    geometry = fit_canvas(image.width, image.height, CANVAS_MAX_WIDTH)
    clear_key = f"{PREFIX}.clear.{case.case_id}.{modality}"
    drawing = draw_canvas(
        f"{PREFIX}.canvas.{case.case_id}.{modality}.{mode}.{st.session_state.get(clear_key, 0)}",
        image.rgb,
        geometry,
        drawing_mode=mode,
        stroke="#00c800",
        fill="rgba(0, 200, 0, 0.15)",
    )
    if st.button("Clear drawing", key=f"{PREFIX}.clear_btn"):
        st.session_state[clear_key] = st.session_state.get(clear_key, 0) + 1
        st.rerun()
    st.caption("No canvas, or rather type it? Give a box in image pixels (used when nothing is drawn):")
    box_cols = st.columns(4)
    box = [
        col.number_input(
            name,
            min_value=0,
            max_value=limit,
            value=0,
            step=1,
            key=f"{PREFIX}.box.{case.case_id}.{modality}.{name.split()[-1]}",
        )
        for col, name, limit in zip(
            box_cols,
            ("left x0", "top y0", "right x1", "bottom y1"),
            (image.width, image.height, image.width, image.height),
            strict=True,
        )
    ]
with right:
    st.subheader(f"Grad-CAM of {model_name(model_id)}")
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key=f"{PREFIX}.alpha")
    with guarded():
        st.image(
            draw_roi(overlay_cam(image.rgb, cam.cam_roi, cam.roi, alpha=alpha), cam.roi),
            caption=f"{MODALITY_NAMES[modality]}, model ROI in yellow",
            width="stretch",
        )

polygons, boxes = shapes_to_image(drawing, geometry)
shape = SHAPE_NAMES[mode]
if not polygons and not boxes and box[2] > box[0] and box[3] > box[1]:
    boxes, shape = [(box[0], box[1], box[2], box[3])], "box (typed)"
comparison = None
if not polygons and not boxes:
    st.info("Draw the area you looked at on the image (or type a box) to see the grade.")
else:
    threshold = 0.5
    with st.expander("How the grade is computed"):
        st.markdown(
            "Model area = pixels where the Grad-CAM is at least the threshold (after scaling it to 0..1). "
            "Percent = share of **your** area inside the model area, rounded: 100 complete, 50-99 most, "
            "1-49 partial, 0 not at all."
        )
        threshold = st.slider("Grad-CAM threshold", 0.1, 0.9, 0.5, 0.05, key=f"{PREFIX}.threshold")
    with guarded():
        mask = reader_mask_from_paths(polygons, image.height, image.width, boxes=boxes)
        comparison = compare_focus(mask, full_cam, threshold=threshold)
        model_area = cam_region(full_cam, threshold=threshold)

    st.divider()
    g1, g2 = st.columns([1, 1])
    with g1:
        st.subheader(f"Overlap: {GRADE_TITLES[comparison.grade]}")
        m1, m2, m3 = st.columns(3)
        m1.metric(
            "Yours in model's", f"{comparison.percent}%", help="Share of your area inside the model's area: the grade."
        )
        m2.metric(
            "Model's in yours", f"{100 * comparison.cam_coverage:.0f}%", help="Share of the model's area inside yours."
        )
        m3.metric("IoU", f"{comparison.iou:.2f}", help="Intersection over union of the two areas.")
        st.caption(
            f"Your area {comparison.reader_pixels} px, model area {comparison.cam_pixels} px "
            f"(threshold {comparison.threshold:.2f}); drawn as {shape}."
        )
    with g2:
        st.image(
            overlap_picture(image.rgb, mask, model_area),
            caption="Green: only yours; red: only the model's; yellow: both",
            width="stretch",
        )

# ------------------------------------------------------------------ record and summary
st.divider()
st.header("Record and summarise")
store = reader_store()
ws_tag = f"{ws.id} v{ws.version}"

reader_id = st.session_state.get(view.KEY_READER_ID)
if reader_id is None:
    st.markdown("Identify yourself to record grades (the same name and PIN as in the reader study).")
    view.identify(store, PREFIX)
else:
    who_col, switch_col = st.columns([4, 1])
    who_col.markdown(f"Recording as **{view.reader_name() or '?'}**.")
    if switch_col.button("Switch reader", key=f"{PREFIX}.switch"):
        view.forget_reader()
        st.rerun()
    view.show_new_pin(PREFIX)
replace = st.checkbox(
    "Replace my earlier grade",
    key=f"{PREFIX}.replace",
    help="One grade per reader, case and model of a weight set; tick to overwrite yours.",
)
missing = "Identify yourself" if reader_id is None else "Draw your area" if comparison is None else None
if st.button(
    "Record this grade",
    type="primary",
    disabled=missing is not None,
    key=f"{PREFIX}.record",
    help=f"{missing} first." if missing else f"Records the grade of {model_name(model_id)} of {ws_tag}.",
):
    assert comparison is not None and reader_id is not None
    recorded = False
    with guarded():
        try:
            store.record_focus_grade(
                int(reader_id),
                case.case_id,
                lesion_type=lesion_type,
                model=model_id,
                weight_set=ws_tag,
                grade=comparison.grade,
                reader_coverage=comparison.reader_coverage,
                iou=comparison.iou,
                shape=shape,
                replace=replace,
            )
            recorded = True
        except GradeExistsError:
            st.error(
                f"You already graded {model_name(model_id)} of {ws_tag} on this case. To change your grade, tick "
                "**Replace my earlier grade** and record it again."
            )
    if recorded:
        st.success(f"Recorded: {case.case_id}, {model_name(model_id)} of {ws_tag}, {GRADE_TITLES[comparison.grade]}.")

with guarded():
    grades = store.focus_grades()
if grades.empty:
    st.caption("No grades recorded yet.")
    st.stop()
NOT_RECORDED = ""  # grades made before the weight set was recorded
grades["weight_set"] = grades["weight_set"].fillna(NOT_RECORDED)
f1, f2, f3 = st.columns(3)
with f1:
    names = sorted(grades["reader_name"].unique())
    me = view.reader_name()
    who = st.selectbox("Reader", names, index=names.index(me) if me in names else 0, key=f"{PREFIX}.summary_reader")
mine = grades[grades["reader_name"] == who]
with f2:
    sets = sorted(set(mine["weight_set"]), key=lambda t: (t != ws_tag, t == NOT_RECORDED, t))
    set_filter = st.selectbox(
        "Weight set",
        sets,
        format_func=lambda t: t or "not recorded (graded by an older softmass)",
        key=f"{PREFIX}.summary_set",
        help="DLM-1 of one weight set is another model than DLM-1 of another: each set has its own Table 4.",
    )
mine = mine[mine["weight_set"] == set_filter]
with f3:
    models_present = [m for m in MODEL_IDS if m in set(mine["model"])] or [DLM1]
    model_filter = st.selectbox(
        "Model",
        ["all", *models_present],
        format_func=lambda m: "All models (one table each)" if m == "all" else model_name(m),
        key=f"{PREFIX}.summary_model",
    )
with guarded():
    if model_filter == "all":
        # One table per model: a case graded for two models is one case in each, never two in one total.
        table = summarise_grades_by_model(zip(mine["model"], mine["lesion_type"], mine["grade"], strict=True))
        shown = table[list(GRADES) + ["n"]].rename(columns=GRADE_TITLES).reset_index()
        shown["model"] = shown["model"].map(model_name)
        shown["lesion_type"] = [display_name(t) if t != "total" else "Total" for t in shown["lesion_type"]]
        shown = shown.rename(columns={"model": "Model", "lesion_type": "Lesion type"})
    else:
        table = summarise_grades(
            zip(*(mine.loc[mine["model"] == model_filter, c] for c in ("lesion_type", "grade")), strict=True)
        )
        shown = table[list(GRADES) + ["n"]].rename(columns=GRADE_TITLES)
        shown.index = [display_name(t) if t != "total" else "Total" for t in shown.index]
set_name = set_filter or "weight set not recorded"
st.subheader(f"Table 4 for {who} ({set_name})")
st.dataframe(shown, width="stretch", hide_index=model_filter == "all")

d1, d2 = st.columns(2)
summary_csv = table.reset_index()
summary_csv.insert(0, "weight_set", set_filter)
summary_csv.insert(0, "reader_name", who)
if model_filter != "all":
    summary_csv.insert(2, "model", model_filter)
d1.download_button(
    "Download this summary (CSV)",
    data=summary_csv.to_csv(index=False).encode(),
    file_name=f"focus-summary-{who}.csv".replace(" ", "_"),
    mime="text/csv",
    key=f"{PREFIX}.dl_summary",
)
buffer = io.StringIO()
with guarded():
    store.export_csv(buffer, table="focus")
d2.download_button(
    "Download every grade (CSV)",
    data=buffer.getvalue().encode(),
    file_name="focus-grades.csv",
    mime="text/csv",
    key=f"{PREFIX}.dl_all",
    help="Every reader's grades, with the weight set and model each grade is of.",
)
