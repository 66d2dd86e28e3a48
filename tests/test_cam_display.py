"""Grad-CAM honesty: colour bar, caption wording, and the localisation measures."""

from __future__ import annotations

import numpy as np
import pytest

from softmass_core.inference.cam_display import NEAR_ZERO, cam_caption, colorbar, with_colorbar
from softmass_core.inference.gradcam import colormap_jet
from softmass_core.stats.localisation import border_share, energy_inside, gaussian_blob, pointing_hit


def test_overlay_gets_a_colour_bar_below_it():
    overlay = np.full((100, 80, 3), 7, dtype=np.uint8)
    fig = with_colorbar(overlay)
    assert fig.shape[1] == 80 and fig.shape[0] > 100
    assert np.array_equal(fig[:100], overlay)  # the overlay itself is untouched
    bar = colorbar(50, 4)
    assert np.array_equal(bar[0, 0], colormap_jet(np.array(0.0))) and np.array_equal(
        bar[0, -1], colormap_jet(np.array(1.0))
    )
    # the bar's row inside the figure runs from dark blue to dark red
    strip = fig[100:]
    rows = [r for r in strip if (r[:, 2].astype(int) - r[:, 0].astype(int)).max() > 100]
    assert rows, "no jet colour bar under the overlay"
    row = rows[0]
    coloured = row[(row != 255).any(axis=1)]
    assert coloured[0, 2] > 100 and coloured[0, 0] == 0 and coloured[-1, 0] > 100 and coloured[-1, 2] == 0


def test_caption_names_the_class_and_says_when_its_probability_is_near_zero():
    text = cam_caption("DLM-1", "malignant", 0.734)
    assert text.startswith("Explains the malignant score of DLM-1 (P = 0.734)")
    assert "little evidence" not in text and "scaled per image" in text
    low = cam_caption("DLM-1", "malignant", 0.0004)
    assert "P = 0.000" in low and f"below {NEAR_ZERO:g}" in low and "what little evidence there is for malignant" in low
    assert "calcifying epithelioma score of SM-5" in cam_caption("SM-5", "calcifying_epithelioma", 0.5)


def test_localisation_measures_on_hand_made_masks():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 2:5] = True  # 9 pixels
    heat = np.zeros((10, 10))
    heat[3, 3] = 3.0
    heat[8, 8] = 1.0
    assert energy_inside(heat, mask) == pytest.approx(0.75)
    assert pointing_hit(heat, mask)
    heat[8, 8] = 5.0  # the maximum now sits 4 rows and 4 columns from the lesion corner (4, 4): sqrt(32) = 5.66 px
    assert not pointing_hit(heat, mask)
    assert not pointing_hit(heat, mask, tolerance=5.6) and pointing_hit(heat, mask, tolerance=5.7)
    assert energy_inside(np.ones((10, 10)), mask) == pytest.approx(0.09)  # uniform map = area share
    assert border_share(np.ones((10, 10))) == pytest.approx(1 - 0.64)
    edge = np.zeros((10, 10))
    edge[0, :] = 1.0
    assert border_share(edge) == 1.0
    blob = gaussian_blob(9, 11)
    assert np.unravel_index(np.argmax(blob), blob.shape) == (4, 5) and blob.max() == pytest.approx(1.0, abs=1e-2)
