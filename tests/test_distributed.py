"""Training and evaluation under torchrun: two CPU processes (gloo) against one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DistributedSampler

from softmass_core import distributed
from softmass_core.distributed import SINGLE, Ranks
from tests.conftest import ROOT
from tests.test_train import _tiny_cohort


def _torchrun(n: int, *args: str, cwd) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node n -m softmass_core ARGS`` in ``cwd`` (one thread per process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]
    return subprocess.run(
        [*cmd, "-m", "softmass_core", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(("n", "world"), [(7, 2), (8, 2), (10, 3), (2, 3)])
def test_each_rank_gets_the_distributed_samplers_share(n, world):
    order = np.random.default_rng(n).permutation(np.arange(100, 100 + n))  # one permutation, drawn alike by all
    shares = [distributed.shard_order(order, Ranks(world, r, r, world, "gloo")) for r in range(world)]
    for r, share in enumerate(shares):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)
        assert share.tolist() == order[list(sampler)].tolist()
        assert len(share) == distributed.shard_size(n, Ranks(world, r)) == len(sampler)
    assert set(np.concatenate(shares)) == set(order)  # every image is trained on in every epoch


def test_a_plain_run_is_one_process_and_the_helpers_do_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.launched_ranks() == SINGLE and distributed.init_from_env("cpu") == SINGLE
    assert SINGLE.main and not SINGLE.distributed
    assert distributed.broadcast(SINGLE, {"auc": 0.5}) == {"auc": 0.5}
    assert distributed.all_gather(SINGLE, [1, 2]) == [[1, 2]]
    assert distributed.shard_order(np.arange(5), SINGLE).tolist() == [0, 1, 2, 3, 4]
    assert float(distributed.all_reduce_sum(SINGLE, torch.tensor(3.0))) == 3.0
    distributed.agreed(SINGLE, None)
    with pytest.raises(distributed.SoftmassError, match="lock"):
        distributed.agreed(SINGLE, "the lock is held")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(distributed.SoftmassError, match="torchrun"):
        distributed.launched_ranks()


_TRAIN = ("--data-kind", "test", "--arch", "test_convnext", "--size", "64x48", "--models", "dlm1")
_TRAIN += ("--epochs", "2", "--batch-size", "8", "--device", "cpu", "--id", "dist")


@pytest.mark.slow
def test_torchrun_trains_on_two_cpu_processes(tmp_path):
    csv = _tiny_cohort(tmp_path)
    out = _torchrun(2, "train", "--cohort", str(csv), "--out", "ws", "--work-dir", "work", *_TRAIN, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ws"]  # rank 0 alone prints the set it wrote
    assert out.stderr.count("weight set written to ws") == 1  # and alone logs
    from softmass_core.weights.weight_set import WeightSet

    ws = WeightSet.load(tmp_path / "ws")
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    assert manifest["training"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert manifest["training"]["per_model"]["dlm1"]["epochs_run"] == 2 and ws.entry("dlm1").threshold is not None
    assert set(manifest["metrics"]["cohorts"]) == {"training", "validation"}


@pytest.mark.slow
def test_torchrun_refuses_a_held_work_dir_on_every_rank(tmp_path):
    from softmass_core.training.train import work_dir_lock

    csv = _tiny_cohort(tmp_path)
    with work_dir_lock(tmp_path / "work"):
        out = _torchrun(2, "train", "--cohort", str(csv), "--out", "ws", "--work-dir", "work", *_TRAIN, cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.count("error: Another training run (pid") == 2, out.stderr[-3000:]  # one line from each rank
    assert not (tmp_path / "ws").exists()


@pytest.mark.slow
def test_torchrun_evaluation_matches_one_process(tmp_path, tiny_weights):
    csv = _tiny_cohort(tmp_path)  # 30 cases: batches of 7 give rank 0 three batches, rank 1 two, the last short
    common = ("--weights", str(tiny_weights), "--cohort", str(csv), "--batch-size", "7", "--n-boot", "200", "--quiet")
    two = _torchrun(2, "evaluate", *common, "--out", "two", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "softmass_core", "evaluate", *common, "--out", "one"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.stdout == one.stdout  # the printed tables, once (rank 0 alone prints)
    p1, p2 = pd.read_csv(tmp_path / "one" / "predictions.csv"), pd.read_csv(tmp_path / "two" / "predictions.csv")
    assert len(p1) == 30 and list(p1["case_id"]) == list(p2["case_id"])
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)
    for name in ("metrics.json", "metrics.csv"):
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()


@pytest.mark.slow
def test_torchrun_evaluation_refuses_a_bad_out_on_every_rank(tmp_path, tiny_weights):
    csv = _tiny_cohort(tmp_path)
    (tmp_path / "taken").write_text("a file, not a folder")
    out = _torchrun(2, "evaluate", "--weights", str(tiny_weights), "--cohort", str(csv), "--out", "taken", cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.count("error: --out taken is a file") == 2, out.stderr[-3000:]  # one line from each rank
