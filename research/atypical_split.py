"""How much of a phantom-trained set's error sits in the generator's atypical cases?

The generator draws each of a lesion's five feature groups (geometry, echo,
internal, posterior, vascular) from another class with a small probability:
the deliberate overlap between classes.  The cohort CSV's ``atypical`` column
names those groups ("echo:epidermal_cyst;vascular:malignant"; empty = typical).
For every cohort and task of an ``evaluate --out`` predictions table this
prints the AUC of all positives, of the typical positives alone and of the
atypical positives alone, each against all of the task's negatives.

    python -m softmass_core evaluate --weights weights/phantom --cohort data/phantom/cohort.csv \\
        --cohorts validation --out runs/val
    python research/atypical_split.py --predictions runs/val/predictions.csv --cohort data/phantom/cohort.csv

Nothing is written; ``--json`` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softmass_core.errors import SoftmassError  # noqa: E402


def _auc(y, score, positives) -> float:
    """AUC of the ``positives`` (a subset of y == 1) against every negative; NaN when either side is empty."""
    from softmass_core.stats.roc import rank_auc

    keep = positives | (y == 0)
    return rank_auc(y[keep], score[keep]) if positives.any() and (y == 0).any() else float("nan")


def split_rows(predictions, cohort) -> list[dict]:
    """One row per (cohort, task): counts and AUCs of typical and atypical positives against all negatives.

    ``predictions``: DataFrame as ``evaluate --out`` writes it; ``cohort``: the
    cohort CSV as a DataFrame with its ``atypical`` column.
    """
    import numpy as np

    from softmass_core.labels import SUBTYPES

    if "atypical" not in cohort.columns:
        raise SoftmassError(
            "The cohort CSV has no 'atypical' column: it was not made by this version of "
            "`python -m softmass_core phantom`. Generate it again (same --seed: the images come out the same)."
        )
    flags = cohort[["case_id", "cohort", "label", "atypical"]].fillna("").astype(str)
    flags = flags.rename(columns={"label": "label_csv"})
    table = predictions.astype({"case_id": str, "cohort": str}).merge(flags, on=["case_id", "cohort"], how="left")
    if table["atypical"].isna().any():
        missing = table.loc[table["atypical"].isna(), "case_id"].tolist()[:3]
        raise SoftmassError(
            f"Cases of the predictions are not in the cohort CSV (e.g. {missing}): pass the CSV they came from."
        )
    clash = table["label"].astype(str) != table["label_csv"]
    if clash.any():
        raise SoftmassError(
            f"The cohort CSV gives other labels to the same case ids (e.g. {table.loc[clash, 'case_id'].tolist()[:3]}):"
            " it is another draw. Pass the CSV the predictions came from."
        )
    atypical = (table["atypical"] != "").to_numpy()
    rows = []
    for name, idx in table.groupby("cohort", sort=False).indices.items():
        sub, aty = table.iloc[idx], atypical[idx]
        tasks = [("dlm1", np.ones(len(sub), bool), sub["y_malignant"].to_numpy(int), sub["p_malignant"])]
        benign = sub["label"].isin(SUBTYPES).to_numpy()
        tasks += [(s, benign, (sub["label"] == s).to_numpy(int), sub[f"score_{s}"]) for s in SUBTYPES]
        for task, keep, y, score in tasks:
            y, s, a = y[keep], score.to_numpy(float)[keep], aty[keep]
            rows.append(
                {
                    "cohort": name,
                    "task": task,
                    "n_positive": int(y.sum()),
                    "n_positive_atypical": int((a & (y == 1)).sum()),
                    "n_negative": int((y == 0).sum()),
                    "auc": _auc(y, s, y == 1),
                    "auc_typical_positives": _auc(y, s, (y == 1) & ~a),
                    "auc_atypical_positives": _auc(y, s, (y == 1) & a),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictions", required=True, help="predictions.csv from `evaluate --out`")
    p.add_argument("--cohort", required=True, help="the phantom cohort CSV the predictions came from")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        for path in (args.predictions, args.cohort):
            if not Path(path).is_file():
                raise SoftmassError(f"{path} does not exist.")
        rows = split_rows(pd.read_csv(args.predictions), pd.read_csv(args.cohort, keep_default_na=False))
    except SoftmassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from softmass_core.jsonsafe import nan_to_none

        print(json.dumps(nan_to_none(rows), indent=2, allow_nan=False))
        return 0
    print("cohort      task                     positives (atypical)  negatives  AUC    typical  atypical")
    for r in rows:
        print(
            f"{r['cohort']:<11} {r['task']:<24} {r['n_positive']:>4} ({r['n_positive_atypical']:>3})"
            f"{'':>12}{r['n_negative']:>5}  {r['auc']:.3f}  {r['auc_typical_positives']:.3f}"
            f"    {r['auc_atypical_positives']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
