"""Speed benchmarks (``python -m softmass_core bench``), never timed tests.

Each figure is compared against a floor measured in the same run on the same
tensors:

* ``cascade_ratio``: one case (grayscale + CDFI) through the full cascade with
  all six models (``run_all``) / bare timm forwards of the same six models on
  the same (2, 3, H, W) batch.  Target <= 1.2.
* ``gradcam_ratio``: the same case plus Grad-CAM for DLM-1 and the diagnosing
  sub-model / the cascade alone.  Target <= 1.3.
* ``eval_ratio``: seconds per image of cohort evaluation (PNG decoding,
  ROI crop and resize, every model) / seconds per image of bare batched
  forwards.  Target <= 1.15.
* ``metrics_seconds``: ``binary_metrics`` for 1000 cases with 2000 bootstrap
  resamples.  Target < 1 s.
* ``phantom_ms_per_image``: the simulated-case generator.  Target <= 50 ms.
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = {
    "cascade_ratio": 1.2,
    "gradcam_ratio": 1.3,
    "eval_ratio": 1.15,
    "metrics_seconds": 1.0,
    "phantom_ms_per_image": 50.0,
}


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _random_weight_set(folder: Path, arch: str, width: int, height: int):
    import torch

    from softmass_core.labels import DLM1, SUBMODEL_IDS
    from softmass_core.models import build_model, write_weight_set
    from softmass_core.roi import InputSpec
    from softmass_core.weights import Architecture

    torch.manual_seed(0)
    architecture = Architecture(arch)
    labels = {DLM1: ["benign", "malignant"], **{sm: ["other", st] for sm, st in SUBMODEL_IDS.items()}}
    models = {mid: build_model(architecture, 2) for mid in labels}
    write_weight_set(
        folder,
        models,
        set_id="bench-random",
        version="0",
        architecture=architecture,
        input_spec=InputSpec(width=width, height=height),
        labels=labels,
        description="random weights, for timing only",
    )
    return folder


def _synthetic_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = rng.integers(0, 255, size=(height // 4, width // 4, 1), dtype=np.uint8)
    img = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))
    return np.repeat(img, 3, axis=2)


def run_bench(
    *,
    weights: str | None = None,
    arch: str = "convnext_atto",
    random_weights: bool = False,
    size: tuple[int, int] = (470, 280),
    repeats: int = 10,
    eval_images: int = 64,
    phantom_cases: int = 12,
) -> dict[str, Any]:
    """Run every benchmark once and return raw times, ratios and targets."""
    import torch
    from PIL import Image

    from softmass_core import tta
    from softmass_core.cascade import Cascade, CaseImages
    from softmass_core.cohort import read_cohort
    from softmass_core.evaluate import predict_cohort
    from softmass_core.gradcam import cams_for_result
    from softmass_core.labels import DLM1, SUBMODEL_IDS
    from softmass_core.metrics import binary_metrics
    from softmass_core.weights import WeightSet

    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="softmass-bench-") as tmp:
        tmp_path = Path(tmp)
        if weights is None and not random_weights:
            default = Path(__file__).resolve().parent.parent / "weights" / "phantom"
            weights = str(default) if (default / "manifest.json").is_file() else None
        if weights is None:
            weights = str(_random_weight_set(tmp_path / "ws", arch, *size))
            out["weights"] = f"random {arch}"
        else:
            out["weights"] = weights
        ws = WeightSet.load(weights)
        ws.load_all()
        spec = ws.input_spec
        out["input"] = f"{spec.width}x{spec.height}"
        out["models"] = list(ws.manifest.models)
        cascade = Cascade(ws)
        rng = np.random.default_rng(0)
        case = CaseImages(gray=_synthetic_image(rng, 640, 480), cdfi=_synthetic_image(rng, 640, 480))
        prepared = cascade.prepare(case)
        # The floor runs what the cascade must run: every test-time view of both images.
        views = ws.manifest.tta
        out["test_time_augmentation"] = list(views)
        batch = tta.expand(torch.from_numpy(np.stack([prepared[m].array for m in prepared])), views)
        models = [ws.model(mid) for mid in ws.manifest.models]

        def floor() -> None:
            with torch.no_grad():
                for model in models:
                    model(batch)

        out["floor_forward_s"] = _median_time(floor, repeats)
        out["cascade_s"] = _median_time(lambda: cascade.run(case, run_all=True), repeats)
        out["cascade_ratio"] = out["cascade_s"] / out["floor_forward_s"]

        def with_cam() -> None:
            res = cascade.run(case, run_all=True, keep_features=True)
            cams_for_result(ws, res, DLM1)
            sm = cascade.diagnosing_model(res) or next(iter(SUBMODEL_IDS), None)
            if sm in ws.manifest.models:
                cams_for_result(ws, res, sm)

        out["cascade_gradcam_s"] = _median_time(with_cam, repeats)
        out["gradcam_ratio"] = out["cascade_gradcam_s"] / out["cascade_s"]

        # Cohort evaluation throughput against bare batched forwards.
        img_dir = tmp_path / "cohort"
        img_dir.mkdir()
        n_cases = max(1, eval_images // 2)
        with open(img_dir / "cohort.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["case_id", "cohort", "label", "gray_path", "cdfi_path", "gray_roi", "cdfi_roi"])
            for i in range(n_cases):
                for kind in ("gray", "cdfi"):
                    Image.fromarray(_synthetic_image(rng, 640, 480)).save(img_dir / f"c{i}_{kind}.png")
                roi = "40,30,600,450"
                writer.writerow([f"c{i}", "bench", "lipoma", f"c{i}_gray.png", f"c{i}_cdfi.png", roi, roi])
        cohort = read_cohort(img_dir / "cohort.csv")
        n_images = 2 * n_cases
        batch_size = 16
        t0 = time.perf_counter()
        predict_cohort(cascade, cohort, batch_size=batch_size // 2)
        eval_s = time.perf_counter() - t0
        big = torch.from_numpy(np.repeat(batch[:1].numpy(), batch_size * tta.n_passes(views), axis=0))

        def bare_batched() -> None:
            with torch.no_grad():
                for model in models:
                    model(big)

        per_batch = _median_time(bare_batched, max(2, repeats // 3), warmup=1)
        out["eval_images"] = n_images
        out["eval_images_per_s"] = n_images / eval_s
        out["floor_images_per_s"] = batch_size / per_batch
        out["eval_ratio"] = out["floor_images_per_s"] / out["eval_images_per_s"]

    labels = rng.integers(0, 2, 1000)
    scores = rng.random(1000) + 0.3 * labels
    out["metrics_seconds"] = _median_time(
        lambda: binary_metrics(labels, scores, threshold=0.5, n_boot=2000, seed=0), 3, warmup=1
    )
    if phantom_cases > 0:
        try:
            from softmass_core.phantom import benchmark as phantom_benchmark
        except ImportError:
            out["phantom"] = None
        else:
            ph = phantom_benchmark(n_cases=phantom_cases, seed=0)
            out["phantom"] = ph
            out["phantom_ms_per_image"] = ph.get("ms_per_image", ph.get("mean_ms_per_image"))
    out["meets_targets"] = {k: (out[k] <= v if k in out and out[k] is not None else None) for k, v in TARGETS.items()}
    return out


def format_table(res: dict[str, Any]) -> str:
    """Plain-text table of a :func:`run_bench` result."""
    rows = [
        ("weights", res.get("weights"), ""),
        ("input (W x H)", res.get("input"), ""),
        ("torch threads", res.get("torch_threads"), ""),
        ("test-time views", ", ".join(res.get("test_time_augmentation") or []) or "none", ""),
        ("bare forwards, every model, 2 images", f"{res['floor_forward_s'] * 1000:.1f} ms", ""),
        ("cascade, one case, run_all", f"{res['cascade_s'] * 1000:.1f} ms", ""),
        ("  cascade_ratio", f"{res['cascade_ratio']:.3f}", f"<= {TARGETS['cascade_ratio']}"),
        ("cascade + Grad-CAM (DLM-1 + SM)", f"{res['cascade_gradcam_s'] * 1000:.1f} ms", ""),
        ("  gradcam_ratio", f"{res['gradcam_ratio']:.3f}", f"<= {TARGETS['gradcam_ratio']}"),
        ("evaluation", f"{res['eval_images_per_s']:.1f} images/s", f"({res['eval_images']} images)"),
        ("bare batched forwards", f"{res['floor_images_per_s']:.1f} images/s", ""),
        ("  eval_ratio", f"{res['eval_ratio']:.3f}", f"<= {TARGETS['eval_ratio']}"),
        ("metrics, 1000 cases, 2000 boots", f"{res['metrics_seconds']:.3f} s", f"< {TARGETS['metrics_seconds']}"),
    ]
    if res.get("phantom_ms_per_image") is not None:
        rows.append(
            (
                "phantom generator",
                f"{res['phantom_ms_per_image']:.1f} ms/image",
                f"<= {TARGETS['phantom_ms_per_image']}",
            )
        )
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {str(b):<22} {c}" for a, b, c in rows)
