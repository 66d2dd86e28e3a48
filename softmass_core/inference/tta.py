"""Test-time augmentation: score each image and its mirror, then average.

A weight set lists its views in the manifest (``"test_time_augmentation":
["hflip"]``); an empty list or no key means one plain pass.  The views are
stacked into one batch, ``[x, flip(x)]``, so a model runs once per batch; the
probabilities of the views are averaged per image, and Grad-CAM maps of the
mirrored view are mirrored back before they are averaged, the way
pytorch-grad-cam's ``aug_smooth`` treats a horizontal flip.

Only a horizontal flip is offered: training flips at random (see
:mod:`softmass_core.training.train`), so both views are in the training
distribution, whereas a vertical flip would put the skin below the mass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where tensors are made; manifests parse without it
    import torch

VIEWS = ("hflip",)


def check_views(views: Sequence[str], where: str = "test_time_augmentation") -> tuple[str, ...]:
    """Validate a list of view names; returns it as a tuple (ValueError on a bad one)."""
    out = tuple(views)
    for v in out:
        if v not in VIEWS:
            raise ValueError(f"{where}: unknown view {v!r}; use a list drawn from {list(VIEWS)} (or []).")
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: a view is listed twice in {list(out)}.")
    return out


def n_passes(views: Sequence[str]) -> int:
    """How many copies of each image a model sees (the plain view plus one per listed view)."""
    return 1 + len(views)


def expand(batch: torch.Tensor, views: Sequence[str]) -> torch.Tensor:
    """(N, C, H, W) -> (V*N, C, H, W): the plain batch followed by each view's batch."""
    import torch

    parts = [batch]
    for v in views:
        if v == "hflip":
            parts.append(torch.flip(batch, dims=[-1]))
    return torch.cat(parts) if len(parts) > 1 else batch


def average(values: np.ndarray, views: Sequence[str]) -> np.ndarray:
    """Mean over views of per-image values laid out as :func:`expand` made them."""
    v = n_passes(views)
    if v == 1:
        return values
    if values.shape[0] % v:
        raise ValueError(f"{values.shape[0]} values cannot be split into {v} views.")
    return values.reshape(v, values.shape[0] // v, *values.shape[1:]).mean(axis=0)


def average_maps(maps: np.ndarray, views: Sequence[str]) -> np.ndarray:
    """(V*N, h, w) maps in view order -> (N, h, w): mirror views undone, then averaged.

    Each image's mean map is min-max scaled back to [0, 1] (as a single CAM is).
    """
    v = n_passes(views)
    if v == 1:
        return maps
    if maps.shape[0] % v:
        raise ValueError(f"{maps.shape[0]} maps cannot be split into {v} views.")
    n = maps.shape[0] // v
    parts = [maps[:n]]
    for i, name in enumerate(views, start=1):
        part = maps[i * n : (i + 1) * n]
        if name == "hflip":
            part = part[..., ::-1]
        parts.append(part)
    return scale_unit(np.mean(parts, axis=0))


def scale_unit(maps: np.ndarray) -> np.ndarray:
    """(N, h, w) -> float32, each map min-max scaled to [0, 1]; a flat map becomes 0 everywhere."""
    lo = maps.min(axis=(-2, -1), keepdims=True)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    return ((maps - lo) / span).astype(np.float32)
