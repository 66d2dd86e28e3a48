"""Where a heatmap sits relative to a lesion mask: energy share, pointing game, border share.

Maps and masks are 2-D arrays of the same shape (e.g. a Grad-CAM mapped
onto the ROI crop and the lesion mask cropped to the same ROI).

* :func:`energy_inside`: ``sum(map * mask) / sum(map)`` (Wang et al. 2020's
  energy-based pointing game); a uniform map scores the mask's area share.
* :func:`pointing_hit`: the map's maximum lies inside the mask or within
  ``tolerance`` pixels of it (Zhang et al. 2018 use 15 px).
* :func:`border_share`: the share of the map's energy in the outer band of
  ``fraction`` of the width / height on every side.
* :func:`gaussian_blob`: a centred Gaussian baseline (sigma a quarter of each side).
"""

from __future__ import annotations

import numpy as np

from softmass_core.errors import MetricsError


def _check(heat: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(heat, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if h.ndim != 2 or h.shape != m.shape:
        raise MetricsError(f"A map and its mask must be 2-D of one shape; got {h.shape} and {m.shape}.")
    if np.any(h < 0) or not np.all(np.isfinite(h)):
        raise MetricsError("A heatmap must be finite and non-negative.")
    return h, m


def energy_inside(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total (non-negative) energy inside ``mask``; NaN for an all-zero map."""
    h, m = _check(heat, mask)
    total = h.sum()
    return float(h[m].sum() / total) if total > 0 else float("nan")


def pointing_hit(heat: np.ndarray, mask: np.ndarray, *, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum (first one in row-major order) is within ``tolerance`` pixels of ``mask``."""
    from scipy.ndimage import distance_transform_edt

    h, m = _check(heat, mask)
    if not m.any():
        raise MetricsError("The mask is empty: no lesion to point at.")
    y, x = np.unravel_index(int(np.argmax(h)), h.shape)
    if m[y, x]:
        return True
    return bool(distance_transform_edt(~m)[y, x] <= tolerance)


def border_share(heat: np.ndarray, *, fraction: float = 0.1) -> float:
    """Share of the map's energy in the outer ``fraction`` of each side (a uniform map: ``1 - (1-2f)^2``)."""
    h = np.asarray(heat, dtype=np.float64)
    rows, cols = h.shape
    dy, dx = max(1, round(rows * fraction)), max(1, round(cols * fraction))
    inner = h[dy : rows - dy, dx : cols - dx].sum()
    total = h.sum()
    return float((total - inner) / total) if total > 0 else float("nan")


def gaussian_blob(height: int, width: int, *, sigma_fraction: float = 0.25) -> np.ndarray:
    """(height, width) centred Gaussian, peak 1, sigma ``sigma_fraction`` of each side."""
    y = (np.arange(height) + 0.5 - height / 2) / (sigma_fraction * height)
    x = (np.arange(width) + 0.5 - width / 2) / (sigma_fraction * width)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
