"""``busi-cohort``: a cohort CSV (and copies of the images) from the public BUSI breast-ultrasound set."""

from __future__ import annotations

import argparse

HELP = "cohort CSV from the public BUSI breast-ultrasound set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--busi", required=True, help="BUSI folder holding labels.csv and images/")
    p.add_argument("--out", required=True, help="cohort folder to write (e.g. data/busi)")
    p.add_argument("--margin", type=float, default=0.2, help="ROI margin around the mask box, fraction of its side")
    p.add_argument("--seed", type=int, default=42)


def run(args: argparse.Namespace) -> int:
    from softmass_core.data.busi import build_busi_cohort

    print(build_busi_cohort(args.busi, args.out, margin=args.margin, seed=args.seed))
    return 0
