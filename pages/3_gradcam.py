"""Grad-CAM comparison: the reader marks where they looked; the page grades the overlap (paper, Table 4)."""

from __future__ import annotations

import streamlit as st

from softmass_core.inference.focus import (
    GRADE_TITLES,
    cam_region,
    compare_focus,
    reader_mask_from_paths,
)
from softmass_core.labels import COHORT_LABELS, display_name
from softmass_core.report import MODALITY_NAMES, model_name
from ui import focus_view
from ui.cam_view import cam_figure, result_caption
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
from ui.common import (
    DISCLAIMER,
    active_weight_set,
    guarded,
    reader_store,
    require_frame,
)

require_frame()

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
if ws.gradcam_unavailable(model_id):
    st.info(f"{model_name(model_id)}: {ws.gradcam_unavailable(model_id)}")
    st.stop()
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
            cam_figure(image.rgb, cam, alpha=alpha),
            caption=f"{MODALITY_NAMES[modality]}, model ROI in yellow. {result_caption(result, modality, cam)}",
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
focus_view.record_grade(store, PREFIX, case.case_id, lesion_type, model_id, ws_tag, comparison, shape)
focus_view.grade_summary(store, PREFIX, ws_tag)
