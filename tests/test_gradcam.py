"""Grad-CAM: agreement with pytorch-grad-cam on the whole model, thread safety, overlays."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.gradcam import cams_for_result, colormap_jet, compute_cams, overlay_cam
from softmass_core.io.roi import Roi
from softmass_core.weights.weight_set import WeightSet


@pytest.fixture(scope="module")
def ws(tiny_weights):
    return WeightSet.load(tiny_weights)


def test_tail_cam_matches_full_model_gradcam(ws, rgb_pair):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cascade = Cascade(ws)
    res = cascade.run(CaseImages(gray=rgb_pair[0], cdfi=rgb_pair[1]), run_all=True, keep_features=True)
    ours = cams_for_result(ws, res, "sm2")
    # Reference: pytorch-grad-cam on a private copy of the whole model, backward through everything.
    import copy

    full = copy.deepcopy(ws.model("sm2"))
    for p in full.parameters():
        p.requires_grad_(True)
    x = torch.from_numpy(np.stack([res.prepared[m].array for m in ("gray", "cdfi")]))
    cam = GradCAM(model=full, target_layers=[full.stages[-1]])
    try:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(1)] * 2)
    finally:
        cam.activations_and_grads.release()
    for i, m in enumerate(("gray", "cdfi")):
        a, b = ours[m].cam_input.ravel(), ref[i].ravel()
        assert a.shape == b.shape
        assert np.corrcoef(a, b)[0, 1] > 0.98


def test_cached_features_give_the_same_cam(ws, rgb_pair):
    cascade = Cascade(ws)
    res = cascade.run(CaseImages(gray=rgb_pair[0]), keep_features=True, run_all=True)
    a = cams_for_result(ws, res, "dlm1")["gray"].cam_input
    b = compute_cams(ws, "dlm1", res.prepared)["gray"].cam_input
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_cam_is_mapped_onto_the_roi(ws, rgb_pair):
    roi = Roi(20, 10, 140, 100)
    cascade = Cascade(ws)
    res = cascade.run(CaseImages(gray=rgb_pair[0], gray_roi=roi))
    cr = compute_cams(ws, "dlm1", res.prepared, target_label="benign")["gray"]
    assert cr.cam_roi.shape == (roi.height, roi.width)
    assert cr.target_label == "benign"
    assert cr.cam_roi.min() >= 0.0 and cr.cam_roi.max() <= 1.0
    full = cr.full_image(160, 120)
    assert full.shape == (120, 160) and full[: roi.y0].sum() == 0
    over = overlay_cam(rgb_pair[0], cr.cam_roi, roi, alpha=0.5)
    assert over.shape == rgb_pair[0].shape and over.dtype == np.uint8
    np.testing.assert_array_equal(over[: roi.y0], rgb_pair[0][: roi.y0])  # outside the ROI untouched
    assert not np.array_equal(over[roi.y0 : roi.y1, roi.x0 : roi.x1], rgb_pair[0][roi.y0 : roi.y1, roi.x0 : roi.x1])


def test_concurrent_cams_equal_cams_alone(ws, rgb_pair):
    cascade = Cascade(ws)
    cases = [CaseImages(gray=rgb_pair[0]), CaseImages(gray=rgb_pair[1], gray_roi=Roi(5, 5, 120, 100))]
    prepared = [cascade.prepare(c) for c in cases]
    alone = [compute_cams(ws, "dlm1", p)["gray"].cam_input for p in prepared]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def worker(i: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                results[i].append(compute_cams(ws, "dlm1", prepared[i])["gray"].cam_input)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def inference() -> None:
        start.wait()
        for _ in range(6):
            cascade.run(cases[0], run_all=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)] + [threading.Thread(target=inference)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in (0, 1):
        for got in results[i]:
            np.testing.assert_array_equal(got, alone[i])
    # the shared model never keeps hooks
    model = ws.model("dlm1")
    assert all(not s._forward_hooks for s in model.stages)


def test_colormap_and_bad_alpha(rgb_pair):
    rgb = colormap_jet(np.array([0.0, 0.5, 1.0]))
    assert rgb.shape == (3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 2] > 100 and rgb[2, 0] > 100  # blue at 0, red at 1
    from softmass_core.errors import SoftmassError

    with pytest.raises(SoftmassError):
        overlay_cam(rgb_pair[0], np.zeros((10, 10)), Roi(0, 0, 10, 10), alpha=2)
