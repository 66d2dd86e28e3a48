"""Fitting one model: the epoch loop, its learning-rate schedule, validation AUC on case scores, checkpoints.

:func:`fit_model` trains a model on an :class:`~softmass_core.training.data.ImageTable`
and keeps the state with the best validation AUC (case scores fused like
the cascade's ``mean`` rule), with early stopping, an optional time limit
and a checkpoint after every epoch from which a run resumes bit for bit on
the CPU.  :mod:`softmass_core.training.train` drives it for every model of a set.

Under ``torchrun`` (``ranks``, :mod:`softmass_core.distributed`) the model is
wrapped in DistributedDataParallel: every rank draws the same permutation of
the training images and takes its DistributedSampler share of it, in batches
of ``batch_size`` (so one step sees ``world_size x batch_size`` images), and
the gradients are averaged over the ranks.  Augmentation and drop-path draws
are reseeded at every epoch from (seed, epoch, rank), so a resumed
distributed run continues exactly too.  Validation runs on rank 0 and its
AUC (with the time-limit clock) is broadcast, so every rank keeps the same
best state and stops at the same epoch; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from softmass_core import distributed
from softmass_core.distributed import SINGLE, Ranks
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import fuse
from softmass_core.stats.roc import rank_auc
from softmass_core.training.data import ImageTable, augment, autocast, task_targets

if TYPE_CHECKING:
    from softmass_core.training.train import TrainConfig

Log = Callable[[str], None]
#: ``progress(stage, done, total)``: batches done of a stage such as "dlm1 epoch 3/10".
StageProgress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_key(name: str, cfg: TrainConfig, tasks: list[str], planned: int, ranks: Ranks) -> dict[str, Any]:
    """What a checkpoint belongs to; a resumed run must match it (the device may differ, the world size not)."""
    conf = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    key = {"name": name, "tasks": list(tasks), "epochs_planned": planned, "config": json.dumps(conf, sort_keys=True)}
    if ranks.distributed:  # each rank's share of the batches depends on it
        key["world_size"] = ranks.world_size
    return key


def _write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a run killed while writing keeps the previous checkpoint


def _read_checkpoint(path: Path, want: dict[str, Any]) -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file gets one clear message
        raise SoftmassError(
            f"{path} cannot be read ({type(e).__name__}); delete it to restart this model, or drop --resume."
        ) from None
    if ck.get("what") != want:
        raise SoftmassError(
            f"{path} belongs to a run with other settings, so --resume cannot continue it. "
            "Repeat the original command, or use a new --work-dir."
        )
    return ck


# --------------------------------------------------------------------------- one model's training


class _Schedule:
    """Linear warm-up then cosine decay, per step.

    The first step runs at the optimiser's own rate (``base_lr``), each
    later one at the rate set after the step before it.  Kept rather than
    ``timm.scheduler.CosineLRScheduler`` (``warmup_prefix=True``,
    ``warmup_lr_init=0``): timm's first step runs at 0, and it computes the
    curve in another order of floating-point operations, so its rate differs
    in the last bits at about a quarter of the steps (258 of 1120 for 160
    epochs of 7 steps); trained weights would change.
    """

    def __init__(self, optimizer, base_lr: float, total: int, warmup: int) -> None:
        self.opt, self.base, self.total, self.warmup, self.step_n = optimizer, base_lr, max(1, total), warmup, 0

    def step(self) -> None:
        self.step_n += 1
        if self.step_n <= self.warmup:
            lr = self.base * self.step_n / max(1, self.warmup)
        else:
            t = (self.step_n - self.warmup) / max(1, self.total - self.warmup)
            lr = self.base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        for g in self.opt.param_groups:
            g["lr"] = lr


def epochs_within(planned: int, *, done: int, elapsed: float, per_epoch: float, limit: float) -> int:
    """How many epochs fit in ``limit`` seconds, after ``done`` epochs took ``elapsed``.

    Training with a time limit refits its learning-rate schedule to this count,
    so the rate still anneals to zero instead of being cut off mid-cosine.
    Never more than ``planned``, never fewer than ``done + 1``.
    """
    fits = done + int(max(limit - elapsed, 0.0) // max(per_epoch, 1e-6))
    return max(min(planned, fits), done + 1)


def _predict(model, x, device, batch: int = 64) -> np.ndarray:
    """Sigmoid/softmax-positive outputs (N, C) for a float16 image tensor."""
    model.eval()
    outs = []
    with torch.no_grad(), autocast(device):
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch].to(device, dtype=torch.float32)
            outs.append(model(xb).float().cpu())
    return torch.cat(outs).numpy()


def case_scores(per_image: np.ndarray, table: ImageTable) -> np.ndarray:
    """(cases,) case scores: each case's image probabilities fused by the cascade's ``mean`` rule."""
    per_case: list[dict[str, float]] = [{} for _ in table.labels]
    for p, case, modality in zip(per_image, table.case_index, table.modalities, strict=True):
        per_case[case][modality] = float(p)
    return np.array([fuse(images, "mean") for images in per_case])


def _validation_auc(model, val: ImageTable, tasks: list[str], multitask: bool, device) -> tuple[float, dict]:
    """Mean validation AUC over ``tasks`` (case scores) and each task's AUC."""
    out = _predict(model, val.x, device)
    if multitask:
        probs = 1 / (1 + np.exp(-out))
    else:
        e = np.exp(out - out.max(1, keepdims=True))
        probs = (e / e.sum(1, keepdims=True))[:, 1:2]
    aucs = {}
    for j, t in enumerate(tasks):
        s = case_scores(probs[:, j], val)
        y, mask = task_targets(val.labels, t)
        aucs[t] = rank_auc(y[mask], s[mask])
    finite = [a for a in aucs.values() if math.isfinite(a)]
    return (float(np.mean(finite)) if finite else float("nan")), aucs


@dataclass
class _Targets:
    """Per-image targets and masks (N, tasks), the images any task uses, and the positive-class weights."""

    y: torch.Tensor
    mask: torch.Tensor
    usable: np.ndarray
    pos_weight: torch.Tensor


def _image_targets(train: ImageTable, tasks: list[str], max_pos_weight: float) -> _Targets:
    """Targets of every training image for ``tasks``; positives weighted by negatives/positives, capped."""
    tgt, msk = [], []
    for t in tasks:
        y, m = task_targets(train.labels, t)
        tgt.append(y[train.case_index])
        msk.append(m[train.case_index])
    y_img = torch.from_numpy(np.stack(tgt, 1))
    m_img = torch.from_numpy(np.stack(msk, 1))
    pos = (y_img * m_img).sum(0)
    neg = ((1 - y_img) * m_img).sum(0)
    pos_weight = torch.clamp(neg / pos.clamp(min=1), max=max_pos_weight)
    return _Targets(y_img, m_img, np.flatnonzero(m_img.any(1).numpy()), pos_weight)


def _optimizer(model, lr: float, weight_decay: float):
    """AdamW with weight decay on weights, none on biases and norms."""
    params_decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    params_plain = [p for n, p in model.named_parameters() if p.ndim <= 1]
    for p in model.parameters():
        p.requires_grad_(True)
    return torch.optim.AdamW(
        [{"params": params_decay, "weight_decay": weight_decay}, {"params": params_plain, "weight_decay": 0.0}], lr=lr
    )


def _loss(out, yb, mb, pos_weight, multitask: bool):
    """Class-weighted loss of a batch: per-task masked BCE (multi-task), else cross-entropy, label smoothing 0.05."""
    if multitask:
        loss_el = F.binary_cross_entropy_with_logits(out, yb, pos_weight=pos_weight.to(out.device), reduction="none")
        return (loss_el * mb).sum() / mb.sum().clamp(min=1)
    w = torch.stack([torch.tensor(1.0), pos_weight[0]]).to(out.device)
    return F.cross_entropy(out, yb[:, 0].long(), weight=w, label_smoothing=0.05)


def _train_epoch(
    model, train: ImageTable, targets: _Targets, order, *, cfg, multitask, opt, sched, gen, device,
    progress: StageProgress | None, stage: str, ranks: Ranks = SINGLE,
) -> float:  # fmt: skip
    """One pass over ``order`` (image indices, this rank's share) in batches; the mean training loss of every rank."""
    model.train()
    total_loss = torch.zeros((), device=device)
    starts = range(0, len(order), cfg.batch_size)
    if progress is not None:
        progress(stage, 0, len(starts))
    for k, i in enumerate(starts):
        bi = order[i : i + cfg.batch_size]
        if len(bi) >= 2:
            xb = augment(train.x[bi].to(device).float(), cfg, gen)
            yb, mb = targets.y[bi].to(device), targets.mask[bi].to(device)
            with autocast(device):
                out = model(xb)
            loss = _loss(out.float(), yb, mb, targets.pos_weight, multitask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach() * len(bi)
        if progress is not None:
            progress(stage, k + 1, len(starts))
    return float(distributed.all_reduce_sum(ranks, total_loss)) / (len(order) * ranks.world_size)


@dataclass
class _FitState:
    """Where a fit stands after each epoch (a checkpoint stores it)."""

    epochs: int
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, Any] | None = None
    best_auc: float = -1.0
    best_epoch: int = -1
    stale: int = 0
    spent: float = 0.0  # seconds of this fit before the current process (a resumed run)
    stopped: str = "epochs"


def _checkpoint_payload(key, run: _FitState, model, opt, sched, gen, rng, seconds: float) -> dict[str, Any]:
    return {
        "what": key,
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "schedule_total": sched.total, "schedule_step": sched.step_n,
        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state, "history": run.history, "best_state": run.best_state,
        "best_auc": run.best_auc, "best_epoch": run.best_epoch, "stale": run.stale, "epoch": run.epoch,
        "epochs": run.epochs, "seconds": seconds,
    }  # fmt: skip


def _restore(ck: dict[str, Any], run: _FitState, model, opt, sched, gen, rng) -> None:
    """Put a fit back where checkpoint ``ck`` left it (weights, optimiser, schedule, generators, history)."""
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.total, sched.step_n = ck["schedule_total"], ck["schedule_step"]
    gen.set_state(ck["generator"])
    torch.set_rng_state(ck["torch_rng"])
    rng.bit_generator.state = ck["numpy_rng"]
    run.history, run.best_state = ck["history"], ck["best_state"]
    run.best_auc, run.best_epoch, run.stale = ck["best_auc"], ck["best_epoch"], ck["stale"]
    run.epoch, run.epochs, run.spent = ck["epoch"], ck["epochs"], ck["seconds"]


def fit_model(
    model, train: ImageTable, val: ImageTable, *, tasks: list[str], multitask: bool, epochs: int, lr: float,
    cfg: TrainConfig, device, log: Log, name: str, keep_initial: bool, patience: int | None = None,
    time_limit: float = 0.0, checkpoint: Path | None = None, resume: bool = False,
    progress: StageProgress | None = None, ranks: Ranks = SINGLE, keep_last: bool = False,
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Train ``model``; return the best state (by validation AUC) and its history.

    ``keep_last``: return the state after the last epoch instead (a fixed
    schedule; validation AUC is then only logged, and with ``patience`` at
    least ``epochs`` nothing stops early).

    ``time_limit`` (seconds, 0 = none): after the second epoch the schedule is
    fitted to the time left (:func:`epochs_within`), and training ends after
    the first epoch that finishes past the limit, like early stopping; the
    returned info says which (``stopped_by``, ``epochs_scheduled``).

    ``checkpoint``: after every epoch the whole state of the run (weights,
    optimiser, schedule, random generators, best state so far, history, time
    spent) is written there; with ``resume`` an existing checkpoint is
    continued from its last finished epoch, and on the CPU the result is the
    same, bit for bit, as a run that was never interrupted.

    ``ranks``: this process's place in a ``torchrun`` run (see the module
    docstring); only rank 0 writes ``checkpoint``, every rank reads it to resume.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.to(device)
    net = _data_parallel(model, device, ranks)
    targets = _image_targets(train, tasks, cfg.max_pos_weight)
    opt = _optimizer(model, lr, cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(distributed.shard_size(len(targets.usable), ranks) / cfg.batch_size))
    sched = _Schedule(opt, lr, epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch))
    run = _FitState(epochs=epochs)
    resuming = resume and checkpoint is not None and checkpoint.exists()
    key = _checkpoint_key(name, cfg, tasks, epochs, ranks)
    if keep_initial and not resuming:
        auc0, per0 = _agreed_auc(model, val, tasks, multitask, device, ranks)
        run.history.append({"epoch": 0, "val_auc": auc0, "val_auc_per_task": per0})
        run.best_state, run.best_auc, run.best_epoch = copy.deepcopy(model.state_dict()), auc0, 0
        log(f"[{name}] start: validation AUC {auc0:.4f}")
    patience = cfg.patience if patience is None else patience
    rng = np.random.default_rng(cfg.seed)
    if resuming:
        _restore(_read_checkpoint(checkpoint, key), run, model, opt, sched, gen, rng)
        log(f"[{name}] resumed after epoch {run.epoch} of {run.epochs} ({run.spent:.0f} s already spent)")
    fit_started = time.perf_counter() - run.spent
    while run.epoch < run.epochs:
        run.epoch += 1
        t0 = time.perf_counter()
        if ranks.distributed:
            _reseed(cfg.seed, run.epoch, ranks.rank, gen)
        mean_loss = _train_epoch(
            net, train, targets, distributed.shard_order(rng.permutation(targets.usable), ranks), cfg=cfg,
            multitask=multitask, opt=opt, sched=sched, gen=gen, device=device, progress=progress,
            stage=f"{name} epoch {run.epoch}/{run.epochs}", ranks=ranks,
        )  # fmt: skip
        auc, per = _agreed_auc(model, val, tasks, multitask, device, ranks)
        secs = distributed.broadcast(ranks, time.perf_counter() - t0)  # rank 0's clock decides for all
        run.history.append(
            {"epoch": run.epoch, "loss": mean_loss, "val_auc": auc, "val_auc_per_task": per, "seconds": secs}
        )
        log(f"[{name}] epoch {run.epoch}: loss {mean_loss:.4f}, validation AUC {auc:.4f} ({secs:.0f} s)")
        if math.isfinite(auc) and auc > run.best_auc + 1e-4:
            run.best_state, run.best_auc, run.best_epoch, run.stale = (
                copy.deepcopy(model.state_dict()),
                auc,
                run.epoch,
                0,
            )
        else:
            run.stale += 1
            if run.stale >= patience:
                log(f"[{name}] early stop: no validation improvement for {patience} epochs")
                run.stopped = "early stop"
                break
        if time_limit > 0 and run.epoch < run.epochs:
            elapsed = distributed.broadcast(ranks, time.perf_counter() - fit_started)
            if elapsed > time_limit:
                log(f"[{name}] time limit: stopped after epoch {run.epoch} ({elapsed:.0f} s)")
                run.stopped = f"time limit {time_limit:g} s"
                break
            if run.epoch == 2:  # judged by the second epoch (the first carries start-up costs)
                fitted = epochs_within(run.epochs, done=run.epoch, elapsed=elapsed, per_epoch=secs, limit=time_limit)
                if fitted < run.epochs:
                    run.epochs = fitted
                    sched.total = run.epochs * steps_per_epoch
                    log(f"[{name}] time limit {time_limit:g} s: schedule cut from {epochs} to {run.epochs} epochs")
        if checkpoint is not None and run.epoch < run.epochs and ranks.main:
            seconds = time.perf_counter() - fit_started
            _write_checkpoint(checkpoint, _checkpoint_payload(key, run, model, opt, sched, gen, rng, seconds))
    if keep_last:
        run.best_state, run.best_epoch = copy.deepcopy(model.state_dict()), run.epoch
    return _best_model(model, run), _fit_info(run, keep_initial, epochs, time.perf_counter() - fit_started)


def _data_parallel(model, device, ranks: Ranks):
    """``model`` wrapped in DistributedDataParallel under torchrun (gradients averaged over ranks), else itself."""
    if not ranks.distributed:
        return model
    import warnings

    from torch.nn.parallel import DistributedDataParallel

    # A depthwise kernel (C, 1, 7, 7) gets its gradient with another stride on the size-1 axis than its
    # bucket view: the same memory layout, which DDP reports as a mismatch at every first backward.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _reseed(seed: int, epoch: int, rank: int, gen: torch.Generator) -> None:
    """Seed this rank's augmentation (``gen``) and torch's own draws (drop path) for ``epoch``."""
    state = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)
    gen.manual_seed(state)
    torch.manual_seed(state)


def _agreed_auc(model, val: ImageTable, tasks: list[str], multitask: bool, device, ranks: Ranks):
    """:func:`_validation_auc` on rank 0, the same numbers on every rank (so every rank selects alike)."""
    result = _validation_auc(model, val, tasks, multitask, device) if ranks.main else None
    return distributed.broadcast(ranks, result)


def _best_model(model, run: _FitState):
    """``model`` holding the best state of ``run``, on the CPU, in eval mode, frozen."""
    model.load_state_dict(run.best_state if run.best_state is not None else copy.deepcopy(model.state_dict()))
    model.eval().cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _fit_info(run: _FitState, keep_initial: bool, planned: int, seconds: float) -> dict[str, Any]:
    """What the manifest records of a fit (``seconds``: in every process; ``spent_before``: earlier ones)."""
    info: dict[str, Any] = {
        "best_epoch": run.best_epoch, "best_val_auc": run.best_auc, "epochs_run": len(run.history) - int(keep_initial),
        "stopped_by": run.stopped, "seconds": round(seconds, 1), "spent_before": round(run.spent, 1),
    }  # fmt: skip
    if run.epochs != planned:
        info["epochs_planned"], info["epochs_scheduled"] = planned, run.epochs
    return {**info, "history": run.history}
