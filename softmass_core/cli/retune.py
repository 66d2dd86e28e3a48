"""``retune``: re-choose a weight set's thresholds (and test-time augmentation) on its validation cohort."""

from __future__ import annotations

import argparse
import sys

from softmass_core.cli._helpers import ProgressBar
from softmass_core.inference.tta import VIEWS
from softmass_core.stats.calibration import temperature_line

HELP = "re-choose a weight set's thresholds (and test-time augmentation) on validation"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="weight-set folder to update in place")
    p.add_argument("--cohort", required=True, help="cohort CSV that holds the validation cohort")
    p.add_argument("--val-cohort", default="validation", help="cohort the thresholds are chosen on")
    p.add_argument("--tta", choices=(*VIEWS, "none"), help="test-time augmentation to set (default: keep)")
    p.add_argument("--version", help="new version; adds a changelog entry")
    p.add_argument(
        "--changes", metavar="TEXT",
        help="changelog text of the new --version (default: same weights, thresholds re-chosen); say so when the "
        "folder holds new weights",
    )  # fmt: skip
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-temperature", action="store_true",
        help="keep the models' temperatures (default: fit temperature scaling on validation first)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-input-check", action="store_true", help="do not (re)fit the input check")
    p.add_argument(
        "--input-check-train", metavar="COHORTS",
        help="comma list of cohorts the input check learns (default: the manifest's training.train_cohorts)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from softmass_core.training.retune import retune

    views = None if args.tta is None else ([] if args.tta == "none" else [args.tta])
    progress = None if args.quiet else ProgressBar("evaluate")
    out = retune(
        args.weights, args.cohort, val_cohort=args.val_cohort, views=views, version=args.version,
        changes=args.changes, n_boot=args.n_boot, seed=args.seed, progress=progress,
        temperature=not args.no_temperature,
        input_check=not args.no_input_check,
        input_check_train=[c.strip() for c in args.input_check_train.split(",")] if args.input_check_train else None,
    )  # fmt: skip
    print(f"test-time augmentation: {', '.join(out['test_time_augmentation']) or 'none'}")
    for m, t in out["temperature"].items():
        print(f"{m:<5} {temperature_line(t)}")
    for m, t in out["thresholds"].items():
        print(f"{m:<5} threshold {t['before']:.4f} -> {t['after']:.4f} ({t['how']})")
    for name, pt in (out.get("operating_points") or {}).items():
        note = f" ({pt['note']})" if pt.get("note") else ""
        print(
            f"dlm1 {name:<8} threshold {pt['threshold']:.4f}: validation sensitivity {pt['sensitivity']:.3f}, "
            f"specificity {pt['specificity']:.3f}{note}"
        )
    iv = out.get("interval")
    if iv:
        hw = "inf" if iv["logit_halfwidth"] is None else f"{iv['logit_halfwidth']:.4f}"
        tests = ", ".join(f"{c} {v['coverage']:.3f} (n={v['n']})" for c, v in iv["test_coverage"].items())
        print(
            f"dlm1 interval: logit half-width {hw} ({iv['method']}, alpha {iv['alpha']}); coverage validation "
            f"{iv['validation_coverage']:.3f} (n={iv['n']})" + (f", fresh re-drawings: {tests}" if tests else "")
        )
    print(f"metrics re-recorded for {', '.join(out['cohorts'])}")
    print(input_check_line(out["input_check"]))
    digests = out["image_digests"]
    print(digests.get("skipped") or f"image digests: {digests['n_training']} training and "
          f"{digests['n_validation']} validation images recorded ({digests['file']})")  # fmt: skip
    if out["stale"]:
        print(
            f"note: {' and '.join(out['stale'])} in the manifest were measured with the earlier settings; "
            "re-record them (shift --record, research/ablation.py).",
            file=sys.stderr,
        )
    return 0


def input_check_line(block: dict) -> str:
    """One line on what retune did with the input check."""
    if "skipped" in block:
        return f"input check: skipped ({block['skipped']})"
    limits = ", ".join(f"{m} {t:.2f}" for m, t in block["threshold"].items())
    rates = ", ".join(f"{m} {r:.1%}" for m, r in block["validation_flag_rate"].items() if r is not None)
    return f"input check: {block['method']}, limit {limits}; validation flagged {rates}"
