"""Occlusion maps (softmass_core.inference.occlusion) on hand-made networks whose evidence lies where we put it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from softmass_core.errors import SoftmassError
from softmass_core.inference.occlusion import n_windows, occlusion_maps
from softmass_core.io.roi import Prepared, Roi


class RegionScore(torch.nn.Module):
    """Logits (0, k * mean of channel 0 over rows ``ys`` and columns ``xs``): malignant evidence lives in that box."""

    def __init__(self, ys: slice, xs: slice, k: float = 20.0):
        super().__init__()
        self.ys, self.xs, self.k = ys, xs, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.k * x[:, 0, self.ys, self.xs].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(score), score], dim=1)


def _set(*members: torch.nn.Module, tta: tuple[str, ...] = ()):
    entry = SimpleNamespace(labels=("benign", "malignant"), positive_label="malignant", temperature=1.0)
    return SimpleNamespace(entry=lambda _id: entry, members=lambda _id: members, manifest=SimpleNamespace(tta=tta))


def _bright(h: int = 64, w: int = 96) -> Prepared:
    """A uniformly bright input (1.0 after normalisation, so the mid-grey patch 0 lowers any region's score)."""
    return Prepared(array=np.ones((3, h, w), np.float32), roi=Roi(0, 0, w, h), content_box=(0, 0, w, h))


def _peak(cam: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(y), int(x)


def test_the_map_peaks_where_the_evidence_is_and_is_zero_far_from_it():
    model = RegionScore(slice(0, 16), slice(64, 96))  # top-right corner
    cam = occlusion_maps(_set(model), "dlm1", {"gray": _bright()}, window=16, stride=8)["gray"]
    y, x = _peak(cam.cam_input)
    assert y < 16 and x >= 64, (y, x)
    assert cam.cam_input.max() == pytest.approx(1.0)
    assert cam.cam_input[40:, :40].max() == 0.0  # windows that never touch the box lower nothing
    assert cam.cam_roi.shape == (64, 96) and cam.target_label == "malignant"


def test_mirrored_view_is_mirrored_back_and_members_are_averaged_without_rescaling():
    left = RegionScore(slice(0, 64), slice(0, 16))
    right = RegionScore(slice(0, 64), slice(80, 96))
    # With hflip, a network looking at its left edge sees the image's right edge in the mirrored view: the map,
    # mirrored back, covers both edges (each view's evidence where it was in the original image).
    flip = occlusion_maps(_set(left, tta=("hflip",)), "dlm1", {"gray": _bright()}, window=16, stride=8)["gray"]
    assert flip.cam_input[:, :16].mean() > 0.5 and flip.cam_input[:, 80:].mean() > 0.5
    assert flip.cam_input[:, 40:56].max() == 0.0
    # Two members pointing at opposite edges: each edge reaches 1/2 (the mean of one map at 1 and one at 0).
    both = occlusion_maps(_set(left, right), "dlm1", {"gray": _bright()}, window=16, stride=8)["gray"]
    assert both.cam_input.max() == pytest.approx(0.5, abs=1e-6)


def test_a_score_no_patch_lowers_gives_a_blank_map_not_noise():
    model = RegionScore(slice(0, 16), slice(0, 16), k=-20.0)  # hiding the box *raises* malignant: no evidence
    cam = occlusion_maps(_set(model), "dlm1", {"gray": _bright()}, window=16, stride=8)["gray"]
    assert cam.cam_input.max() == 0.0


def test_bad_requests_say_what_is_wrong():
    model = RegionScore(slice(0, 16), slice(0, 16))
    with pytest.raises(SoftmassError, match="larger than the model input"):
        occlusion_maps(_set(model), "dlm1", {"gray": _bright(24, 24)}, window=32)
    with pytest.raises(SoftmassError, match="not one of them"):
        occlusion_maps(_set(model), "dlm1", {"gray": _bright()}, target_label="lipoma")
    assert n_windows(160, 160) == 81 and n_windows(168, 282) == 9 * 16


def test_runs_on_a_real_tiny_weight_set(tiny_weights):
    from softmass_core.io.roi import prepare
    from softmass_core.weights.weight_set import WeightSet
    from tests.conftest import synthetic_rgb

    ws = WeightSet.load(tiny_weights)
    p = prepare(synthetic_rgb(1), None, ws.input_spec)
    cam = occlusion_maps(ws, "dlm1", {"gray": p}, window=16, stride=16)["gray"]
    assert cam.cam_input.shape == p.array.shape[1:] and 0.0 <= cam.cam_input.min() <= cam.cam_input.max() <= 1.0
