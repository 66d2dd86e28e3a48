"""Heatmaps as the app shows them: Grad-CAM overlays (ROI box, colour bar, a caption saying what they explain) and
the Case page's on-demand occlusion map."""

from __future__ import annotations

import numpy as np
import streamlit as st

from softmass_core.inference import tta
from softmass_core.inference.cam_display import cam_caption, with_colorbar
from softmass_core.inference.cascade import CascadeResult
from softmass_core.inference.gradcam import CamResult, overlay_cam
from softmass_core.inference.occlusion import WINDOW, n_windows, occlusion_maps
from softmass_core.io.roi import draw_roi
from softmass_core.labels import DLM1, MODALITY_NAMES, model_name
from softmass_core.weights.weight_set import WeightSet
from ui.case_view import CaseInput, guarded_call, session_maps
from ui.common import guarded


def cam_figure(rgb: np.ndarray, cam: CamResult, *, alpha: float) -> np.ndarray:
    """The overlay of ``cam`` on ``rgb`` with the model's ROI drawn and the colour bar below."""
    return with_colorbar(draw_roi(overlay_cam(rgb, cam.cam_roi, cam.roi, alpha=alpha), cam.roi))


def result_caption(result, modality: str, cam: CamResult) -> str:
    """:func:`cam_caption` with this image's probability of the explained (positive) class from the cascade's result."""
    p = (result.per_image.get(modality) or {}).get(cam.model_id)
    return cam_caption(model_name(cam.model_id), cam.target_label, p)


OCCLUSION_HELP = (
    "Grad-CAM reads the network's last stage, a coarse grid (5 x 5 cells for the busi set), so its hot spot often "
    "lands on a cell at the ROI's edge. The occlusion map asks the network directly: a 32 px patch of mid-grey "
    "slides over the model's input, and each pixel shows how much hiding it lowered log P(malignant), averaged "
    "over the patches that cover it. On BUSI lesion masks it sits on the lesion more often than Grad-CAM (the busi "
    "model card has the figures). It explains the same score; it is not a second opinion."
)


def case_occlusion(ws: WeightSet, key: str, result: CascadeResult) -> dict[str, CamResult]:
    """DLM-1's occlusion map for every image of a run, computed once per session (seconds: on demand only)."""
    doing = f"Computing DLM-1's occlusion map ({occlusion_passes(ws, result)} forward passes) ..."
    return session_maps(key, "occlusion:dlm1", doing, lambda: occlusion_maps(ws, DLM1, result.prepared))


def occlusion_panel(ws: WeightSet, key: str, result: CascadeResult, case: CaseInput, *, alpha: float) -> dict:
    """The toggle for DLM-1's occlusion map and, when on, the map of each image; returns them (``{}`` when off)."""
    if ws.gradcam_unavailable(DLM1) or min(ws.input_spec.width, ws.input_spec.height) < WINDOW:
        return {}  # an ONNX model, or an input smaller than the occlusion window: nothing to offer
    if not st.toggle(
        f"Add DLM-1's occlusion map (finer than Grad-CAM; {occlusion_passes(ws, result)} forward passes, seconds)",
        key="case.occlusion",
        help=OCCLUSION_HELP,
    ):
        return {}
    occ = guarded_call(case_occlusion, ws, key, result)
    row = st.columns(max(2, len(occ)))  # never wider than a Grad-CAM panel pair
    for col, (modality, cam) in zip(row, occ.items()):
        with guarded():
            over = cam_figure(case.images[modality].rgb, cam, alpha=alpha)
        col.image(
            over,
            caption=f"Occlusion DLM-1, {MODALITY_NAMES[modality]}. {result_caption(result, modality, cam)}",
            width="stretch",
        )
    return occ


def occlusion_passes(ws: WeightSet, result: CascadeResult) -> int:
    """Forward passes DLM-1's occlusion map costs for this run (windows x views x members x images)."""
    spec = ws.input_spec
    per_image = n_windows(spec.height, spec.width) * tta.n_passes(ws.manifest.tta) * len(ws.entry("dlm1").members)
    return per_image * len(result.prepared)
