"""``compare``: two weight sets on the same cohort, task by task: paired DeLong and McNemar."""

from __future__ import annotations

import argparse
import math
import sys

from softmass_core.cli._helpers import ProgressBar, print_json
from softmass_core.errors import SoftmassError
from softmass_core.stats.formatting import format_p

HELP = "compare two weight sets on one cohort CSV (paired DeLong of the AUCs, McNemar of the calls)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", action="append", required=True, help="a weight-set folder; give it twice (A, then B)")
    p.add_argument("--cohort", required=True, help="cohort CSV both sets are scored on")
    p.add_argument("--cohorts", help="comma-separated cohort names to keep (default: all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def _cell(est) -> str:
    if est.value is None or (isinstance(est.value, float) and math.isnan(est.value)):
        return "n/a"
    return f"{est.value:.3f} [{est.ci_low:.3f}, {est.ci_high:.3f}]"


def run(args: argparse.Namespace) -> int:
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.compare import compare_tasks
    from softmass_core.cohorts.evaluate import predict_cohort
    from softmass_core.inference.cascade import Cascade
    from softmass_core.labels import DLM1, SUBMODEL_IDS
    from softmass_core.weights.weight_set import WeightSet

    if len(args.weights) != 2:
        raise SoftmassError(f"Give --weights exactly twice (set A, then set B); got {len(args.weights)}.")
    sets = [WeightSet.load(folder) for folder in args.weights]
    cohort = read_cohort(args.cohort)
    keep = [c.strip() for c in args.cohorts.split(",")] if args.cohorts else None
    if keep:
        unknown = [c for c in keep if c not in cohort.names]
        if unknown:
            raise SoftmassError(f"--cohorts {','.join(unknown)}: not in {args.cohort} (it has {cohort.names}).")
        cohort = cohort.subset(keep)
    tables, thresholds = [], []
    for name, ws in zip("AB", sets, strict=True):
        progress = None if args.quiet else ProgressBar(f"set {name} ({ws.id})")
        tables.append(predict_cohort(Cascade(ws), cohort, batch_size=args.batch_size, progress=progress))
        thr = {DLM1: ws.entry(DLM1).threshold}
        if ws.has_dlm2:
            thr.update({subtype: ws.entry(sm).threshold for sm, subtype in SUBMODEL_IDS.items()})
        thresholds.append(thr)
    results = compare_tasks(tables[0], tables[1], thresholds[0], thresholds[1])
    from softmass_core.cohorts.overlap import image_hashes, overlap_sentence, set_overlap

    hashes = image_hashes(cohort)  # once, for both sets
    overlaps = {name: set_overlap(ws, cohort, hashes)[0] for name, ws in zip("ab", sets, strict=True)}
    for name, per in overlaps.items():
        for c, entry in (per or {}).items():
            if overlap_sentence(c, entry):
                print(f"warning: set {name.upper()}: {overlap_sentence(c, entry)}", file=sys.stderr)
    head = {"a": {"id": sets[0].id, "version": sets[0].version, "folder": str(args.weights[0])},
            "b": {"id": sets[1].id, "version": sets[1].version, "folder": str(args.weights[1])}}  # fmt: skip
    if args.json:
        print_json({"weights": head, "cohort_csv": str(args.cohort), "overlap": overlaps,
                    "comparisons": [r.to_dict() for r in results]})  # fmt: skip
        return 0
    print(f"A = {sets[0].id} {sets[0].version}, B = {sets[1].id} {sets[1].version}; paired on the same cases")
    print(f"{'cohort':<14} {'task':<24} {'n (pos)':>9}  {'AUC A':<22} {'AUC B':<22} {'A - B':<24} "
          f"{'DeLong p':>8}  {'acc A / B':>11}  {'McNemar p':>9}")  # fmt: skip
    for r in results:
        print(
            f"{r.cohort:<14} {r.task:<24} {f'{r.n} ({r.n_positive})':>9}  {_cell(r.auc_a):<22} {_cell(r.auc_b):<22} "
            f"{_cell(r.difference):<24} {format_p(r.p_delong):>8}  "
            f"{f'{r.accuracy_a:.3f}/{r.accuracy_b:.3f}':>11}  {format_p(r.mcnemar['p_value']):>9}"
        )
    if not results:
        print("no task has both classes in any cohort: nothing to compare")
    print("McNemar compares the two sets' correct calls, each at its own threshold (as in its manifest).")
    return 0
