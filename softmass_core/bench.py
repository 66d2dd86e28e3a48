"""Speed benchmarks (``python -m softmass_core bench``), never timed tests.

Each figure is compared against a floor measured in the same run on the same
tensors:

* ``cascade_ratio``: one case (grayscale + CDFI) through the full cascade with
  all six models (``run_all``) / bare timm forwards of the same six models on
  the same (2, 3, H, W) batch.  Target <= 1.2.  For an ensemble set every
  floor counts each member's forward, so every ratio stays relative to the
  set's own bare forwards.
* ``gradcam_ratio``: the same case plus Grad-CAM for DLM-1 and the diagnosing
  sub-model / the cascade alone.  Target <= 1.3.
* ``eval_ratio``: seconds per image of cohort evaluation (PNG decoding,
  ROI crop and resize, every model) / seconds per image of bare batched
  forwards.  Target <= 1.15.
* ``concurrent_ratio``: wall time for ``concurrent`` cases (the demo cases,
  cycled) submitted at once from as many threads to the inference server
  (:mod:`softmass_core.inference.serving`, dynamic batching) / the time to run the same
  cases one by one with :meth:`Cascade.run`.  Target <= 0.8: batching must
  beat one-by-one.  ``concurrent_p95_s`` is the 95th percentile of the
  callers' latencies (submit to result).
* ``occlusion_ratio`` (``--occlusion``, off by default: seconds, not milliseconds): DLM-1's occlusion map of
  one image (:mod:`softmass_core.inference.occlusion`) / bare forwards of as many occluded copies of that image
  (windows x views x members) in batches of 32.  Target <= 1.3.
* ``metrics_seconds``: ``binary_metrics`` for 1000 cases with 2000 bootstrap
  resamples.  Target < 1 s.
* ``phantom_ms_per_image``: the simulated-case generator.  Target <= 50 ms.
* ``cold_start_s``: seconds from ``streamlit run app.py`` to the first
  diagnosis on the Case page in headless Chromium (:func:`measure_cold_start`;
  skipped with a note when Chromium or Playwright is missing).  Target <= 10 s.

Every figure is timed warm (each code path has run once before the clock
starts) except ``cold_start_s``, whose point is the cold process.  The load
average before and after the run is reported: other work on the machine
makes every figure slower and the ratios noisier.
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
    "concurrent_ratio": 0.8,
    "occlusion_ratio": 1.3,
    "metrics_seconds": 1.0,
    "phantom_ms_per_image": 50.0,
    "cold_start_s": 10.0,
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
    from softmass_core.weights.manifest import Architecture, InputSpec
    from softmass_core.weights.models import build_model
    from softmass_core.weights.weight_set import write_weight_set

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
    concurrent: int = 20,
    cold_start: bool = True,
    occlusion: bool = False,
) -> dict[str, Any]:
    """Run every benchmark once and return raw times, ratios and targets.

    ``concurrent`` cases for ``concurrent_ratio`` (0 skips it); ``cold_start``
    measures :func:`measure_cold_start` first, before this process loads
    anything, so the app's start does not share the CPU with the rest.
    """
    import os

    load_before = os.getloadavg()
    cold = None
    if cold_start:
        try:
            cold = measure_cold_start()
        except Exception as exc:  # noqa: BLE001 - the other figures are still worth having
            cold = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
    import torch
    from PIL import Image

    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.inference import tta
    from softmass_core.inference.cascade import Cascade, CaseImages
    from softmass_core.inference.gradcam import cams_for_result
    from softmass_core.labels import DLM1, SUBMODEL_IDS
    from softmass_core.stats.binary import binary_metrics
    from softmass_core.weights.weight_set import WeightSet

    out: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "targets": TARGETS}
    out["load_average_before"] = [round(v, 2) for v in load_before]
    if cold is not None:
        out["cold_start"] = cold
        out["cold_start_s"] = cold.get("cold_start_s")
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
        models = [net for mid in ws.manifest.models for net in ws.members(mid)]  # every member of an ensemble

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
            sm = res.diagnosing_model or next(iter(SUBMODEL_IDS), None)
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
        big = torch.from_numpy(np.repeat(batch[:1].numpy(), batch_size * tta.n_passes(views), axis=0))

        def bare_batched() -> None:
            with torch.no_grad():
                for model in models:
                    model(big)

        # The floor first: its warm-up also readies the kernels for the evaluation's batch shape,
        # so both figures are timed warm.
        per_batch = _median_time(bare_batched, max(2, repeats // 3), warmup=1)
        t0 = time.perf_counter()
        predict_cohort(cascade, cohort, batch_size=batch_size // 2)
        eval_s = time.perf_counter() - t0
        out["eval_images"] = n_images
        out["eval_images_per_s"] = n_images / eval_s
        out["floor_images_per_s"] = batch_size / per_batch
        out["eval_ratio"] = out["floor_images_per_s"] / out["eval_images_per_s"]

        if concurrent > 0:
            out.update(concurrent_bench(ws, concurrent, repeats=max(1, repeats // 3)))
        if occlusion:
            out.update(occlusion_bench(ws, prepared["gray"]))

    labels = rng.integers(0, 2, 1000)
    scores = rng.random(1000) + 0.3 * labels
    out["metrics_seconds"] = _median_time(
        lambda: binary_metrics(labels, scores, threshold=0.5, n_boot=2000, seed=0), 3, warmup=1
    )
    if phantom_cases > 0:
        try:
            from softmass_core.data.phantom import benchmark as phantom_benchmark
        except ImportError:
            out["phantom"] = None
        else:
            ph = phantom_benchmark(n_cases=phantom_cases, seed=0)
            out["phantom"] = ph
            out["phantom_ms_per_image"] = ph.get("ms_per_image", ph.get("mean_ms_per_image"))
    out["meets_targets"] = {k: (out[k] <= v if k in out and out[k] is not None else None) for k, v in TARGETS.items()}
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return out


def occlusion_bench(ws, prepared, *, batch: int = 32) -> dict[str, Any]:
    """``occlusion_s`` for DLM-1's occlusion map of one prepared image against bare forwards of as many inputs."""
    import torch

    from softmass_core.inference import tta
    from softmass_core.inference.occlusion import n_windows, occlusion_maps
    from softmass_core.labels import DLM1

    _, height, width = prepared.array.shape
    n = n_windows(height, width) * tta.n_passes(ws.manifest.tta)
    members = ws.members(DLM1)
    x = torch.from_numpy(np.repeat(prepared.array[None], batch, axis=0))

    def floor() -> None:
        with torch.no_grad():
            for model in members:
                for start in range(0, n, batch):
                    model(x[: min(batch, n - start)])

    floor_s = _median_time(floor, 1, warmup=1)
    occ_s = _median_time(lambda: occlusion_maps(ws, DLM1, {"gray": prepared}, batch=batch), 1, warmup=1)
    return {"occlusion_forwards": n * len(members), "occlusion_floor_s": floor_s, "occlusion_s": occ_s,
            "occlusion_ratio": occ_s / floor_s}  # fmt: skip


def concurrent_bench(ws, n_cases: int, *, repeats: int = 2) -> dict[str, Any]:
    """``n_cases`` demo cases submitted at once from as many threads vs the same cases one by one.

    Both sides run the cascade as the Case page does (``keep_features`` for
    Grad-CAM).  One by one: :meth:`Cascade.run` on each case in turn.  At once:
    each thread submits its case to an :class:`InferenceServer` after a
    barrier; the wall time runs from the barrier until the last result, and
    each caller's latency from its submit (ROI preparation included) to its
    result.

    The two sides are timed in interleaved pairs (one by one, then at once,
    ``max(3, repeats)`` times after one untimed pair), and the figure is the
    median of the pairs' ratios: a shared machine whose speed drifts during
    the run then slows both sides of a pair alike instead of biasing one.
    """
    import threading

    from softmass_core.data.demo import DEMO_CASE_IDS, demo_case
    from softmass_core.inference.cascade import Cascade
    from softmass_core.inference.serving import InferenceServer, configure_torch_threads

    configure_torch_threads()
    demos = [demo_case(cid).to_case_images() for cid in DEMO_CASE_IDS[: min(n_cases, len(DEMO_CASE_IDS))]]
    cases = [demos[i % len(demos)] for i in range(n_cases)]
    cascade = Cascade(ws)
    server = InferenceServer(Cascade(ws))

    def one_by_one() -> float:
        t0 = time.perf_counter()
        for case in cases:
            cascade.run(case, keep_features=True)
        return time.perf_counter() - t0

    def at_once() -> tuple[float, list[float], int]:
        before = server.batches_run
        barrier = threading.Barrier(n_cases + 1)
        latency = [0.0] * n_cases

        def session(i: int) -> None:
            barrier.wait()
            t = time.perf_counter()
            server.run(cases[i], keep_features=True)
            latency[i] = time.perf_counter() - t

        threads = [threading.Thread(target=session, args=(i,)) for i in range(n_cases)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        return time.perf_counter() - t0, latency, server.batches_run - before

    try:
        one_by_one(), at_once()  # untimed: first-call allocations on both paths
        pairs = [(one_by_one(), at_once()) for _ in range(max(3, repeats))]
    finally:
        server.close()
    ratios = [together[0] / alone for alone, together in pairs]
    mid = sorted(range(len(pairs)), key=lambda k: ratios[k])[(len(pairs) - 1) // 2]
    alone, (wall, latency, batches) = pairs[mid]
    return {
        "concurrent_cases": n_cases,
        "concurrent_one_by_one_s": alone,
        "concurrent_wall_s": wall,
        "concurrent_batches": batches,
        "concurrent_ratio": ratios[mid],
        "concurrent_ratio_range": [min(ratios), max(ratios)],
        "concurrent_p50_s": float(np.percentile(latency, 50)),
        "concurrent_p95_s": float(np.percentile(latency, 95)),
    }


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
        *(
            [
                (f"occlusion map, DLM-1 ({res['occlusion_forwards']} forwards)", f"{res['occlusion_s']:.2f} s", ""),
                ("  occlusion_ratio", f"{res['occlusion_ratio']:.3f}", f"<= {TARGETS['occlusion_ratio']}"),
            ]
            if res.get("occlusion_ratio") is not None
            else []
        ),
        ("metrics, 1000 cases, 2000 boots", f"{res['metrics_seconds']:.3f} s", f"< {TARGETS['metrics_seconds']}"),
    ]
    if res.get("concurrent_ratio") is not None:
        n = res["concurrent_cases"]
        rows += [
            (f"{n} cases one by one", f"{res['concurrent_one_by_one_s']:.2f} s", ""),
            (
                f"{n} cases at once, batched",
                f"{res['concurrent_wall_s']:.2f} s",
                f"({res['concurrent_batches']} batches)",
            ),
            (
                "  concurrent_ratio (median pair)",
                f"{res['concurrent_ratio']:.3f}",
                f"<= {TARGETS['concurrent_ratio']}; pairs {res['concurrent_ratio_range'][0]:.2f}-"
                f"{res['concurrent_ratio_range'][1]:.2f}",
            ),
            (
                "  latency p50 / p95",
                f"{res['concurrent_p50_s']:.2f} / {res['concurrent_p95_s']:.2f} s",
                "",
            ),
        ]
    if res.get("phantom_ms_per_image") is not None:
        rows.append(
            (
                "phantom generator",
                f"{res['phantom_ms_per_image']:.1f} ms/image",
                f"<= {TARGETS['phantom_ms_per_image']}",
            )
        )
    cold = res.get("cold_start")
    if cold is not None:
        if cold.get("skipped") or cold.get("error"):
            rows.append(
                ("cold start", "skipped" if cold.get("skipped") else "failed", cold.get("skipped") or cold["error"])
            )
        else:
            rows += [
                ("cold start: health check", f"{cold['health_s']:.1f} s", ""),
                ("cold start: Case page ready", f"{cold['page_ready_s']:.1f} s", ""),
                ("cold start: first diagnosis", f"{cold['first_diagnosis_s']:.1f} s", f"<= {TARGETS['cold_start_s']}"),
                ("cold start: first Grad-CAM", f"{cold['first_gradcam_s']:.1f} s", ""),
            ]
    for key in ("load_average_before", "load_average_after"):
        if res.get(key) is not None:
            rows.append((key.replace("_", " ") + " (1/5/15 min)", " / ".join(f"{v:.2f}" for v in res[key]), ""))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {str(b):<22} {c}" for a, b, c in rows)


# --------------------------------------------------------------------------- cold start

#: Chromium flags for a headless run on a server (as the browser test uses).
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    """True when the local Streamlit server on ``port`` answers its health check (localhost only)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/_stcore/health")
        r = conn.getresponse()
        return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False
    finally:
        conn.close()


def _chromium() -> str | None:
    import os
    import shutil

    path = os.environ.get("SOFTMASS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).exists() else None


def measure_cold_start(*, weights_root: str | None = None, timeout_s: float = 180.0) -> dict[str, Any]:
    """Seconds from ``streamlit run app.py`` to the first diagnosis on the Case page, in a real browser.

    Starts the app on a free localhost port with a fresh temporary cache and
    reader database (the shipped weight sets, or ``weights_root``), opens it in
    headless Chromium (started before the clock, as a user's browser is
    already open), waits for the Case page's run button, presses it and waits
    for the diagnosis.  Returns ``health_s`` (the server answers
    ``/_stcore/health``), ``page_ready_s`` (the run button is shown and the
    script is idle), ``first_diagnosis_s`` (``cold_start_s``, the figure) and
    ``first_gradcam_s``, all from the start of the process; or
    ``{"skipped": reason}`` when Chromium or Playwright is missing.
    """
    import os
    import re
    import signal
    import subprocess
    import sys

    chromium = _chromium()
    if chromium is None:
        return {"skipped": "Chromium not found (apt-get install chromium, or set SOFTMASS_CHROMIUM)"}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "Playwright is not installed (pip install playwright)"}
    root = Path(__file__).resolve().parent.parent
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="softmass-cold-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_ARGS))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(
            os.environ,
            SOFTMASS_CACHE=str(Path(tmp) / "cache"),
            SOFTMASS_READER_DB=f"sqlite:///{Path(tmp) / 'reads.sqlite'}",
            PYTHONUNBUFFERED="1",
        )
        if weights_root is not None:
            env["SOFTMASS_WEIGHTS"] = str(weights_root)
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
        cmd += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        log_path = Path(tmp) / "streamlit.log"
        with open(log_path, "w") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                while not _healthy(port):
                    if proc.poll() is not None or time.perf_counter() - t0 > timeout_s:
                        raise RuntimeError(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
                    time.sleep(0.05)
                out["health_s"] = time.perf_counter() - t0
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(timeout_s * 1000)
                page.goto(url)
                # Tolerant selectors: the page's wording may change, the button's role and gist will not.
                run = page.get_by_role("button", name=re.compile(r"run\b.*\bcascade", re.I)).first
                run.wait_for(state="visible")
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
                out["page_ready_s"] = time.perf_counter() - t0
                run.click()
                page.get_by_text(re.compile(r"^\s*diagnosis\s*:", re.I)).first.wait_for(state="visible")
                out["first_diagnosis_s"] = time.perf_counter() - t0
                cam = page.locator('[data-testid="stImage"]').filter(has_text=re.compile("grad-cam", re.I)).first
                cam.wait_for(state="visible")
                out["first_gradcam_s"] = time.perf_counter() - t0
            except Exception as exc:
                text = page.inner_text("body")[-1500:] if "page" in locals() else ""
                raise RuntimeError(f"{exc}\npage:\n{text}\nlog:\n{log_path.read_text()[-1500:]}") from None
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=10)
                browser.close()
    out["cold_start_s"] = out.get("first_diagnosis_s")
    return out
