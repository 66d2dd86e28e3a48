"""Training data: a cohort's ROI crops prepared in memory, per-task targets, and batch augmentation.

Each case contributes its grayscale and its CDFI image as two samples (the
paper's models take one image at a time); :class:`ImageTable` keeps which
case and which modality every image came from, so case scores can be fused
the way the cascade fuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from softmass_core.errors import SoftmassError
from softmass_core.io.images import load_image
from softmass_core.io.roi import prepare
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS, SUBTYPES
from softmass_core.training.overlays import draw_marks
from softmass_core.weights.manifest import InputSpec

if TYPE_CHECKING:
    from softmass_core.training.train import TrainConfig


@dataclass
class ImageTable:
    """Prepared images of a set of cases, in memory."""

    x: torch.Tensor  # (N, 3, H, W) float16, normalised
    case_index: np.ndarray  # (N,) row index into ``labels``
    modalities: list[str]  # (N,) "gray" or "cdfi"
    labels: list[str]  # per case
    case_ids: list[str]


def load_images(rows: Sequence, spec: InputSpec, log: Callable[[str], None]) -> ImageTable:
    """Every image of ``rows`` (cohort rows), cropped to its ROI and prepared as ``spec`` says."""
    arrays, case_index, modalities = [], [], []
    for i, row in enumerate(rows):
        for m in MODALITIES:
            if m in row.paths:
                img = load_image(row.paths[m])
                arrays.append(prepare(img.rgb, row.rois.get(m), spec).array.astype(np.float16))
                case_index.append(i)
                modalities.append(m)
    if not arrays:
        raise SoftmassError("No images to train on.")
    log(f"loaded {len(arrays)} images of {len(rows)} cases")
    return ImageTable(
        x=torch.from_numpy(np.stack(arrays)),
        case_index=np.asarray(case_index),
        modalities=modalities,
        labels=[r.label for r in rows],
        case_ids=[r.case_id for r in rows],
    )


def task_targets(labels: Sequence[str], task: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, mask) per case for ``task`` ("dlm1" or "smK"); mask = case counts for the task."""
    labels = list(labels)
    if task == DLM1:
        y = np.array([lab == MALIGNANT for lab in labels], dtype=np.float32)
        return y, np.ones(len(labels), dtype=bool)
    subtype = SUBMODEL_IDS[task]
    y = np.array([lab == subtype for lab in labels], dtype=np.float32)
    mask = np.array([lab in SUBTYPES for lab in labels], dtype=bool)
    return y, mask


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random scaling, rotation, random crop (shift), horizontal flip and intensity jitter on a batch.

    ``cfg.scale_range``: zoom factors drawn uniformly (with the shift, this
    moves the ROI's margin); ``cfg.rotation``: largest rotation in degrees;
    ``cfg.shift``: largest translation as a fraction of the side;
    ``cfg.intensity``: largest contrast and brightness change.  Optional
    ones, off at 0: ``cfg.gamma`` (largest |log gamma| of a gamma curve),
    ``cfg.speckle`` (standard deviation of multiplicative noise) and
    ``cfg.overlay_p`` (share of images given synthetic caliper and text
    marks, :mod:`softmass_core.training.overlays`); these three work on
    intensities, so they undo the normalisation (``cfg.mean``/``cfg.std``)
    and redo it.  The random draws come from ``gen`` on the CPU whatever
    ``x``'s device, so a seed gives the same augmentation on a GPU as on the
    CPU; options at 0 draw nothing, so older recipes keep their streams.
    """
    n = x.shape[0]
    lo, hi = cfg.scale_range
    scale = torch.empty(n).uniform_(lo, hi, generator=gen)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx = torch.empty(n).uniform_(-cfg.shift, cfg.shift, generator=gen) * 2
    ty = torch.empty(n).uniform_(-cfg.shift, cfg.shift, generator=gen) * 2
    theta = torch.zeros(n, 2, 3)
    if cfg.rotation > 0:
        angle = torch.deg2rad(torch.empty(n).uniform_(-cfg.rotation, cfg.rotation, generator=gen))
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta[:, 0, 0], theta[:, 0, 1] = flip * cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = flip * sin, cos
    else:
        theta[:, 0, 0] = flip / scale
        theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.gamma > 0 or cfg.speckle > 0 or cfg.overlay_p > 0:
        out = _intensity_ops(out, cfg, gen)
    contrast = 1.0 + torch.empty(n, 1, 1, 1).uniform_(-cfg.intensity, cfg.intensity, generator=gen)
    bright = torch.empty(n, 1, 1, 1).uniform_(-cfg.intensity, cfg.intensity, generator=gen)
    return out * contrast.to(x.device) + bright.to(x.device)


def _intensity_ops(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Gamma, speckle and overlay marks on [0, 1] intensities, between un- and re-normalising."""
    mean = torch.tensor(cfg.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, -1, 1, 1)
    unit = (x * std + mean).clamp(0.0, 1.0)
    n = x.shape[0]
    if cfg.gamma > 0:
        g = torch.exp(torch.empty(n, 1, 1, 1).uniform_(-cfg.gamma, cfg.gamma, generator=gen)).to(x.device)
        unit = unit.clamp_min(1e-6) ** g
    if cfg.speckle > 0:
        noise = torch.randn(n, 1, *x.shape[2:], generator=gen).to(x.device) * cfg.speckle
        unit = (unit * (1.0 + noise)).clamp(0.0, 1.0)
    if cfg.overlay_p > 0:
        unit = draw_marks(unit, cfg.overlay_p, gen)
    return (unit - mean) / std


def autocast(device: torch.device):
    """bf16 autocast on a CUDA device (about twice the speed); plain fp32 on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
