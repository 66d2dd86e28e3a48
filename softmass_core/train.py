"""Training: ``python -m softmass_core train --cohort CSV --out weights/<id> ...``.

The paper's recipe, for DLM-1 and each DLM-2 sub-model alike: a ConvNeXt
whose classifier is replaced, ROI crops resized to the input size, random
scaling, random cropping, random flipping and normalisation as augmentation,
AdamW, class imbalance handled by class-weighted loss, model selection on the
validation cohort by AUC, early stopping, seeded.

Initialisation (``--init``):

* ``imagenet``: ``timm.create_model(..., pretrained=True)``; needs a reachable
  model hub, so it fails with a clear message on an offline machine;
* ``checkpoint:FILE``: a local state dict (safetensors, or a ``.pth`` read with
  ``torch.load(weights_only=True)``), every tensor whose name and shape fit;
* ``scratch``: random initialisation.

Without ImageNet weights, ``--pretrain-epochs N`` first trains one shared
multi-task network (DLM-1's task plus the five one-vs-rest subtype tasks on
benign images, one sigmoid output each) on the training cohort; every model
then starts from that backbone, with its classifier initialised from its
task's output, and is fine-tuned on its own task for ``--epochs`` epochs.
Fine-tuning keeps the starting point if no epoch improves validation AUC.

Each case contributes its grayscale and its CDFI image as two samples (the
paper's models take one image at a time); validation AUC is computed on the
case score (the weight set's fusion rule: mean of the two probabilities).
Model selection scores each validation image once; the written set's
operating thresholds (Youden's J on validation) and recorded metrics come
from the cascade as shipped, with its test-time views (``--tta``, default
``hflip``: each image averaged with its mirror).
Progress goes to stderr. ``--work-dir`` keeps every finished model and, for
the one in progress, a checkpoint of its last finished epoch: ``--resume``
skips the finished models and continues the unfinished one where it stopped.
A run holds a lock on its work dir, so a second run there is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softmass_core.errors import SoftmassError
from softmass_core.labels import DLM1, MALIGNANT, MODALITIES, SUBMODEL_IDS, SUBTYPES
from softmass_core.paths import make_dir

Log = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the manifest)."""

    arch: str = "convnext_atto"
    width: int = 470
    height: int = 280
    resize_mode: str = "stretch"
    models: tuple[str, ...] = (DLM1, *SUBMODEL_IDS)
    init: str = "scratch"
    pretrain_epochs: int = 0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    finetune_lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    patience: int = 4
    pretrain_patience: int = 10
    seed: int = 0
    scale_range: tuple[float, float] = (0.85, 1.2)
    shift: float = 0.08
    intensity: float = 0.15
    train_cohorts: tuple[str, ...] = ("training",)
    val_cohort: str = "validation"
    device: str = "auto"
    drop_path_rate: float = 0.1
    max_pos_weight: float = 20.0
    tta: tuple[str, ...] = ("hflip",)
    pretrain_time_limit: float = 0.0  # seconds; 0 = none

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------- data


@dataclass
class ImageTable:
    """Prepared images of a set of cases, in memory."""

    x: Any  # torch.Tensor (N, 3, H, W) float16, normalised
    case_index: np.ndarray  # (N,) row index into ``labels``
    labels: list[str]  # per case
    case_ids: list[str]


def _load_images(rows, spec, log: Log) -> ImageTable:
    import torch

    from softmass_core.images import load_image
    from softmass_core.roi import prepare

    arrays, case_index = [], []
    for i, row in enumerate(rows):
        for m in MODALITIES:
            if m in row.paths:
                img = load_image(row.paths[m])
                arrays.append(prepare(img.rgb, row.rois.get(m), spec).array.astype(np.float16))
                case_index.append(i)
    if not arrays:
        raise SoftmassError("No images to train on.")
    log(f"loaded {len(arrays)} images of {len(rows)} cases")
    return ImageTable(
        x=torch.from_numpy(np.stack(arrays)),
        case_index=np.asarray(case_index),
        labels=[r.label for r in rows],
        case_ids=[r.case_id for r in rows],
    )


def task_targets(labels: Sequence[str], task: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, mask) per case for ``task`` ("dlm1" or "smK"); mask = case counts for the task."""
    labels = list(labels)
    if task == DLM1:
        y = np.array([lab == MALIGNANT for lab in labels], dtype=np.float32)
        return y, np.ones(len(labels), dtype=bool)
    subtype = SUBMODEL_IDS[task]
    y = np.array([lab == subtype for lab in labels], dtype=np.float32)
    mask = np.array([lab in SUBTYPES for lab in labels], dtype=bool)
    return y, mask


def _augment(x, cfg: TrainConfig, gen):
    """Random scaling, random crop (shift), horizontal flip and intensity jitter on a batch.

    The random draws come from ``gen`` on the CPU whatever ``x``'s device, so a
    seed gives the same augmentation on a GPU as on the CPU.
    """
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    lo, hi = cfg.scale_range
    scale = torch.empty(n).uniform_(lo, hi, generator=gen)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx = torch.empty(n).uniform_(-cfg.shift, cfg.shift, generator=gen) * 2
    ty = torch.empty(n).uniform_(-cfg.shift, cfg.shift, generator=gen) * 2
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip / scale
    theta[:, 1, 1] = 1.0 / scale
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = 1.0 + torch.empty(n, 1, 1, 1).uniform_(-cfg.intensity, cfg.intensity, generator=gen)
    bright = torch.empty(n, 1, 1, 1).uniform_(-cfg.intensity, cfg.intensity, generator=gen)
    return out * contrast.to(x.device) + bright.to(x.device)


def _autocast(device):
    """bf16 autocast on a CUDA device (about twice the speed); plain fp32 on the CPU."""
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


# --------------------------------------------------------------------------- models


def _new_model(cfg: TrainConfig, num_classes: int):
    import timm

    from softmass_core.manifest import Architecture
    from softmass_core.models import build_model

    if cfg.init == "imagenet":
        try:
            return timm.create_model(
                cfg.arch, pretrained=True, num_classes=num_classes, drop_path_rate=cfg.drop_path_rate
            )
        except Exception as exc:  # noqa: BLE001 - any hub failure means "not reachable"
            raise SoftmassError(
                f"ImageNet weights for {cfg.arch} could not be fetched ({type(exc).__name__}: {exc}). "
                "This machine may be offline: use --init scratch, --pretrain-epochs N, or --init checkpoint:FILE."
            ) from None
    model = build_model(Architecture(cfg.arch, {"drop_path_rate": cfg.drop_path_rate}), num_classes)
    if cfg.init.startswith("checkpoint:"):
        _load_partial(model, Path(cfg.init.split(":", 1)[1]))
    return model


def work_dir_for(set_id: str, work_dir: str | Path | None = None) -> Path:
    """Where a training run keeps its intermediate files: ``work_dir``, else ``runs/<set id>``."""
    return Path(work_dir) if work_dir else Path("runs") / set_id


LOCK_NAME = "train.lock"


@contextlib.contextmanager
def work_dir_lock(work: Path) -> Iterator[None]:
    """Hold ``work/train.lock`` for one training run; refuse a second run on the same work dir.

    Two runs on one work dir overwrite each other's checkpoints. The lock is an
    operating-system file lock, so it is released when its process ends in any
    way (finished, Ctrl-C, killed): a stale lock file never blocks a later run.
    """
    path = make_dir(work, "--work-dir") / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise SoftmassError(
            f"Cannot write in the work dir {work} ({e.strerror}); pass a writable --work-dir."
        ) from None
    try:
        if not _try_lock(fd):
            holder = _lock_holder(path)
            raise SoftmassError(
                f"Another training run{holder} is using the work dir {work}. Wait for it to finish, or stop it "
                "(Ctrl-C) and then add --resume; to train side by side, give this run its own --work-dir."
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False when another process holds it."""
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:  # e.g. a network file system without locks: say so rather than train unguarded
        raise SoftmassError(
            f"Cannot lock a file in the work dir ({e.strerror}); pass a --work-dir on a local disk."
        ) from None
    return True


def _lock_holder(path: Path) -> str:
    """' (pid N since TIME)' from the lock file, or '' when it cannot be read."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return f" ({text})" if text.startswith("pid ") else ""


def _check_init(init: str) -> None:
    """Refuse an ``--init`` that cannot work, before any image is loaded."""
    if init.startswith("checkpoint:"):
        path = Path(init.split(":", 1)[1])
        if not path.is_file():
            raise SoftmassError(f"--init {init!r}: checkpoint {path} does not exist.")
    elif init not in ("scratch", "imagenet"):
        raise SoftmassError(f"--init {init!r}: use scratch, imagenet or checkpoint:FILE.")


def _load_partial(model, path: Path) -> int:
    """Copy every tensor of ``path`` whose name and shape fit ``model``; return how many."""
    import torch

    if not path.is_file():
        raise SoftmassError(f"Checkpoint {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise SoftmassError(f"{path} is not a plain state dict readable with weights_only=True ({exc}).") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fit:
        raise SoftmassError(f"No tensor of {path} fits {type(model).__name__}: is it the same architecture?")
    own.update({k: v.to(own[k].dtype) for k, v in fit.items()})
    model.load_state_dict(own)
    return len(fit)


def _two_class_from_task(model_multi, task_index: int, cfg: TrainConfig):
    """A 2-class model with the multi-task backbone; softmax = sigmoid of the task's logit."""
    import torch

    model = _new_model(TrainConfig(**{**cfg.__dict__, "init": "scratch"}), 2)
    state = {k: v.clone() for k, v in model_multi.state_dict().items() if not k.startswith("head.fc.")}
    w = model_multi.head.fc.weight.detach()[task_index]
    b = model_multi.head.fc.bias.detach()[task_index]
    state["head.fc.weight"] = torch.stack([-w / 2, w / 2])
    state["head.fc.bias"] = torch.stack([-b / 2, b / 2])
    model.load_state_dict(state)
    return model


class _Schedule:
    """Linear warm-up then cosine decay, per step."""

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


def _checkpoint_key(name: str, cfg: TrainConfig, tasks: list[str], planned: int) -> dict[str, Any]:
    """What a checkpoint belongs to; a resumed run must match it (the device may differ)."""
    conf = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    return {"name": name, "tasks": list(tasks), "epochs_planned": planned, "config": json.dumps(conf, sort_keys=True)}


def _write_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a run killed while writing keeps the previous checkpoint


def _read_checkpoint(path: Path, want: dict[str, Any]) -> dict[str, Any]:
    import torch

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


def _predict(model, x, device, batch: int = 64) -> np.ndarray:
    """Sigmoid/softmax-positive outputs (N, C) for a float16 image tensor."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad(), _autocast(device):
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch].to(device, dtype=torch.float32)
            outs.append(model(xb).float().cpu())
    return torch.cat(outs).numpy()


def _case_scores(per_image: np.ndarray, table: ImageTable) -> np.ndarray:
    """Mean over each case's images (the default fusion rule)."""
    n = len(table.labels)
    sums = np.zeros(n)
    counts = np.zeros(n)
    np.add.at(sums, table.case_index, per_image)
    np.add.at(counts, table.case_index, 1)
    return sums / np.maximum(counts, 1)


def _fit(
    model,
    train: ImageTable,
    val: ImageTable,
    *,
    tasks: list[str],
    multitask: bool,
    epochs: int,
    lr: float,
    cfg: TrainConfig,
    device,
    log: Log,
    name: str,
    keep_initial: bool,
    patience: int | None = None,
    time_limit: float = 0.0,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Train ``model``; return the best state (by validation AUC) and its history.

    ``time_limit`` (seconds, 0 = none): after the second epoch the schedule is
    fitted to the time left (:func:`epochs_within`), and training ends after
    the first epoch that finishes past the limit, like early stopping; the
    returned info says which (``stopped_by``, ``epochs_scheduled``).

    ``checkpoint``: after every epoch the whole state of the run (weights,
    optimiser, schedule, random generators, best state so far, history, time
    spent) is written there; with ``resume`` an existing checkpoint is
    continued from its last finished epoch, and on the CPU the result is the
    same, bit for bit, as a run that was never interrupted.
    """
    import copy

    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from softmass_core.stats.roc import rank_auc

    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.to(device)
    # Per-image targets and masks for every task.
    tgt, msk = [], []
    for t in tasks:
        y, m = task_targets(train.labels, t)
        tgt.append(y[train.case_index])
        msk.append(m[train.case_index])
    y_img = torch.from_numpy(np.stack(tgt, 1))
    m_img = torch.from_numpy(np.stack(msk, 1))
    usable = m_img.any(1).numpy()
    idx_all = np.flatnonzero(usable)
    pos = (y_img * m_img).sum(0)
    neg = ((1 - y_img) * m_img).sum(0)
    pos_weight = torch.clamp(neg / pos.clamp(min=1), max=cfg.max_pos_weight)

    def val_auc(m) -> tuple[float, dict[str, float]]:
        out = _predict(m, val.x, device)
        if multitask:
            probs = 1 / (1 + np.exp(-out))
        else:
            e = np.exp(out - out.max(1, keepdims=True))
            probs = (e / e.sum(1, keepdims=True))[:, 1:2]
        aucs = {}
        for j, t in enumerate(tasks):
            s = _case_scores(probs[:, j], val)
            y, mask = task_targets(val.labels, t)
            aucs[t] = rank_auc(y[mask], s[mask])
        finite = [a for a in aucs.values() if math.isfinite(a)]
        return (float(np.mean(finite)) if finite else float("nan")), aucs

    params_decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    params_plain = [p for n, p in model.named_parameters() if p.ndim <= 1]
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": params_decay, "weight_decay": cfg.weight_decay}, {"params": params_plain, "weight_decay": 0.0}],
        lr=lr,
    )
    steps_per_epoch = max(1, math.ceil(len(idx_all) / cfg.batch_size))
    sched = _Schedule(opt, lr, epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch))
    history: list[dict[str, Any]] = []
    best_state, best_auc, best_epoch, stale = None, -1.0, -1, 0
    resuming = resume and checkpoint is not None and checkpoint.exists()
    key = _checkpoint_key(name, cfg, tasks, epochs)
    if keep_initial and not resuming:
        auc0, per0 = val_auc(model)
        history.append({"epoch": 0, "val_auc": auc0, "val_auc_per_task": per0})
        best_state, best_auc, best_epoch = copy.deepcopy(model.state_dict()), auc0, 0
        log(f"[{name}] start: validation AUC {auc0:.4f}")
    patience = cfg.patience if patience is None else patience
    rng = np.random.default_rng(cfg.seed)
    stopped = "epochs"
    planned = epochs
    epoch = 0
    spent = 0.0  # seconds of this fit before the current process (a resumed run)
    if resuming:
        ck = _read_checkpoint(checkpoint, key)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.total, sched.step_n = ck["schedule_total"], ck["schedule_step"]
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        rng.bit_generator.state = ck["numpy_rng"]
        history, best_state = ck["history"], ck["best_state"]
        best_auc, best_epoch, stale = ck["best_auc"], ck["best_epoch"], ck["stale"]
        epoch, epochs, spent = ck["epoch"], ck["epochs"], ck["seconds"]
        log(f"[{name}] resumed after epoch {epoch} of {epochs} ({spent:.0f} s already spent)")
    fit_started = time.perf_counter() - spent
    while epoch < epochs:
        epoch += 1
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(idx_all)
        total_loss = torch.zeros((), device=device)
        bar = tqdm(
            range(0, len(order), cfg.batch_size), desc=f"{name} epoch {epoch}/{epochs}", file=sys.stderr, leave=False
        )
        for i in bar:
            bi = order[i : i + cfg.batch_size]
            if len(bi) < 2:
                continue
            xb = _augment(train.x[bi].to(device).float(), cfg, gen)
            yb, mb = y_img[bi].to(device), m_img[bi].to(device)
            with _autocast(device):
                out = model(xb)
            out = out.float()
            if multitask:
                loss_el = F.binary_cross_entropy_with_logits(
                    out, yb, pos_weight=pos_weight.to(device), reduction="none"
                )
                loss = (loss_el * mb).sum() / mb.sum().clamp(min=1)
            else:
                w = torch.stack([torch.tensor(1.0), pos_weight[0]]).to(device)
                loss = F.cross_entropy(out, yb[:, 0].long(), weight=w, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.detach() * len(bi)
        auc, per = val_auc(model)
        secs = time.perf_counter() - t0
        mean_loss = float(total_loss) / len(order)
        history.append({"epoch": epoch, "loss": mean_loss, "val_auc": auc, "val_auc_per_task": per, "seconds": secs})
        log(f"[{name}] epoch {epoch}: loss {mean_loss:.4f}, validation AUC {auc:.4f} ({secs:.0f} s)")
        if math.isfinite(auc) and auc > best_auc + 1e-4:
            best_state, best_auc, best_epoch, stale = copy.deepcopy(model.state_dict()), auc, epoch, 0
        else:
            stale += 1
            if stale >= patience:
                log(f"[{name}] early stop: no validation improvement for {patience} epochs")
                stopped = "early stop"
                break
        if time_limit > 0 and epoch < epochs:
            elapsed = time.perf_counter() - fit_started
            if elapsed > time_limit:
                log(f"[{name}] time limit: stopped after epoch {epoch} ({elapsed:.0f} s)")
                stopped = f"time limit {time_limit:g} s"
                break
            if epoch == 2:
                # Judged by the second epoch (the first carries start-up costs).
                fitted = epochs_within(epochs, done=epoch, elapsed=elapsed, per_epoch=secs, limit=time_limit)
                if fitted < epochs:
                    epochs = fitted
                    sched.total = epochs * steps_per_epoch
                    log(f"[{name}] time limit {time_limit:g} s: schedule cut from {planned} to {epochs} epochs")
        if checkpoint is not None and epoch < epochs:
            _write_checkpoint(
                checkpoint,
                {
                    "what": key,
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "schedule_total": sched.total, "schedule_step": sched.step_n,
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                    "numpy_rng": rng.bit_generator.state, "history": history, "best_state": best_state,
                    "best_auc": best_auc, "best_epoch": best_epoch, "stale": stale, "epoch": epoch,
                    "epochs": epochs, "seconds": time.perf_counter() - fit_started,
                },
            )  # fmt: skip
    if best_state is None:
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval().cpu()
    for p in model.parameters():
        p.requires_grad_(False)
    info = {"best_epoch": best_epoch, "best_val_auc": best_auc, "epochs_run": len(history) - int(keep_initial)}
    info["stopped_by"] = stopped
    # Seconds of this fit in every process that worked on it; spent_before: those of earlier processes.
    info["seconds"] = round(time.perf_counter() - fit_started, 1)
    info["spent_before"] = round(spent, 1)
    if epochs != planned:
        info["epochs_planned"], info["epochs_scheduled"] = planned, epochs
    return model, {**info, "history": history}


# --------------------------------------------------------------------------- main flow


def train_weight_set(
    cohort_csv: str | Path,
    out_dir: str | Path,
    *,
    set_id: str,
    version: str = "1.0.0",
    cfg: TrainConfig | None = None,
    data_kind: str = "simulated",
    description: str = "",
    work_dir: str | Path | None = None,
    resume: bool = False,
    evaluate_cohorts: bool = True,
    storage_dtype: str = "float16",
    log: Log | None = None,
) -> Path:
    """Train every model of ``cfg.models`` and write a complete weight-set folder."""
    import torch

    from softmass_core.cascade import Cascade
    from softmass_core.cli import invoked_command
    from softmass_core.cohort import read_cohort
    from softmass_core.evaluate import evaluate, record_metrics
    from softmass_core.manifest import Architecture, InputSpec
    from softmass_core.modelcard import update_manifest, write_model_card
    from softmass_core.models import framework_versions, resolve_device, save_safetensors
    from softmass_core.phantom import read_provenance
    from softmass_core.retune import operating_thresholds
    from softmass_core.weights import WeightSet, write_weight_set

    cfg = cfg or TrainConfig()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    unknown = [m for m in cfg.models if m not in (DLM1, *SUBMODEL_IDS)]
    if unknown:
        raise SoftmassError(f"Unknown model id(s) {unknown}; use dlm1 and sm1..sm5.")
    if any(m in SUBMODEL_IDS for m in cfg.models) and not all(m in cfg.models for m in SUBMODEL_IDS):
        raise SoftmassError("DLM-2 needs all five sub-models: pass --models dlm1,sm1,sm2,sm3,sm4,sm5 or --models dlm1.")
    _check_init(cfg.init)
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    else:
        torch.backends.cudnn.benchmark = True
    cohort = read_cohort(cohort_csv)
    names = cohort.names
    missing = [c for c in (*cfg.train_cohorts, cfg.val_cohort) if c not in names]
    if missing:
        raise SoftmassError(
            f"{cohort_csv}: no cohort named {missing}; it has {names}. Use --train-cohorts/--val-cohort."
        )
    spec = InputSpec(width=cfg.width, height=cfg.height, resize_mode=cfg.resize_mode)
    train_rows = [r for r in cohort.rows if r.cohort in cfg.train_cohorts]
    val_rows = [r for r in cohort.rows if r.cohort == cfg.val_cohort]
    for t in cfg.models:
        y, m = task_targets([r.label for r in train_rows], t)
        if y[m].sum() == 0 or y[m].sum() == m.sum():
            raise SoftmassError(f"Task {t} has a single class in the training cohort; it cannot be trained.")
    work = work_dir_for(set_id, work_dir)
    with work_dir_lock(work):  # before any image is loaded, so a clash is reported at once
        make_dir(out_dir, "--out")  # refused now rather than after hours of training
        log(f"training on {len(train_rows)} cases, selecting on {len(val_rows)} validation cases, device {device}")
        train = _load_images(train_rows, spec, log)
        val = _load_images(val_rows, spec, log)
        state_path = work / "train_state.json"
        state: dict[str, Any] = json.loads(state_path.read_text()) if resume and state_path.exists() else {}
        state.setdefault("models", {})
        arch = Architecture(cfg.arch, {})

        # Training seconds spent by earlier processes of a resumed run (finished or checkpointed fits); this
        # process's own wall time is added at the end, so the recorded time is the whole run's.
        earlier = 0.0
        pretrained = None
        if cfg.pretrain_epochs > 0:
            pre_file = work / "pretrain.safetensors"
            model_multi = _new_model(cfg, len(cfg.models))
            if resume and pre_file.exists() and "pretrain" in state:
                _load_partial(model_multi, pre_file)
                earlier += state["pretrain"].get("seconds", 0.0)
                log("[pretrain] resumed from work dir")
            else:
                model_multi, info = _fit(
                    model_multi, train, val, tasks=list(cfg.models), multitask=True, epochs=cfg.pretrain_epochs,
                    lr=cfg.lr, cfg=cfg, device=device, log=log, name="pretrain", keep_initial=False,
                    patience=cfg.pretrain_patience, time_limit=cfg.pretrain_time_limit,
                    checkpoint=work / "pretrain.ckpt", resume=resume,
                )  # fmt: skip
                save_safetensors(model_multi, pre_file)
                earlier += info.pop("spent_before")
                state["pretrain"] = info
                state_path.write_text(json.dumps(state, indent=2))
                (work / "pretrain.ckpt").unlink(missing_ok=True)
            pretrained = model_multi

        trained = {}
        for j, model_id in enumerate(cfg.models):
            file = work / f"{model_id}.safetensors"
            if resume and model_id in state["models"] and file.exists():
                model = _new_model(TrainConfig(**{**cfg.__dict__, "init": "scratch"}), 2)
                _load_partial(model, file)
                trained[model_id] = model.eval()
                earlier += state["models"][model_id].get("seconds", 0.0)
                log(f"[{model_id}] resumed from work dir")
                continue
            if pretrained is not None:
                model = _two_class_from_task(pretrained, j, cfg)
                lr, keep_initial = cfg.finetune_lr, True
            else:
                model = _new_model(cfg, 2)
                lr, keep_initial = cfg.lr, False
            model, info = _fit(
                model, train, val, tasks=[model_id], multitask=False, epochs=cfg.epochs, lr=lr, cfg=cfg,
                device=device, log=log, name=model_id, keep_initial=keep_initial,
                checkpoint=work / f"{model_id}.ckpt", resume=resume,
            )  # fmt: skip
            save_safetensors(model, file)
            earlier += info.pop("spent_before")
            state["models"][model_id] = info
            state_path.write_text(json.dumps(state, indent=2))
            (work / f"{model_id}.ckpt").unlink(missing_ok=True)
            trained[model_id] = model

        train_seconds = time.perf_counter() - started + earlier
        labels = {m: (["benign", MALIGNANT] if m == DLM1 else ["other", SUBMODEL_IDS[m]]) for m in trained}
        extra = {
            "training": {
                "cohort_csv": str(cohort_csv),
                "train_cohorts": list(cfg.train_cohorts),
                "validation_cohort": cfg.val_cohort,
                "n_train_cases": len(train_rows),
                "n_train_images": int(train.x.shape[0]),
                "n_validation_cases": len(val_rows),
                "config": cfg.to_dict(),
                "device": str(device),
                "seconds": round(train_seconds, 1),
                **({"seconds_in_earlier_processes": round(earlier, 1)} if earlier else {}),
                "pretrain": {k: v for k, v in state.get("pretrain", {}).items() if k != "history"},
                "per_model": {m: {k: v for k, v in i.items() if k != "history"} for m, i in state["models"].items()},
                "reproduce": invoked_command("train"),
                **({"source": source} if (source := read_provenance(cohort_csv)) else {}),
            },
            "framework": framework_versions(),
            "test_time_augmentation": list(cfg.tta),
        }
        out_dir = Path(out_dir)
        write_weight_set(
            out_dir, trained, set_id=set_id, version=version, architecture=arch, input_spec=spec, labels=labels,
            storage_dtype=storage_dtype, data_kind=data_kind, description=description, extra=extra,
        )  # fmt: skip
        # Operating thresholds: Youden's J on the validation cohort, scored as the
        # shipped set scores it (stored weights, fusion rule, test-time views).
        thresholds = operating_thresholds(Cascade(WeightSet.load(out_dir), device=device), cohort, cfg.val_cohort)

        def set_thresholds(manifest: dict[str, Any]) -> None:
            for model_id, (thr, how) in thresholds.items():
                manifest["models"][model_id]["threshold"] = thr
                manifest["models"][model_id]["threshold_method"] = how

        update_manifest(out_dir, set_thresholds)
        if evaluate_cohorts:
            ws = WeightSet.load(out_dir)
            ev = evaluate(Cascade(ws, device=device), cohort, progress=None)
            record_metrics(out_dir, ev)
            ev.write(work / "evaluation")
            log(f"evaluation written to {work / 'evaluation'}")
        else:
            write_model_card(out_dir)
        log(f"weight set written to {out_dir} in {time.perf_counter() - started:.0f} s")
        return out_dir


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", required=True, help="cohort CSV with training and validation cohorts")
    p.add_argument("--out", required=True, help="weight-set folder to write (e.g. weights/phantom)")
    p.add_argument("--id", required=True, help="weight-set id")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--description", default="")
    p.add_argument(
        "--data-kind", default="simulated", choices=("simulated", "breast_ultrasound", "soft_tissue_ultrasound", "test")
    )
    p.add_argument("--models", default="dlm1,sm1,sm2,sm3,sm4,sm5", help="comma list: dlm1 and optionally sm1..sm5")
    p.add_argument("--arch", default="convnext_atto", help="timm ConvNeXt name (convnext_tiny is the paper's size)")
    p.add_argument("--size", default="470x280", help="model input WxH (the paper: 470x280)")
    p.add_argument("--resize-mode", default="stretch", choices=("stretch", "pad"))
    p.add_argument("--init", default="scratch", help="scratch | imagenet | checkpoint:FILE")
    p.add_argument("--pretrain-epochs", type=int, default=0, help="shared multi-task pretraining epochs (0 = none)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--finetune-lr", type=float, default=5e-4)
    p.add_argument("--patience", type=int, default=4, help="early stopping of each model's training")
    p.add_argument("--pretrain-patience", type=int, default=10, help="early stopping of the multi-task pretraining")
    p.add_argument(
        "--pretrain-time-limit", type=float, default=0.0, metavar="SECONDS",
        help="end the multi-task pretraining after the first epoch that finishes past this many seconds "
        "(0 = no limit); the manifest records where it stopped",
    )  # fmt: skip
    p.add_argument("--train-cohorts", default="training")
    p.add_argument("--val-cohort", default="validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tta", default="hflip", choices=("hflip", "none"),
        help="test-time augmentation of the written set: hflip averages each image with its mirror (training "
        "flips at random); model selection scores one plain pass",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--storage-dtype", default="float16", choices=("float32", "float16"))
    p.add_argument("--work-dir", help="intermediate files (default runs/<id>)")
    p.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run from --work-dir: finished models are kept, the unfinished one continues "
        "after its last finished epoch (same settings required)",
    )  # fmt: skip
    p.add_argument("--no-evaluate", action="store_true", help="skip evaluating every cohort at the end")


def run_cli(args: argparse.Namespace) -> int:
    from softmass_core.cli import parse_size

    w, h = parse_size(args.size)
    cfg = TrainConfig(
        arch=args.arch, width=w, height=h, resize_mode=args.resize_mode,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()), init=args.init,
        pretrain_epochs=args.pretrain_epochs, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        finetune_lr=args.finetune_lr, patience=args.patience, pretrain_patience=args.pretrain_patience, seed=args.seed,
        train_cohorts=tuple(c.strip() for c in args.train_cohorts.split(",")), val_cohort=args.val_cohort,
        device=args.device, tta=() if args.tta == "none" else (args.tta,),
        pretrain_time_limit=args.pretrain_time_limit,
    )  # fmt: skip
    out = train_weight_set(
        args.cohort, args.out, set_id=args.id, version=args.version, cfg=cfg, data_kind=args.data_kind,
        description=args.description, work_dir=args.work_dir, resume=args.resume,
        evaluate_cohorts=not args.no_evaluate, storage_dtype=args.storage_dtype,
    )  # fmt: skip
    print(out)
    return 0
