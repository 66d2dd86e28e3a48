"""One inference worker for every session: dynamic batching, a bounded queue, a load-once registry."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from softmass_core.errors import SoftmassError
from softmass_core.inference import serving
from softmass_core.inference.cascade import Cascade, CaseImages
from softmass_core.inference.gradcam import cams_for_result
from softmass_core.inference.serving import InferenceServer, ServerBusyError, WeightSetRegistry
from softmass_core.io.roi import Roi
from softmass_core.labels import DLM1
from softmass_core.weights.weight_set import WeightSet
from tests.conftest import synthetic_rgb


@pytest.fixture(scope="module")
def ws(tiny_weights):
    ws = WeightSet.load(tiny_weights)
    ws.load_all()
    return ws


def _cases(n: int) -> list[CaseImages]:
    out = []
    for i in range(n):
        gray = synthetic_rgb(100 + i)
        if i % 3 == 2:  # some cases have one image only
            out.append(CaseImages(gray=gray, gray_roi=Roi(5, 5, 150, 110)))
        else:
            out.append(CaseImages(gray=gray, cdfi=synthetic_rgb(200 + i), cdfi_roi=Roi(10, 10, 140, 100)))
    return out


def _threshold_between(cascade: Cascade, cases: list[CaseImages]) -> float:
    """A DLM-1 threshold that makes some of ``cases`` malignant and the others benign."""
    p = sorted(cascade.run(c).p_malignant for c in cases)
    return float((p[len(p) // 2 - 1] + p[len(p) // 2]) / 2)


def _assert_same(batched, alone) -> None:
    assert batched.models_run == alone.models_run
    assert batched.diagnosis == alone.diagnosis and batched.malignant == alone.malignant
    assert batched.per_image.keys() == alone.per_image.keys()
    for m in alone.per_image:
        assert batched.per_image[m].keys() == alone.per_image[m].keys()
        for model_id, p in alone.per_image[m].items():
            assert batched.per_image[m][model_id] == pytest.approx(p, abs=1e-5)
    assert batched.p_malignant == pytest.approx(alone.p_malignant, abs=1e-5)
    assert batched.rois == alone.rois


def test_run_batch_equals_each_case_alone_with_dlm2_on_the_benign_ones_only(ws):
    cases = _cases(6)
    cascade = Cascade(ws, threshold=_threshold_between(Cascade(ws), cases))
    batched = cascade.run_batch([cascade.prepare(c) for c in cases], keep_features=True)
    alone = [cascade.run(c, keep_features=True) for c in cases]
    assert {r.malignant for r in alone} == {True, False}  # both branches of the cascade are in the batch
    for b, a in zip(batched, alone, strict=True):
        _assert_same(b, a)
        assert b.features.keys() == a.features.keys() == set(a.models_run)
        for model_id, feats in a.features.items():
            assert b.features[model_id].shape == feats.shape
            torch.testing.assert_close(b.features[model_id], feats, atol=1e-4, rtol=1e-4)
    # Grad-CAM from the batched run's features is the one from the case alone.
    i = next(i for i, a in enumerate(alone) if not a.malignant)
    cam_b, cam_a = cams_for_result(ws, batched[i], DLM1), cams_for_result(ws, alone[i], DLM1)
    for m in cam_a:
        np.testing.assert_allclose(cam_b[m].cam_roi, cam_a[m].cam_roi, atol=1e-3)


def test_run_batch_takes_run_all_per_case_and_refuses_an_empty_case(ws):
    cases = _cases(2)
    cascade = Cascade(ws, threshold=0.0)  # everything malignant: DLM-2 only where run_all asks for it
    out = cascade.run_batch([cascade.prepare(c) for c in cases], run_all=[False, True])
    assert out[0].models_run == [DLM1] and out[0].sub_scores is None
    assert out[1].models_run == [DLM1, "sm1", "sm2", "sm3", "sm4", "sm5"] and out[1].diagnosis == "malignant"
    with pytest.raises(SoftmassError, match="needs a grayscale"):
        cascade.run_batch([cascade.prepare(cases[0]), {}])


def test_cases_submitted_at_once_from_many_threads_are_batched_and_equal_the_serial_run(ws):
    cases = _cases(9)
    threshold = _threshold_between(Cascade(ws), cases)
    serial = Cascade(ws, threshold=threshold)
    alone = [serial.run(c, keep_features=True) for c in cases]
    server = InferenceServer(Cascade(ws, threshold=threshold), max_batch=4, max_wait_s=0.5)
    start = threading.Barrier(len(cases))
    results: list = [None] * len(cases)

    def session(i: int) -> None:
        start.wait()
        results[i] = server.run(cases[i], keep_features=True, timeout=120)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    server.close()
    assert server.largest_batch > 1, "the worker never batched cases of different callers"
    assert server.largest_batch <= 4
    for b, a in zip(results, alone, strict=True):
        _assert_same(b, a)
        assert {k: v.shape for k, v in b.features.items()} == {k: v.shape for k, v in a.features.items()}


class _GatedCascade(Cascade):
    """A cascade whose batches wait for ``gate``: the queue fills behind the first one."""

    gate: threading.Event
    started: threading.Event

    def run_batch(self, cases, **kwargs):
        self.started.set()
        assert self.gate.wait(60)
        return super().run_batch(cases, **kwargs)


def _gated_server(ws, **kwargs) -> tuple[InferenceServer, _GatedCascade]:
    cascade = _GatedCascade(ws)
    cascade.gate, cascade.started = threading.Event(), threading.Event()
    return InferenceServer(cascade, **kwargs), cascade


def test_a_full_queue_refuses_with_a_typed_error_and_callers_see_how_many_are_ahead(ws):
    server, cascade = _gated_server(ws, max_batch=1, max_wait_s=0.0, max_queue=2)
    cases = _cases(4)
    first = server.submit(cases[0])
    assert cascade.started.wait(60)  # the worker holds the first case
    second, third = server.submit(cases[1]), server.submit(cases[2])
    assert (first.ahead(), second.ahead(), third.ahead()) == (0, 1, 2)
    with pytest.raises(ServerBusyError, match="busy.*try again in a moment"):
        server.submit(cases[3])
    assert isinstance(ServerBusyError("x"), SoftmassError)  # the pages show it as a plain message
    assert third.cancel() and not third.cancel()  # a waiting case can leave the queue
    with pytest.raises(SoftmassError, match="cancelled"):
        third.result(1)
    cascade.gate.set()
    expected = Cascade(ws)
    _assert_same(first.result(60), expected.run(cases[0]))
    _assert_same(second.result(60), expected.run(cases[1]))
    assert second.ahead() == 0 and server.queued() == 0
    server.close()
    with pytest.raises(SoftmassError, match="closed"):
        server.submit(cases[0])


def test_a_failing_case_gets_its_own_error_and_the_worker_goes_on(ws):
    server, cascade = _gated_server(ws, max_batch=8, max_wait_s=0.0)
    cases = _cases(3)
    blocker = server.submit(cases[0])
    assert cascade.started.wait(60)
    good = cascade.prepare(cases[1])
    bad = {"gray": dataclasses.replace(good["gray"], array=good["gray"].array[:1])}  # one channel, not three
    tickets = [server.submit_prepared(good), server.submit_prepared(bad), server.submit(cases[2])]
    cascade.gate.set()  # the three now run as one batch, which fails on the bad case
    expected = Cascade(ws)
    _assert_same(blocker.result(60), expected.run(cases[0]))
    _assert_same(tickets[0].result(60), expected.run(cases[1]))
    with pytest.raises(RuntimeError):
        tickets[1].result(60)
    _assert_same(tickets[2].result(60), expected.run(cases[2]))
    _assert_same(server.run(cases[1], timeout=60), expected.run(cases[1]))  # the worker is still there
    server.close()


def test_a_bad_roi_is_the_callers_error_before_anything_is_queued(ws):
    server = InferenceServer(Cascade(ws))
    with pytest.raises(SoftmassError, match="outside|inside|image"):
        server.submit(CaseImages(gray=synthetic_rgb(1), gray_roi=Roi(500, 500, 600, 600)))
    assert server.queued() == 0
    server.close()


def test_the_registry_loads_a_set_once_for_concurrent_callers_and_reloads_a_changed_one(tiny_weights, monkeypatch):
    loads = []
    real_load = WeightSet.load

    def counting_load(folder, **kwargs):
        loads.append(folder)
        return real_load(folder, **kwargs)

    monkeypatch.setattr(WeightSet, "load", staticmethod(counting_load))
    registry = WeightSetRegistry(max_sets=2)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(registry.weight_set(tiny_weights, 1.0))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 6 and all(w is got[0] for w in got) and len(loads) == 1
    ws = registry.models(tiny_weights, 1.0, timeout=60)
    assert ws is got[0] and set(ws._models) == set(ws.manifest.models)  # built in the background
    server = registry.server(ws)
    assert registry.server(ws) is server
    newer = registry.weight_set(tiny_weights, 2.0)  # the files changed: a fresh, re-verified set
    assert newer is not ws and len(loads) == 2
    with pytest.raises(SoftmassError, match="closed"):
        server.submit(_cases(1)[0])
    registry.clear()


def test_the_registry_reports_a_broken_set_to_every_caller(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    registry = WeightSetRegistry()
    for _ in range(2):
        with pytest.raises(SoftmassError):
            registry.weight_set(tmp_path, 0.0)


def test_torch_threads_are_set_once(monkeypatch):
    monkeypatch.setattr(serving, "_THREADS", None)
    n = serving.configure_torch_threads()
    assert n == torch.get_num_threads() >= 1
    assert serving.configure_torch_threads(n + 1) == n == torch.get_num_threads()


@pytest.mark.slow
def test_a_process_exits_cleanly_while_background_work_is_inside_torch(tiny_weights):
    """A daemon thread still inside torch at exit aborted the process (exit 134 after every test passed)."""
    import subprocess
    import sys

    code = (
        "import sys, threading, torch\n"
        "from softmass_core.inference import serving\n"
        "busy = threading.Event()\n"
        "def work():\n"
        "    busy.set()\n"
        "    x = torch.randn(256, 256)\n"
        "    for _ in range(400):\n"
        "        x = torch.tanh(x @ x)\n"
        "serving.warm_up(sys.argv[1], then=[work])\n"
        "busy.wait(120)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny_weights)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
