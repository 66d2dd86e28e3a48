"""A Grad-CAM overlay as the app shows it: ROI box, colour bar and a caption saying what it explains."""

from __future__ import annotations

import numpy as np

from softmass_core.inference.cam_display import cam_caption, with_colorbar
from softmass_core.inference.gradcam import CamResult, overlay_cam
from softmass_core.io.roi import draw_roi
from softmass_core.labels import model_name


def cam_figure(rgb: np.ndarray, cam: CamResult, *, alpha: float) -> np.ndarray:
    """The overlay of ``cam`` on ``rgb`` with the model's ROI drawn and the colour bar below."""
    return with_colorbar(draw_roi(overlay_cam(rgb, cam.cam_roi, cam.roi, alpha=alpha), cam.roi))


def result_caption(result, modality: str, cam: CamResult) -> str:
    """:func:`cam_caption` with this image's probability of the explained (positive) class from the cascade's result."""
    p = (result.per_image.get(modality) or {}).get(cam.model_id)
    return cam_caption(model_name(cam.model_id), cam.target_label, p)
