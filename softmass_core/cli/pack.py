"""``pack``: a complete weight set from checkpoints you already have (``.safetensors``, ``.pt``, ``.pth``, ``.bin``)."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import ProgressBar, invoked_command, parse_size
from softmass_core.errors import SoftmassError
from softmass_core.weights.manifest import DATA_KINDS, RESIZE_MODES, STORAGE_DTYPES

HELP = "make a weight set from your own checkpoints (timm, torchvision, DDP or training checkpoints)"


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip() or not rest.strip():
            raise SoftmassError(f"{option} {value!r}: write it as MODEL=VALUE, e.g. {option} dlm1=...")
        if key.strip() in out:
            raise SoftmassError(f"{option} {key.strip()} is given twice.")
        out[key.strip()] = rest.strip()
    return out


def _model_files(values: list[str] | None) -> dict[str, str | list[str]]:
    """``--model ID=FILE`` values: an id given several times, or ``ID=A,B``, makes an ensemble of those files."""
    out: dict[str, list[str]] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        files = [f.strip() for f in rest.split(",")]
        if not sep or not key.strip() or not all(files):
            raise SoftmassError(
                f"--model {value!r}: write it as MODEL=FILE, e.g. --model dlm1=best.pth (an ensemble: "
                "--model dlm1=fold1.pth,fold2.pth or the option once per member)"
            )
        out.setdefault(key.strip(), []).extend(files)
    return {m: f[0] if len(f) == 1 else f for m, f in out.items()}


def _triple(text: str | None, option: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise SoftmassError(f"{option} {text!r}: give three numbers, one per colour channel, e.g. 0.5,0.5,0.5.")
    return values  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="new weight-set folder (e.g. weights/my-set; must not hold files)")
    p.add_argument("--id", required=True, help="the set's id")
    p.add_argument("--arch", required=True, help="timm architecture name, e.g. convnext_tiny")
    p.add_argument("--input", required=True, metavar="WxH", help="input size the models were trained at, e.g. 470x280")
    p.add_argument("--mean", help="normalisation mean, three numbers (default ImageNet's)")
    p.add_argument("--std", help="normalisation std, three numbers (default ImageNet's)")
    p.add_argument("--resize-mode", choices=RESIZE_MODES, default="stretch", help="how an ROI is resized")
    p.add_argument(
        "--model", action="append", required=True, metavar="ID=FILE",
        help="a model's checkpoint: dlm1=FILE, and for DLM-2 all of sm1..sm5 (repeat the option); several files "
        "for one model (dlm1=A,B or dlm1=A --model dlm1=B) make it an ensemble whose probabilities are averaged",
    )  # fmt: skip
    p.add_argument(
        "--labels", action="append", metavar="ID=NEG,POS",
        help="the classes in the order of the checkpoint's head (default dlm1=benign,malignant, smN=other,SUBTYPE)",
    )  # fmt: skip
    p.add_argument("--data-kind", required=True, choices=DATA_KINDS, help="what the models learned from")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--description", default="", help="one line on what the set is")
    p.add_argument("--dtype", choices=STORAGE_DTYPES, help="storage precision (default: the checkpoint's)")
    p.add_argument("--cohort", help="cohort CSV with a validation cohort: thresholds and metrics come from it")
    p.add_argument("--val-cohort", default="validation", help="cohort the thresholds are chosen on")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from softmass_core.weights.manifest import InputSpec
    from softmass_core.weights.pack import UNVALIDATED, pack

    try:
        width, height = parse_size(args.input)
    except SoftmassError as exc:
        raise SoftmassError(str(exc).replace("--size", "--input")) from None
    spec_args = {"width": width, "height": height, "resize_mode": args.resize_mode}
    for name, option in (("mean", "--mean"), ("std", "--std")):
        value = _triple(getattr(args, name), option)
        if value is not None:
            spec_args[name] = value
    try:
        spec = InputSpec(**spec_args)
    except ValueError as exc:
        raise SoftmassError(f"--input/--mean/--std: {exc}") from None
    labels = {m: [v.strip() for v in text.split(",")] for m, text in _pairs(args.labels, "--labels").items()}
    out, packed = pack(
        args.out, set_id=args.id, arch=args.arch, input_spec=spec, models=_model_files(args.model),
        data_kind=args.data_kind, labels=labels, version=args.version, dtype=args.dtype,
        description=args.description, cohort_csv=args.cohort, val_cohort=args.val_cohort, n_boot=args.n_boot,
        command=invoked_command("pack"), progress=None if args.quiet or not args.cohort else ProgressBar("validate"),
    )  # fmt: skip
    for p in packed:
        steps = f" ({'; '.join(p.report.steps)})" if p.report.steps else ""
        print(f"{p.model_id:<5} {p.source.name}: {p.report.line()}, stored as {p.storage_dtype}{steps}")
    if args.cohort:
        print(f"thresholds chosen on '{args.val_cohort}' of {args.cohort}; metrics recorded")
    else:
        print(f"thresholds: {UNVALIDATED}; give --cohort to choose them on validation")
    print(f"weight set written to {out}")
    return 0
