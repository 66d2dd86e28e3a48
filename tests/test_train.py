"""Training smoke test: a couple of steps on a tiny generated cohort writes a loadable weight set."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from softmass_core.errors import SoftmassError
from softmass_core.labels import COHORT_LABELS, SUBTYPES
from softmass_core.stats.roc import youden_threshold
from softmass_core.training.data import task_targets
from softmass_core.training.fit import epochs_within
from softmass_core.training.train import TrainConfig, train_weight_set


def _tiny_cohort(root, per_class=(3, 2)):
    rng = np.random.default_rng(0)
    lines = ["case_id,cohort,label,gray_path,cdfi_path,gray_roi,cdfi_roi,age,sex"]
    labels = [lab for lab in COHORT_LABELS if lab != "benign"]
    for cohort, n in zip(("training", "validation"), per_class):
        for li, label in enumerate(labels):
            for k in range(n):
                cid = f"{cohort}-{label}-{k}"
                for kind in ("gray", "cdfi"):
                    img = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
                    img[10:38, 12:52] += np.uint8(30 * li)  # a class-dependent brightness
                    Image.fromarray(img).save(root / f"{cid}_{kind}.png")
                lines.append(f'{cid},{cohort},{label},{cid}_gray.png,{cid}_cdfi.png,"4,4,60,44",,40,M')
    (root / "cohort.csv").write_text("\n".join(lines) + "\n")
    return root / "cohort.csv"


def test_task_targets():
    y, m = task_targets(["malignant", "lipoma", "benign", "neurinoma"], "dlm1")
    assert y.tolist() == [1, 0, 0, 0] and m.all()
    y, m = task_targets(["malignant", "lipoma", "benign", "neurinoma"], "sm1")
    assert y.tolist() == [0, 1, 0, 0] and m.tolist() == [False, True, False, True]


def test_youden_threshold_separates_perfectly():
    y = np.array([0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    t = youden_threshold(y, s)
    assert 0.3 < t <= 0.7


@pytest.mark.slow
def test_train_smoke_writes_loadable_weight_set(tmp_path):
    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, pretrain_epochs=1, epochs=1, batch_size=16, seed=1)
    out = train_weight_set(
        csv, tmp_path / "ws", set_id="smoke", cfg=cfg, work_dir=tmp_path / "work", log=lambda s: None
    )
    from softmass_core.inference.cascade import Cascade, CaseImages
    from softmass_core.weights.weight_set import WeightSet

    ws = WeightSet.load(out)
    assert ws.has_dlm2 and ws.input_spec.width == 64
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["n_train_cases"] == 18
    assert "source" not in manifest["training"]  # a hand-made cohort: no generator record to keep
    assert "distributed" not in manifest["training"]  # one process: no torchrun record
    assert set(manifest["metrics"]["cohorts"]) == {"training", "validation"}
    assert set(manifest["metrics"]["cohorts"]["validation"]["dlm2"]) == set(SUBTYPES)
    assert manifest["test_time_augmentation"] == ["hflip"]
    digests = manifest["training"]["image_digests"]  # what evaluate checks a cohort against
    assert digests["n_training"] > 0 and digests["n_validation"] > 0 and (out / digests["file"]).is_file()
    for m in manifest["models"].values():
        assert 0.0 <= m["threshold"] <= 1.0 and "Youden" in m["threshold_method"]
        assert "mirrored view averaged" in m["threshold_method"]
    img = np.asarray(Image.open(tmp_path / "validation-lipoma-0_gray.png").convert("RGB"))
    res = Cascade(ws).run(CaseImages(gray=img), run_all=True)
    assert 0.0 <= res.p_malignant <= 1.0 and res.sub_scores is not None
    # a restarted run resumes finished models instead of retraining them
    logs: list[str] = []
    again = train_weight_set(csv, tmp_path / "ws2", set_id="smoke", cfg=cfg, work_dir=tmp_path / "work",
                             resume=True, evaluate_cohorts=False, log=logs.append)  # fmt: skip
    assert any("resumed" in line for line in logs)
    # its recorded training time still counts the fits done by the first process
    first = manifest["training"]
    fits = first["pretrain"]["seconds"] + sum(i["seconds"] for i in first["per_model"].values())
    second = json.loads((again / "manifest.json").read_text())["training"]
    assert second["seconds_in_earlier_processes"] == pytest.approx(fits, abs=0.5)
    assert second["seconds"] >= second["seconds_in_earlier_processes"]
    assert "a resumed run:" in (again / "README.md").read_text() and "seconds_in_earlier_processes" not in first


def test_bad_requests_are_clear(tmp_path):
    csv = _tiny_cohort(tmp_path)
    with pytest.raises(SoftmassError, match="no cohort named"):
        train_weight_set(csv, tmp_path / "x", set_id="x", cfg=TrainConfig(val_cohort="nope"), log=lambda s: None)
    with pytest.raises(SoftmassError, match="all five sub-models"):
        train_weight_set(csv, tmp_path / "x", set_id="x", cfg=TrainConfig(models=("dlm1", "sm1")), log=lambda s: None)
    with pytest.raises(SoftmassError, match="could not be fetched|HF_HUB_OFFLINE"):
        train_weight_set(
            csv, tmp_path / "x", set_id="x", log=lambda s: None,
            cfg=TrainConfig(arch="test_convnext", width=64, height=48, init="imagenet", epochs=1),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ("random", "use scratch, imagenet, checkpoint:FILE or pretrained:FILE"),
        ("checkpoint:/nonexistent.safetensors", "does not exist"),
        ("imagenet", "needs the model hub, and HF_HUB_OFFLINE is set"),  # the tests run offline (conftest)
    ],
)
def test_a_bad_init_is_refused_before_any_image_is_loaded(tmp_path, init, message):
    csv = _tiny_cohort(tmp_path)
    logs: list[str] = []
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, init=init, epochs=1)
    started = time.monotonic()
    with pytest.raises(SoftmassError, match=message):
        train_weight_set(csv, tmp_path / "x", set_id="x", cfg=cfg, log=logs.append, work_dir=tmp_path / "w")
    assert logs == []  # nothing was loaded or trained first
    assert not (tmp_path / "x").exists() and not (tmp_path / "w").exists()
    assert time.monotonic() - started < 30  # one attempt, not a minute of hub retries


def test_a_run_that_fails_after_starting_leaves_no_empty_folders(tmp_path, monkeypatch):
    import softmass_core.training.train as train_module

    def broken(*args, **kwargs):
        raise SoftmassError("disk full")

    monkeypatch.setattr(train_module, "load_images", broken)
    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, epochs=1)
    with pytest.raises(SoftmassError, match="disk full"):
        train_weight_set(csv, tmp_path / "out" / "x", set_id="x", cfg=cfg, work_dir=tmp_path / "w")
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "w").exists()


def test_train_command_asks_what_the_images_are_unless_the_phantom_made_them(tmp_path, capsys):
    from softmass_core.cli import main

    csv = _tiny_cohort(tmp_path)
    rc = main(["train", "--cohort", str(csv), "--out", str(tmp_path / "o"), "--id", "x", "--arch", "test_convnext",
               "--size", "64x48", "--work-dir", str(tmp_path / "w")])  # fmt: skip
    assert rc == 2 and "--data-kind is needed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    from softmass_core.cli.train import _inferred_data_kind

    (tmp_path / "phantom.json").write_text('{"generator": "softmass phantom"}')
    assert _inferred_data_kind(str(csv)) == "simulated"
    assert "phantom.json" in capsys.readouterr().err


def test_epochs_within_fits_the_schedule_to_the_time_left():
    # 2 epochs took 20 s of a 100 s budget at 10 s each: 8 more fit
    assert epochs_within(160, done=2, elapsed=20.0, per_epoch=10.0, limit=100.0) == 10
    # never more than planned, never fewer than one more epoch
    assert epochs_within(5, done=2, elapsed=20.0, per_epoch=10.0, limit=1000.0) == 5
    assert epochs_within(160, done=2, elapsed=120.0, per_epoch=10.0, limit=100.0) == 3


@pytest.mark.slow
def test_pretrain_time_limit_stops_and_is_recorded(tmp_path):
    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(
        arch="test_convnext", width=64, height=48, pretrain_epochs=50, pretrain_patience=50, epochs=1,
        batch_size=16, seed=1, pretrain_time_limit=1e-6,
    )  # fmt: skip
    logs: list[str] = []
    out = train_weight_set(
        csv, tmp_path / "ws", set_id="limited", cfg=cfg, work_dir=tmp_path / "work", evaluate_cohorts=False,
        log=logs.append,
    )  # fmt: skip
    pre = json.loads((out / "manifest.json").read_text())["training"]["pretrain"]
    assert pre["epochs_run"] == 1 and pre["stopped_by"] == "time limit 1e-06 s"
    assert json.loads((out / "manifest.json").read_text())["training"]["config"]["pretrain_time_limit"] == 1e-6
    assert any("[pretrain] time limit" in line for line in logs)


def test_augment_is_seeded_and_stays_on_the_input_device():
    import torch

    from softmass_core.training.data import augment as _augment
    from softmass_core.training.data import autocast as _autocast

    cfg = TrainConfig()
    x = torch.rand(4, 3, 24, 32)
    a = _augment(x, cfg, torch.Generator().manual_seed(3))
    b = _augment(x, cfg, torch.Generator().manual_seed(3))
    c = _augment(x, cfg, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.device == x.device and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    # no autocast on the CPU: training there stays in float32
    with _autocast(torch.device("cpu")):
        assert torch.nn.Linear(3, 2)(torch.ones(1, 3)).dtype == torch.float32


def test_unknown_or_missing_device_is_a_clear_error(tmp_path):
    import torch

    csv = _tiny_cohort(tmp_path)
    with pytest.raises(SoftmassError, match="Unknown device 'tpu'; use cpu or cuda"):
        train_weight_set(csv, tmp_path / "x", set_id="x", cfg=TrainConfig(device="tpu"), log=lambda s: None)
    if not torch.cuda.is_available():
        with pytest.raises(SoftmassError, match="no CUDA GPU is visible; use --device cpu"):
            train_weight_set(csv, tmp_path / "x", set_id="x", cfg=TrainConfig(device="cuda"), log=lambda s: None)


class _Killed(Exception):
    pass


def _kill_at(marker: str, logs: list[str]):
    def log(line: str) -> None:
        logs.append(line)
        if line.startswith(marker):
            raise _Killed(line)

    return log


@pytest.mark.slow
def test_an_interrupted_pretraining_resumes_bit_for_bit(tmp_path):
    import torch
    from safetensors.numpy import load_file

    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(
        arch="test_convnext", width=64, height=48, pretrain_epochs=4, pretrain_patience=10, epochs=2, patience=5,
        batch_size=16, seed=3,
    )  # fmt: skip
    whole = train_weight_set(csv, tmp_path / "whole", set_id="r", cfg=cfg, work_dir=tmp_path / "w1",
                             evaluate_cohorts=False, log=lambda s: None)  # fmt: skip
    # killed while epoch 3 of the pretraining is being reported: epochs 1-2 are checkpointed
    logs: list[str] = []
    with pytest.raises(_Killed):
        train_weight_set(csv, tmp_path / "cut", set_id="r", cfg=cfg, work_dir=tmp_path / "w2",
                         evaluate_cohorts=False, log=_kill_at("[pretrain] epoch 3:", logs))  # fmt: skip
    assert (tmp_path / "w2" / "pretrain.ckpt").exists() and not (tmp_path / "w2" / "pretrain.safetensors").exists()
    before_cut = torch.load(tmp_path / "w2" / "pretrain.ckpt", weights_only=True)["seconds"]
    logs.clear()
    cut = train_weight_set(csv, tmp_path / "cut", set_id="r", cfg=cfg, work_dir=tmp_path / "w2", resume=True,
                           evaluate_cohorts=False, log=logs.append)  # fmt: skip
    assert any(line.startswith("[pretrain] resumed after epoch 2 of 4") for line in logs)
    assert not any(line.startswith("[pretrain] epoch 2:") for line in logs)  # not trained again
    assert not list((tmp_path / "w2").glob("*.ckpt"))  # finished models leave no checkpoint behind
    for f in ("pretrain.safetensors", "dlm1.safetensors", "sm3.safetensors"):
        a, b = load_file(tmp_path / "w1" / f), load_file(tmp_path / "w2" / f)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    m_whole = json.loads((whole / "manifest.json").read_text())["training"]
    m_cut = json.loads((cut / "manifest.json").read_text())["training"]

    def timeless(info):
        return {k: v for k, v in info.items() if k != "seconds"}

    assert timeless(m_cut["pretrain"]) == timeless(m_whole["pretrain"]) and m_cut["pretrain"]["epochs_run"] == 4
    assert {m: timeless(i) for m, i in m_cut["per_model"].items()} == {
        m: timeless(i) for m, i in m_whole["per_model"].items()
    }
    # the epochs done before the cut count in the recorded time of the pretraining and of the run
    assert m_cut["seconds_in_earlier_processes"] == pytest.approx(before_cut, abs=0.05)
    assert m_cut["pretrain"]["seconds"] > before_cut and m_cut["seconds"] > m_cut["pretrain"]["seconds"]
    # the epochs after the cut (not only the best state) match: losses and validation AUCs per epoch
    h_whole, h_cut = (
        [(e["epoch"], e["loss"], e["val_auc"]) for e in json.loads((w / "train_state.json").read_text())["pretrain"]["history"]]
        for w in (tmp_path / "w1", tmp_path / "w2")
    )  # fmt: skip
    assert len(h_cut) == 4 and h_cut == h_whole


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    csv = _tiny_cohort(tmp_path)
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, pretrain_epochs=3, epochs=1, batch_size=16, seed=3)
    with pytest.raises(_Killed):
        train_weight_set(csv, tmp_path / "a", set_id="r", cfg=cfg, work_dir=tmp_path / "w", evaluate_cohorts=False,
                         log=_kill_at("[pretrain] epoch 2:", []))  # fmt: skip
    other = TrainConfig(**{**cfg.__dict__, "lr": cfg.lr / 2})
    with pytest.raises(SoftmassError, match="other settings.*new --work-dir"):
        train_weight_set(csv, tmp_path / "a", set_id="r", cfg=other, work_dir=tmp_path / "w", resume=True,
                         evaluate_cohorts=False, log=lambda s: None)  # fmt: skip
    (tmp_path / "w" / "pretrain.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SoftmassError, match="cannot be read.*delete it"):
        train_weight_set(csv, tmp_path / "a", set_id="r", cfg=cfg, work_dir=tmp_path / "w", resume=True,
                         evaluate_cohorts=False, log=lambda s: None)  # fmt: skip


_HOLD_LOCK = """
import sys
from pathlib import Path
from softmass_core.training.train import work_dir_lock
with work_dir_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def _hold_lock_in_another_process(work):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(work)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.slow  # a second Python process that imports torch
def test_a_second_run_on_a_busy_work_dir_is_refused_and_a_dead_holder_blocks_nothing(tmp_path, capsys):
    from softmass_core.cli import main
    from softmass_core.training.train import LOCK_NAME, work_dir_lock

    csv = _tiny_cohort(tmp_path)
    work = tmp_path / "work"
    holder = _hold_lock_in_another_process(work)
    try:
        logs: list[str] = []
        cfg = TrainConfig(arch="test_convnext", width=64, height=48, pretrain_epochs=1, epochs=1, batch_size=16)
        with pytest.raises(SoftmassError, match=rf"Another training run \(pid {holder.pid} since .*\) is using"):
            train_weight_set(csv, tmp_path / "ws", set_id="busy", cfg=cfg, work_dir=work, log=logs.append)
        assert logs == []  # refused before any image was loaded
        assert list(work.iterdir()) == [work / LOCK_NAME]  # and nothing of the holder's was touched
        rc = main(["train", "--cohort", str(csv), "--out", str(tmp_path / "ws"), "--id", "busy",
                   "--work-dir", str(work), "--arch", "test_convnext", "--size", "64x48", "--resume",
                   "--data-kind", "test"])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1
        assert "Another training run" in err and "--work-dir" in err and "Traceback" not in err
    finally:
        holder.kill()  # killed, so it never released the lock itself
        holder.wait()
    assert (work / LOCK_NAME).exists()  # the file stays behind, but the lock died with its process
    with work_dir_lock(work):
        assert (work / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} since ")
    assert not (tmp_path / "ws").exists()


def test_a_task_with_one_class_is_refused_before_anything_is_loaded_or_written(tmp_path):
    csv = _tiny_cohort(tmp_path)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(ln for ln in lines if not ln.startswith("training-lipoma-")) + "\n")
    logs: list[str] = []
    with pytest.raises(SoftmassError, match="Task sm1 has a single class in the training cohort"):
        train_weight_set(
            csv, tmp_path / "ws", set_id="x", cfg=TrainConfig(), work_dir=tmp_path / "work", log=logs.append
        )
    assert logs == [] and not (tmp_path / "work").exists() and not (tmp_path / "ws").exists()
    # DLM-1 alone does not need lipomas, so the same cohort passes that check
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, models=("dlm1",), pretrain_epochs=0, epochs=1)
    train_weight_set(csv, tmp_path / "ws", set_id="x", cfg=cfg, work_dir=tmp_path / "work", log=logs.append)
    assert (tmp_path / "ws" / "dlm1.safetensors").exists()


def test_a_set_trained_on_generated_cohorts_keeps_the_generators_record(tmp_path):
    from softmass_core.data.phantom import generate_cohorts

    csv = generate_cohorts(tmp_path / "ph", seed=12, scale=0.001, cohorts=["training", "validation"])
    cfg = TrainConfig(arch="test_convnext", width=64, height=48, models=("dlm1",), pretrain_epochs=0, epochs=1)
    out = train_weight_set(csv, tmp_path / "ws", set_id="x", cfg=cfg, work_dir=tmp_path / "work", log=lambda s: None)
    source = json.loads((out / "manifest.json").read_text())["training"]["source"]
    assert source == json.loads((tmp_path / "ph" / "phantom.json").read_text())
    assert source["seed"] == 12 and source["cohorts"] == {"training": 6, "validation": 6}


def test_case_scores_are_the_cascade_mean_fusion_of_each_cases_images():
    # train_fit.case_scores replaced a per-case sum/count of its own: the same numbers, bit for bit.
    from softmass_core.training.data import ImageTable
    from softmass_core.training.fit import case_scores

    rng = np.random.default_rng(5)
    n_cases = 300
    modalities, case_index = [], []
    for case in range(n_cases):
        for m in [("gray",), ("cdfi",), ("gray", "cdfi")][case % 3]:
            modalities.append(m)
            case_index.append(case)
    per_image = rng.random(len(case_index)).astype(np.float32)
    table = ImageTable(x=None, case_index=np.asarray(case_index), modalities=modalities,
                       labels=["lipoma"] * n_cases, case_ids=[str(i) for i in range(n_cases)])  # fmt: skip
    sums, counts = np.zeros(n_cases), np.zeros(n_cases)
    np.add.at(sums, table.case_index, per_image)
    np.add.at(counts, table.case_index, 1)
    assert np.array_equal(case_scores(per_image, table), sums / counts)


def test_the_learning_rate_warms_up_then_follows_a_cosine_to_zero():
    import math

    import torch

    from softmass_core.training.fit import _Schedule

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    sched = _Schedule(opt, 2e-3, total=10, warmup=2)
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])  # the rate this step runs at
        sched.step()
    cosine = [2e-3 * 0.5 * (1 + math.cos(math.pi * (k - 2) / 8)) for k in range(2, 10)]
    assert rates == [2e-3, 1e-3, *cosine]  # the first step at the optimiser's own rate
    assert opt.param_groups[0]["lr"] == 0.0  # annealed to zero at the end
