"""Grad-CAM heatmaps for DLM-1 and the DLM-2 sub-models (pytorch-grad-cam).

How it is computed: pytorch-grad-cam's ``GradCAM`` on the model's Grad-CAM
target stage (``stages.-1``, the last ConvNeXt stage, NCHW), with an explicit
target class (the model's positive class unless told otherwise).

Two departures from using pytorch-grad-cam on the whole model, both for the
dashboard's sake:

* **Shared models stay hook-free.**  pytorch-grad-cam registers hooks on the
  module it is given.  Models are cached once per weight set and serve every
  browser session, so CAMs run on a private deep copy of the network's tail
  (target stage .. head), built once per model, and one lock per tail
  serialises CAM computations.  Two threads asking for CAMs at once get
  exactly what each gets alone; plain inference never sees a hook.
* **The backward pass stops at the target stage.**  The trunk (stem and the
  stages before the target) runs without gradients (or is reused from the
  cascade's forward pass); only the tail runs with gradients enabled, and
  only activations (not weights) get gradients.

With test-time augmentation (``hflip`` in the manifest) the CAM of the
mirrored image is mirrored back and averaged with the plain one, so the map
explains the same averaged score the cascade reports.

An ensemble's CAM is the mean of its members' CAMs, each computed as above on
that member's own tail, exactly as the member alone would give it (min-max
scaled to [0, 1] per image, views averaged and scaled again) *before* the
mean; the mean is not rescaled.  Every member so weighs the same whatever
the size of its gradients, and the map keeps the members' agreement: a
region every member points at reaches 1, one that a single member of k
points at reaches at most 1/k.

The CAM comes back at model-input resolution (H, W) in [0, 1] (min-max per
image, as pytorch-grad-cam scales it; for an ensemble the mean of such maps)
and is mapped onto the ROI with :func:`softmass_core.io.roi.cam_to_roi`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from softmass_core.errors import SoftmassError
from softmass_core.inference import tta
from softmass_core.io.roi import Prepared, Roi, cam_to_roi, paste_roi_map
from softmass_core.weights.backbone import Tail, stage_index, trunk_forward

_TAILS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TAILS_LOCK = threading.Lock()


def _tail_for(model: torch.nn.Module, index: int) -> tuple[Tail, threading.Lock]:
    with _TAILS_LOCK:
        per_model = _TAILS.setdefault(model, {})
        if index not in per_model:
            per_model[index] = (Tail(model, index), threading.Lock())
        return per_model[index]


@dataclass
class CamResult:
    """One image's CAM: at model-input resolution and mapped onto its ROI."""

    model_id: str
    target_label: str
    cam_input: np.ndarray  # (H, W) float32 in [0, 1], model-input pixels
    cam_roi: np.ndarray  # (roi.height, roi.width) float32 in [0, 1]
    roi: Roi

    def full_image(self, width: int, height: int) -> np.ndarray:
        """(height, width) map: the ROI CAM pasted into an otherwise zero image."""
        return paste_roi_map(self.cam_roi, self.roi, width, height, fill=0.0)


def compute_cams(
    weight_set,
    model_id: str,
    prepared: dict[str, Prepared],
    *,
    target_label: str | None = None,
    features: torch.Tensor | Sequence[torch.Tensor] | None = None,
) -> dict[str, CamResult]:
    """Grad-CAM of ``model_id`` for each prepared image ``{modality: Prepared}``.

    ``target_label`` is one of the model's labels (default: its positive
    label).  ``features`` are the target stage's inputs from
    :meth:`Cascade.run(..., keep_features=True)` for the same images in
    modality order (one tensor per member for an ensemble); without them
    the trunk is run here (no gradients).  An ensemble's map is the mean of
    its members' maps, each scaled to [0, 1] as it would be alone, the mean
    not rescaled (module docstring).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    entry = weight_set.entry(model_id)
    reason = weight_set.gradcam_unavailable(model_id)
    if reason:
        raise SoftmassError(f"{model_id.upper()}: {reason}")
    label, target_index = explained_label(entry, model_id, target_label)
    members = weight_set.members(model_id)
    index = stage_index(members[0], entry.gradcam_target_layer)
    modalities = list(prepared)
    if not modalities:
        raise SoftmassError("No image to explain.")
    views = weight_set.manifest.tta
    if features is None:
        batch = tta.expand(torch.from_numpy(np.stack([prepared[m].array for m in modalities])), views)
        with torch.no_grad():
            features = tuple(trunk_forward(model, batch, index) for model in members)
    features = (features,) if isinstance(features, torch.Tensor) else tuple(features)
    n_rows = len(modalities) * tta.n_passes(views)
    if len(features) != len(members) or any(f.shape[0] != n_rows for f in features):
        raise SoftmassError("Cached features do not match the images; rerun the cascade.")
    height, width = prepared[modalities[0]].array.shape[1:]
    target = ClassifierOutputTarget(target_index)
    # Each network's map as it would be alone (views averaged, scaled to [0, 1]); an ensemble's is their mean.
    member_maps = [tta.average_maps(_member_cam(GradCAM, model, index, f, target), views)
                   for model, f in zip(members, features, strict=True)]  # fmt: skip
    maps = member_maps[0] if len(member_maps) == 1 else np.mean(np.stack(member_maps), axis=0, dtype=np.float32)
    maps_t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    maps_t = F.interpolate(maps_t, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return cam_results(model_id, label, maps_t.numpy(), prepared)


def explained_label(entry, model_id: str, target_label: str | None) -> tuple[str, int]:
    """``(label, index)`` of the class a map explains: ``target_label``, or the model's positive label."""
    label = target_label or entry.positive_label
    if label not in entry.labels:
        raise SoftmassError(f"Model {model_id} has labels {list(entry.labels)}; {label!r} is not one of them.")
    return label, entry.labels.index(label)


def cam_results(model_id: str, label: str, maps: np.ndarray, prepared: dict[str, Prepared]) -> dict[str, CamResult]:
    """``{modality: CamResult}`` from (N, H, W) model-input maps in ``prepared``'s order, each mapped onto its ROI."""
    out: dict[str, CamResult] = {}
    for i, (m, p) in enumerate(prepared.items()):
        cam_input = np.clip(maps[i], 0.0, 1.0).astype(np.float32)
        out[m] = CamResult(
            model_id=model_id,
            target_label=label,
            cam_input=cam_input,
            cam_roi=np.clip(cam_to_roi(cam_input, p), 0.0, 1.0).astype(np.float32),
            roi=p.roi,
        )
    return out


def _member_cam(grad_cam, model: torch.nn.Module, index: int, features: torch.Tensor, target) -> np.ndarray:
    """(rows, h, w) float32 maps in [0, 1] of one network from its target stage's inputs (its private tail)."""
    tail, lock = _tail_for(model, index)
    feats = features.detach().clone().requires_grad_(True)
    with lock, torch.enable_grad():
        # Not ``with GradCAM(...)``: its __exit__ swallows IndexError.  Release the hooks ourselves.
        cam = grad_cam(model=tail, target_layers=[tail.target_layer])
        try:
            maps = cam(input_tensor=feats, targets=[target] * feats.shape[0])
        finally:
            cam.activations_and_grads.release()
    return np.asarray(maps, dtype=np.float32)


def cams_for_result(weight_set, result, model_id: str, *, target_label: str | None = None) -> dict[str, CamResult]:
    """CAMs for a :class:`CascadeResult`, reusing its cached features when present.

    Empty for a model Grad-CAM cannot explain (``weight_set.gradcam_unavailable(model_id)`` says why).
    """
    if weight_set.gradcam_unavailable(model_id):
        return {}
    feats = result.features.get(model_id)
    return compute_cams(weight_set, model_id, result.prepared, target_label=target_label, features=feats)


# --------------------------------------------------------------------------- drawing

_JET_X = np.array([0.0, 0.125, 0.375, 0.625, 0.875, 1.0])
_JET_RGB = np.array(
    [
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 1.0],
        [0.0, 1.0, 1.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
    ]
)


def colormap_jet(values: np.ndarray) -> np.ndarray:
    """(…,) values in [0, 1] -> (…, 3) uint8 jet colours."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    rgb = np.stack([np.interp(v, _JET_X, _JET_RGB[:, c]) for c in range(3)], axis=-1)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay_cam(rgb: np.ndarray, cam_roi: np.ndarray, roi: Roi, *, alpha: float = 0.45) -> np.ndarray:
    """Blend a ROI heatmap onto the original (H, W, 3) uint8 image.

    Pixels outside the ROI are left untouched; inside, ``alpha`` sets the
    heatmap's opacity (0 = image only, 1 = heatmap only).
    """
    if not 0.0 <= alpha <= 1.0:
        raise SoftmassError(f"Overlay opacity must be in [0, 1], got {alpha}.")
    out = np.array(rgb, dtype=np.uint8, copy=True)
    region = out[roi.y0 : roi.y1, roi.x0 : roi.x1].astype(np.float32)
    if cam_roi.shape != region.shape[:2]:
        raise SoftmassError(f"CAM shape {cam_roi.shape} does not match the ROI {region.shape[:2]}.")
    heat = colormap_jet(cam_roi).astype(np.float32)
    out[roi.y0 : roi.y1, roi.x0 : roi.x1] = np.clip((1 - alpha) * region + alpha * heat, 0, 255).astype(np.uint8)
    return out
