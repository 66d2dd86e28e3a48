"""Occlusion maps: where hiding a patch of the input lowers a model's score most (captum's ``Occlusion``).

A finer check beside Grad-CAM.  Grad-CAM reads the last stage, whose grid is coarse (5 x 5 cells for
EfficientNet-Lite0 at 160 px), so its maximum often lands on a cell that touches the ROI's edge.  Occlusion asks
the network directly: a ``window`` x ``window`` patch of mid-grey (0 after normalisation) slides over the model
input with ``stride``; a pixel's value is the mean drop of log p(target) over the windows that cover it
(Zeiler & Fergus 2014).  Drops below zero (hiding the patch *raised* the score) count as 0, as Grad-CAM's ReLU
keeps only evidence for the class.

Each network's map is scaled to [0, 1] per image; with test-time views (``hflip``) the mirrored view's map is
mirrored back and averaged (:func:`tta.average_maps`); an ensemble's map is the mean of its members' maps, not
rescaled, exactly as :mod:`softmass_core.inference.gradcam` combines Grad-CAMs.  The result is a
:class:`~softmass_core.inference.gradcam.CamResult`, so every overlay and report path draws it unchanged.

Cost: ``((H - window) / stride + 1) * ((W - window) / stride + 1)`` forward passes per image, view and member
(81 for a 160 x 160 input), in batches of ``batch``; ``python -m softmass_core bench`` times it.
"""

from __future__ import annotations

import numpy as np
import torch

from softmass_core.errors import SoftmassError
from softmass_core.inference import tta
from softmass_core.inference.gradcam import CamResult, cam_results, explained_label
from softmass_core.io.roi import Prepared

#: Patch side and step in model-input pixels (the busi protocol's round 3b settings).
WINDOW = 32
STRIDE = 16


def n_windows(height: int, width: int, window: int = WINDOW, stride: int = STRIDE) -> int:
    """Forward passes per image, view and member (captum slides the window to the last full position)."""
    if window > min(height, width):
        raise SoftmassError(f"The occlusion window ({window} px) is larger than the model input ({width} x {height}).")
    return ((height - window) // stride + 1) * ((width - window) // stride + 1)


def occlusion_maps(
    weight_set,
    model_id: str,
    prepared: dict[str, Prepared],
    *,
    target_label: str | None = None,
    window: int = WINDOW,
    stride: int = STRIDE,
    batch: int = 32,
) -> dict[str, CamResult]:
    """Occlusion map of ``model_id`` for each prepared image ``{modality: Prepared}`` (module docstring)."""
    from captum.attr import Occlusion

    entry = weight_set.entry(model_id)
    label, target_index = explained_label(entry, model_id, target_label)
    modalities = list(prepared)
    if not modalities:
        raise SoftmassError("No image to explain.")
    members = weight_set.members(model_id)
    if not all(isinstance(m, torch.nn.Module) for m in members):
        raise SoftmassError(f"{model_id.upper()}: occlusion maps need the PyTorch model; this set serves ONNX.")
    views = weight_set.manifest.tta
    x = tta.expand(torch.from_numpy(np.stack([prepared[m].array for m in modalities])), views)
    channels, height, width = x.shape[1:]
    n_windows(height, width, window, stride)
    temperature = float(entry.temperature)

    member_maps = []
    for model in members:

        def log_p(inputs: torch.Tensor, model=model) -> torch.Tensor:
            return torch.log_softmax(model(inputs).float() / temperature, dim=1)[:, target_index]

        with torch.no_grad():
            drop = Occlusion(log_p).attribute(
                x,
                sliding_window_shapes=(channels, window, window),
                strides=(channels, stride, stride),
                baselines=0.0,
                perturbations_per_eval=batch,
                show_progress=False,
            )
        maps = np.clip(drop.sum(dim=1).numpy(), 0.0, None).astype(np.float32)
        member_maps.append(tta.average_maps(tta.scale_unit(maps), views))
    maps = member_maps[0] if len(member_maps) == 1 else np.mean(np.stack(member_maps), axis=0, dtype=np.float32)
    return cam_results(model_id, label, maps, prepared)
