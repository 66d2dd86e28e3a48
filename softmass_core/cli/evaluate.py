"""``evaluate``: a weight set on a cohort CSV; metrics with 95% CIs per cohort, optionally recorded in the set."""

from __future__ import annotations

import argparse
import math
import sys

from softmass_core.cli._helpers import ProgressBar, invoked_command, print_json
from softmass_core.errors import SoftmassError
from softmass_core.paths import make_dir
from softmass_core.weights.manifest import FUSION_RULES
from softmass_core.weights.operating import POINTS, point_text

HELP = "evaluate a weight set on a cohort CSV"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True)
    p.add_argument("--cohort", required=True, help="cohort CSV (see README)")
    p.add_argument("--cohorts", help="comma-separated cohort names to keep (default: all)")
    p.add_argument("--out", help="folder for predictions.csv, metrics.json, metrics.csv")
    p.add_argument("--fusion", choices=FUSION_RULES)
    p.add_argument("--threshold", type=float, help="DLM-1 threshold override (not with --operating-point)")
    p.add_argument(
        "--operating-point", choices=POINTS,
        help="DLM-1's operating point from the set (default balanced); metrics and pred_malignant are at it",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the models run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--record",
        action="store_true",
        help="also store the metrics in the weight set's manifest and model card (replacing those of the same "
        "cohorts); the weight files and their sha256 are untouched",
    )
    p.add_argument(
        "--record-replicate",
        metavar="KEY",
        help="store the metrics as an independent replicate (manifest replicates.KEY, its own model-card section) "
        "beside the set's tables instead of replacing them: for a fresh sample of cohorts the set was already "
        "measured on, e.g. phantom --seed 7 --scale 5",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate; under torchrun the ranks share the cases and rank 0 alone records, writes and prints."""
    from softmass_core import distributed

    ranks = distributed.init_from_env(args.device)
    try:
        return _evaluate(args, ranks)
    finally:
        distributed.close(ranks)


def _evaluate(args: argparse.Namespace, ranks) -> int:
    from softmass_core.cohorts.cohort import read_cohort
    from softmass_core.cohorts.evaluate import evaluate, record_metrics
    from softmass_core.cohorts.replicates import check_replicate, record_replicate
    from softmass_core.inference.cascade import Cascade
    from softmass_core.inference.input_check import add_cohort_rates, cohort_rates
    from softmass_core.weights.weight_set import WeightSet

    if args.record and args.record_replicate:
        raise SoftmassError(
            "Choose one: --record stores the set's own tables, --record-replicate KEY an independent sample beside them."
        )
    flag = "--record" if args.record else "--record-replicate" if args.record_replicate else None
    if flag and (args.fusion or args.threshold is not None):
        raise SoftmassError(
            f"{flag} stores the weight set's own operating point: drop --fusion and --threshold, "
            f"or evaluate without {flag}."
        )
    if args.threshold is not None and args.operating_point:
        raise SoftmassError("Give --operating-point or --threshold, not both.")
    if flag and args.operating_point not in (None, "balanced"):
        raise SoftmassError(
            f"{flag} stores the set's balanced point: drop --operating-point or evaluate without {flag}."
        )
    if args.out:  # before the cohort is scored, not after; rank 0's refusal reaches every rank
        from softmass_core import distributed

        distributed.main_first(ranks, lambda: make_dir(args.out, "--out"))
    ws = WeightSet.load(args.weights)
    if args.record_replicate:
        check_replicate(args.weights, args.record_replicate, args.cohort)  # before the cohort is scored
    cohort = read_cohort(args.cohort).subset(args.cohorts.split(",") if args.cohorts else None)
    cascade = Cascade(
        ws, fusion_rule=args.fusion, threshold=args.threshold, device=args.device, operating_point=args.operating_point
    )  # fmt: skip
    progress = None if args.quiet or not ranks.main else ProgressBar("evaluate")
    point = None if args.threshold is None else f"given on the command line (--threshold {args.threshold:g})"
    if args.operating_point not in (None, "balanced"):
        point = point_text(ws.manifest, args.operating_point)
    ev = evaluate(
        cascade, cohort, batch_size=args.batch_size, progress=progress, n_boot=args.n_boot, seed=args.seed,
        operating_point=point, ranks=ranks,
    )  # fmt: skip
    if not ranks.main:
        return 0
    from softmass_core.cohorts.overlap import overlap_sentence

    for name, entry in (ev.overlap or {}).items():  # cohorts the set was trained or validated on: said every time
        if overlap_sentence(name, entry):
            print(f"warning: {overlap_sentence(name, entry)}", file=sys.stderr)
    if args.record:
        record_metrics(args.weights, ev, n_boot=args.n_boot, seed=args.seed)
        print(f"recorded {', '.join(ev.metrics)} in {args.weights}/manifest.json and README.md", file=sys.stderr)
    if args.record_replicate:
        record_replicate(
            args.weights, args.record_replicate, ev, cohort_csv=args.cohort, n_boot=args.n_boot, seed=args.seed,
            command=invoked_command("evaluate"),
        )  # fmt: skip
        print(
            f"recorded {', '.join(ev.metrics)} as replicate {args.record_replicate} in {args.weights}/manifest.json "
            "and README.md",
            file=sys.stderr,
        )
    if args.out:
        files = ev.write(args.out)
        print(f"wrote {', '.join(str(p) for p in files.values())}", file=sys.stderr)
    if args.json:
        print_json(add_cohort_rates(ev.metrics_json(), ev.predictions, ws.input_stats is not None))
        return 0
    _print_table(ev)
    for name, rate in cohort_rates(ev.predictions, ws.input_stats is not None).items():
        print(
            f"input check {name}: "
            + (rate.get("reason") or f"{rate['n_flagged']}/{rate['n']} cases flagged unlike the training data")
        )
    return 0


def _print_table(ev) -> None:
    """Each cohort's tasks, one line each: value [95% CI] per metric, or why a task is not computable."""
    table = ev.metrics_table()
    print(f"DLM-1 threshold {ev.threshold:.3f}: {ev.operating_points.get('dlm1', '')}")
    for cohort_name, df in table.groupby("cohort", sort=False):
        print(f"\n== {cohort_name} ==")
        for task, dt in df.groupby("task", sort=False):
            n, npos = int(dt["n"].iloc[0]), int(dt["n_positive"].iloc[0])
            if not bool(dt["computable"].iloc[0]):
                reason = ev.metrics[cohort_name][task]["reason"] if task == "dlm1" else (
                    ev.metrics[cohort_name]["dlm2"][task]["reason"]
                )  # fmt: skip
                if n == 0:
                    print(f"{task:<24} n=0: not computable ({reason})")
                    continue
                print(f"{task:<24} not computable ({reason}); what is defined:")
            parts = []
            for _, r in dt.iterrows():
                if r["value"] is None or (isinstance(r["value"], float) and math.isnan(r["value"])):
                    parts.append(f"{r['metric']} n/a")
                else:
                    parts.append(f"{r['metric']} {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
            print(f"{task:<24} n={n} pos={npos}: " + "; ".join(parts))
