"""Case: upload or pick a case, set the ROIs, run the DLM cascade, see Grad-CAM, download a report."""

from __future__ import annotations

import streamlit as st

from softmass_core.io.roi import draw_roi
from softmass_core.labels import DLM1, MODALITY_NAMES, MODEL_NAMES, SUBMODEL_IDS, display_name, model_name
from softmass_core.report import GRADCAM_OPACITY, ReportImage, build_report
from ui import case_charts
from ui.cam_view import cam_figure, occlusion_panel, result_caption
from ui.case_view import (
    FUSION_HELP,
    TTA_HELP,
    case_cams,
    case_input,
    guarded_call,
    report_downloads,
    report_files,
    roi_editor,
    run_case,
    scoring_caption,
    truth_caption,
)
from ui.common import (
    DISCLAIMER,
    active_weight_set,
    guarded,
    require_frame,
    tta_text,
)
from ui.input_check_view import greyed_verdict, input_check_banner
from ui.operating_view import likelihood_chart, point_chooser, result_at_point, verdict_text

require_frame()

KEY_RUN_FOR = "softmass.case.run_for"  # case id the user pressed Run for
PREFIX = "case"

st.title("Case")
st.caption(DISCLAIMER)
ws = active_weight_set()

case = case_input(PREFIX)
if case is None:
    st.stop()

rois = {}
cols = st.columns(len(case.images))
for col, (modality, image) in zip(cols, case.images.items(), strict=True):
    with col:
        st.subheader(MODALITY_NAMES[modality])
        rois[modality] = roi_editor(PREFIX, case, image)


def _pressed_run(case_id: str) -> None:
    # A callback, not the button's return value: callbacks run before the script does, so a rerun that the
    # canvas asks for while the press's run is still drawing the ROI editors cannot swallow the press.
    st.session_state[KEY_RUN_FOR] = case_id


st.button("Run the DLM cascade", type="primary", key="case.run", on_click=_pressed_run, args=(case.case_id,))
if st.session_state.get(KEY_RUN_FOR) != case.case_id:
    st.info("Set the ROIs, then press **Run the DLM cascade**. Later ROI changes rerun it automatically.")
    st.stop()

key, result = guarded_call(run_case, ws, case, rois)

# ------------------------------------------------------------------ verdict
st.divider()
st.header("Result")
point = point_chooser(ws, "case.point", scope=key)  # a radio per run, starting at the last choice
key, result = guarded_call(result_at_point, ws, case, rois, point, key, result)
# The input check's warning comes above the verdict, which is greyed when the image is unlike the training images.
unlike = input_check_banner(result)
rule_only = " (the threshold rule alone, ignoring the range)" if result.verdict == "indeterminate" else ""
diagnosis = f"Diagnosis: **{display_name(result.diagnosis)}**{rule_only}"
for line in (verdict_text(result, ws), diagnosis):  # neutral text: no success/error box on a diagnosis
    if unlike:
        greyed_verdict(line)
    else:
        st.markdown(line)
st.altair_chart(likelihood_chart(result, ws), width="stretch")
c1, c2, c3 = st.columns(3)
c1.metric("DLM-1 P(malignant), case", f"{result.p_malignant:.3f}", help=FUSION_HELP)
c2.metric("Operating threshold", f"{result.threshold:.3f}")
c3.metric("Weight set", f"{result.weight_set_id} v{result.weight_set_version}")
st.caption(scoring_caption(result, tta_text(ws.manifest.tta)), help=f"{TTA_HELP}\n\n{FUSION_HELP}")
if case.label is not None:
    st.caption(f"Simulated case. {truth_caption(result.diagnosis, case.label)}.")

left, right = st.columns(2)
with left:
    st.subheader("DLM-1: benign or malignant")
    st.altair_chart(case_charts.dlm1_chart(result), width="stretch")
with right:
    st.subheader("DLM-2: sub-model scores")
    if result.sub_scores is not None:
        st.altair_chart(case_charts.sub_scores_chart(result), width="stretch")
    elif not ws.has_dlm2:
        st.info("This weight set has DLM-1 only: it says benign or malignant, never a subtype.")
    else:
        st.info("DLM-1 called the case malignant, so DLM-2 was not run.")

diagnosing = result.diagnosing_model  # the sub-model that named the subtype, if any
st.markdown(
    "**Path through the cascade:** "
    + " → ".join(f"**{MODEL_NAMES[m]}**" if m in (DLM1, diagnosing) else MODEL_NAMES[m] for m in result.models_run)
)
st.caption(result.stopped_because)
with st.expander("Every probability, per image and for the case"):
    st.dataframe(case_charts.per_image_table(result), width="stretch")

# ------------------------------------------------------------------ Grad-CAM
st.divider()
st.header("Grad-CAM")
models = [DLM1] + ([diagnosing] if diagnosing else [])
others = [sm for sm in SUBMODEL_IDS if ws.has_dlm2 and sm not in models]
g1, g2 = st.columns(2)
with g1:
    extra = ""
    if others:  # "" = none (a None option shows as an empty select, "Choose an option")
        extra = st.selectbox(
            "Also show a sub-model",
            ["", *others],
            format_func=lambda m: model_name(m) if m else "(none)",
            key="case.extra_cam",
        )
with g2:
    alpha = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="case.alpha")
if extra:
    models.append(extra)
st.caption(
    "Red = where each model's evidence for its class was strongest, inside the ROI (yellow box). "
    "DLM-1 explains 'malignant'; a sub-model explains its own subtype."
)

cams = {m: guarded_call(case_cams, ws, key, result, m) for m in models}
for modality, image in case.images.items():
    st.subheader(MODALITY_NAMES[modality])
    roi = result.rois[modality]
    row = st.columns(1 + len(models))
    row[0].image(draw_roi(image.rgb, roi), caption="Image and ROI", width="stretch")
    for col, m in zip(row[1:], models, strict=True):
        cam = cams[m].get(modality)
        if cam is None:  # a model Grad-CAM cannot explain (an ONNX graph)
            col.info(f"{model_name(m)}: {ws.gradcam_unavailable(m)}")
            continue
        with guarded():
            over = cam_figure(image.rgb, cam, alpha=alpha)
        col.image(over, caption=f"Grad-CAM {model_name(m)}. {result_caption(result, modality, cam)}", width="stretch")

occ = occlusion_panel(ws, key, result, case, alpha=alpha)  # {} unless the user asks for it

# ------------------------------------------------------------------ report
st.divider()
st.header("Case report")
files = report_files(
    key,
    models + (["occlusion"] if occ else []),
    lambda: build_report(
        result,
        [
            ReportImage(
                modality,
                image.rgb,
                result.rois[modality],
                image.info,
                {m: cams[m][modality].cam_roi for m in models if modality in cams[m]},
                {DLM1: occ[modality].cam_roi} if modality in occ else {},
            )
            for modality, image in case.images.items()
        ],
        case_name=case.case_id,
    ),
)
st.caption(
    "The report holds the images, ROIs, Grad-CAM overlays (and the occlusion map when shown), probabilities, "
    "diagnosis, cascade path and weight set. "
    f"Its Grad-CAM panels are drawn at a fixed {GRADCAM_OPACITY:.0%} opacity, whatever the slider above shows, "
    "so that every report shows its heatmaps the same way."
)
report_downloads(case.case_id, files)
