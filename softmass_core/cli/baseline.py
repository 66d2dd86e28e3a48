"""``baseline``: the histogram + logistic-regression baseline's AUC per task and cohort."""

from __future__ import annotations

import argparse
import json

HELP = "histogram + logistic-regression baseline on a cohort CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", required=True, metavar="CSV", help="cohort CSV (e.g. from `phantom`)")
    parser.add_argument("--train-cohort", default="training", help="cohort to fit on (default training)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the baseline's AUC per task and cohort."""
    from softmass_core.training.baseline import histogram_baseline

    res = histogram_baseline(args.cohort, train_cohort=args.train_cohort)
    if args.json:
        print(json.dumps(res, indent=2, allow_nan=True))
        return 0
    cohorts = list(next(iter(res.values())))
    print(f"{'task':<24}" + "".join(f"{c:>12}" for c in cohorts))
    for task, per in res.items():
        print(f"{task:<24}" + "".join(f"{per[c]:>12.3f}" for c in cohorts))
    return 0
