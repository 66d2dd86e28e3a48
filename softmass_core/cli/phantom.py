"""``phantom``: simulated cohorts (grayscale + CDFI, three hospitals) written as PNGs and a cohort CSV."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import ProgressBar
from softmass_core.data.phantom import COHORT_PLAN, DEFAULT_DIFFICULTY

HELP = "generate simulated cohorts (gray + CDFI, three hospitals)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (images/ and cohort.csv)")
    parser.add_argument("--seed", type=int, default=2023, help="master seed (default 2023)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every class count (default 1.0)")
    parser.add_argument("--cohorts", default=None, help=f"comma list among {','.join(COHORT_PLAN)} (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--difficulty",
        type=float,
        default=DEFAULT_DIFFICULTY,
        help=f"overlap between classes, 0..1 (default {DEFAULT_DIFFICULTY})",
    )
    parser.add_argument(
        "--rescan-hospital",
        type=int,
        default=None,
        metavar="N",
        help="image the same patients on hospital N's scanner (cohorts named <cohort>_hN, same case ids); "
        "pairs with the original cohorts for `python -m softmass_core shift`",
    )


def run(args: argparse.Namespace) -> int:
    """Generate the cohorts with a progress bar on stderr (kept on screen when done); print the CSV path."""
    from softmass_core.data.phantom import generate_cohorts

    cohorts = None if not args.cohorts else [c for c in str(args.cohorts).split(",") if c.strip()]
    bar = ProgressBar("phantom", leave=True, terminal_only=False)
    try:
        path = generate_cohorts(
            args.out,
            seed=args.seed,
            scale=args.scale,
            cohorts=cohorts,
            workers=args.workers,
            difficulty=args.difficulty,
            progress=bar,
            rescan_hospital=args.rescan_hospital,
        )
    finally:
        bar.close()
    print(path)
    return 0
