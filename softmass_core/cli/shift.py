"""``shift``: scanner shift on identical lesions, paired AUCs of a cohort and its rescan."""

from __future__ import annotations

import argparse
import sys

from softmass_core.cli._helpers import ProgressBar, invoked_command, print_json

HELP = "scanner shift on identical lesions: paired AUCs of a cohort and its rescan"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="weight-set folder")
    p.add_argument("--original", required=True, help="cohort CSV of the cases as first scanned")
    p.add_argument("--rescan", required=True, help="cohort CSV of the same cases on another scanner")
    p.add_argument("--cohorts", help="comma list of cohort names to keep from --original (default: all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--record",
        metavar="KEY",
        help="also store the table in the weight set's manifest (scanner_shift.rescans.KEY) and rewrite its "
        "model card; the weight files and their sha256 are untouched",
    )


def run(args: argparse.Namespace) -> int:
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.shift import format_table, record, scanner_shift
    from softmass_core.inference.cascade import Cascade
    from softmass_core.weights.weight_set import WeightSet

    ws = WeightSet.load(args.weights)
    original = read_cohort(args.original).subset(args.cohorts.split(",") if args.cohorts else None)
    rescan = read_cohort(args.rescan)
    progress = None if args.quiet else ProgressBar("shift")
    rows = scanner_shift(Cascade(ws), original, rescan, batch_size=args.batch_size, progress=progress)
    if args.record:
        record(args.weights, args.record, rows, original=original, rescan=rescan, command=invoked_command("shift"))
    if args.json:
        print_json({"weight_set": {"id": ws.id, "version": ws.version}, "rows": rows})
        return 0
    print(f"weight set {ws.id} {ws.version}; difference = rescan - original, paired DeLong test", file=sys.stderr)
    print(format_table(rows))
    return 0
