"""``metrics``: diagnostic metrics with 95% CIs of a predictions CSV, optionally a paired DeLong comparison."""

from __future__ import annotations

import argparse

from softmass_core.cli._helpers import print_json
from softmass_core.errors import SoftmassError

HELP = "diagnostic metrics with 95%% CIs from a predictions CSV"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predictions", required=True)
    p.add_argument("--label-col", default="label", help="0/1 labels (1 = positive)")
    p.add_argument("--score-col", default="score")
    p.add_argument("--compare-col", help="second score column: paired DeLong test against --score-col")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from softmass_core.stats.binary import binary_metrics
    from softmass_core.stats.roc import delong_test

    try:
        df = pd.read_csv(args.predictions)
    except FileNotFoundError:
        raise SoftmassError(f"{args.predictions} does not exist.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SoftmassError(f"{args.predictions} is not a readable CSV ({exc}).") from None
    cols = [args.label_col, args.score_col] + ([args.compare_col] if args.compare_col else [])
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SoftmassError(f"{args.predictions}: no column(s) {missing}; it has {list(df.columns)}.")
    labels = df[args.label_col].to_numpy()
    scores = pd.to_numeric(df[args.score_col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(scores).any():
        bad = int(np.flatnonzero(np.isnan(scores))[0]) + 2
        raise SoftmassError(f"{args.predictions}: column {args.score_col!r} has a non-number at line {bad}.")
    out = binary_metrics(labels, scores, threshold=args.threshold, n_boot=args.n_boot, seed=args.seed)
    if args.compare_col:
        other = pd.to_numeric(df[args.compare_col], errors="coerce").to_numpy(dtype=float)
        if np.isnan(other).any():
            raise SoftmassError(f"{args.predictions}: column {args.compare_col!r} has non-numbers.")
        cmp = delong_test(labels, scores, other)
        out["comparison"] = {
            k: cmp[k] for k in ("auc_difference", "ci_low", "ci_high", "z", "p_value", "method") if k in cmp
        }
    if args.json:
        print_json(out)
        return 0
    print(f"n={out['n']} positives={out['n_positive']} threshold={out['threshold']}")
    print("counts " + " ".join(f"{k}={v}" for k, v in out["counts"].items()))
    for name, est in out["metrics"].items():
        if est["value"] is None:
            print(f"{name:<12} n/a")
        else:
            print(f"{name:<12} {est['value']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}] ({est['method']})")
    if "comparison" in out:
        c = out["comparison"]
        print(
            f"AUC difference {c['auc_difference']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}], "
            f"z={c['z']:.2f}, p={c['p_value']:.4f} ({c['method']})"
        )
    return 0
