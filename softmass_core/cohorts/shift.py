"""Scanner shift on identical lesions: ``python -m softmass_core shift``.

Test cohort B differs from the validation cohort in two ways at once: another
scanner, and other patients.  With 10-30 positives per task the second effect
alone moves an AUC by several hundredths, so "test B is lower than validation"
cannot show what the scanner costs.  The phantom can image the *same* patients
on another scanner (``phantom --rescan-hospital N``); this module scores both
versions of every case and compares the AUCs with the paired DeLong test,
which takes the pairing into account.

Cases pair by ``case_id`` (the rescan keeps the ids); pairs whose labels
disagree are an error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softmass_core.errors import CohortError
from softmass_core.labels import DLM1, MALIGNANT, SUBTYPES

#: Columns of the result table, in order.
COLUMNS = (
    "task",
    "n",
    "n_positive",
    "auc_original",
    "auc_rescan",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
)


def pair_predictions(original, rescan):
    """Join two ``predict_cohort`` tables on ``case_id``; columns get ``_o`` / ``_r`` suffixes."""
    for name, df in (("original", original), ("rescan", rescan)):
        dup = df["case_id"][df["case_id"].duplicated()]
        if len(dup):
            raise CohortError(f"The {name} cohort has case id {dup.iloc[0]!r} twice; pair one cohort at a time.")
    merged = original.merge(rescan, on="case_id", suffixes=("_o", "_r"), validate="one_to_one")
    if merged.empty:
        raise CohortError(
            "No case id appears in both cohorts. Generate the rescan from the same seed and cohorts "
            "(python -m softmass_core phantom --rescan-hospital N ...)."
        )
    clash = merged[merged["label_o"] != merged["label_r"]]
    if len(clash):
        row = clash.iloc[0]
        raise CohortError(
            f"Case {row['case_id']} is {row['label_o']!r} in the original cohort but {row['label_r']!r} "
            "in the rescan: these are not the same patients."
        )
    return merged


def paired_shift(original, rescan) -> list[dict[str, Any]]:
    """Per task (DLM-1, then each subtype on benign cases): AUCs before and after, paired DeLong.

    ``difference`` is rescan minus original, so a scanner that hurts gives a
    negative number.
    """
    import warnings

    from softmass_core.stats.estimate import UndefinedMetricWarning
    from softmass_core.stats.roc import delong_test

    merged = pair_predictions(original, rescan)
    tasks: list[tuple[str, Any, str]] = [(DLM1, merged["label_o"] == MALIGNANT, "p_malignant")]
    benign = merged["label_o"].isin(SUBTYPES)
    for subtype in SUBTYPES:
        if f"score_{subtype}_o" in merged and f"score_{subtype}_r" in merged:
            tasks.append((subtype, merged["label_o"] == subtype, f"score_{subtype}"))
    out = []
    for task, positive, col in tasks:
        keep = np.ones(len(merged), dtype=bool) if task == DLM1 else benign.to_numpy()
        y = positive.to_numpy()[keep].astype(int)
        so = merged[f"{col}_o"].to_numpy(dtype=float)[keep]
        sr = merged[f"{col}_r"].to_numpy(dtype=float)[keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            test = delong_test(y, sr, so)
        out.append(
            {
                "task": task,
                "n": int(y.size),
                "n_positive": int(y.sum()),
                "auc_original": test["auc_b"],
                "auc_rescan": test["auc_a"],
                "difference": test["auc_difference"],
                "ci_low": test["ci_low"],
                "ci_high": test["ci_high"],
                "p_value": test["p_value"],
            }
        )
    return out


def paired_subset(original, rescan):
    """The cases of ``original`` whose ids appear in ``rescan`` (a :class:`~softmass_core.cohorts.cohort.Cohort`)."""
    from softmass_core.cohorts.cohort import Cohort

    ids = {r.case_id for r in rescan.rows}
    subset = Cohort(original.csv_path, tuple(r for r in original.rows if r.case_id in ids))
    if not subset.rows:
        raise CohortError(
            f"No case of {rescan.csv_path} appears in {original.csv_path}. Generate the rescan from the same "
            "seed and cohorts (python -m softmass_core phantom --rescan-hospital N ...)."
        )
    return subset


def scanner_shift(cascade, original, rescan, *, batch_size: int = 16, progress=None) -> list[dict[str, Any]]:
    """Score the paired cases of two cohorts with ``cascade`` and compare them (see :func:`paired_shift`)."""
    from softmass_core.cohorts.evaluate import predict_cohort

    original = paired_subset(original, rescan)
    n_o, total = len(original.rows), len(original.rows) + len(rescan.rows)

    def first(done: int, _total: int) -> None:
        if progress:
            progress(done, total)

    def second(done: int, _total: int) -> None:
        if progress:
            progress(n_o + done, total)

    pred_o = predict_cohort(cascade, original, batch_size=batch_size, progress=first)
    pred_r = predict_cohort(cascade, rescan, batch_size=batch_size, progress=second)
    return paired_shift(pred_o, pred_r)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`paired_shift` rows."""

    def f(x: float, spec: str = ".3f") -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    lines = [f"{'task':<24} {'n':>4} {'pos':>4} {'AUC orig':>8} {'AUC rescan':>10} {'diff [95% CI]':>24} {'p':>7}"]
    for r in rows:
        ci = f"{f(r['difference'], '+.3f')} [{f(r['ci_low'], '+.3f')}, {f(r['ci_high'], '+.3f')}]"
        lines.append(
            f"{r['task']:<24} {r['n']:>4} {r['n_positive']:>4} {f(r['auc_original']):>8} "
            f"{f(r['auc_rescan']):>10} {ci:>24} {f(r['p_value'], '.4f'):>7}"
        )
    return "\n".join(lines)


def record(folder, key: str, rows, *, original, rescan, command: str | None = None) -> None:
    """Store ``rows`` under ``manifest["scanner_shift"]["rescans"][key]`` and rewrite the model card."""
    from softmass_core.weights.modelcard import update_manifest

    entry = {
        "original": ", ".join(paired_subset(original, rescan).names),
        "rescan": ", ".join(rescan.names),
        "rows": list(rows),  # NaN is written as null by update_manifest
    }
    if command:
        entry["command"] = command

    def edit(manifest: dict) -> None:
        section = manifest.setdefault("scanner_shift", {})
        section["description"] = (
            "The same patients imaged at another simulated hospital (`phantom --rescan-hospital N`): lesion, "
            "surroundings, age and sex are identical; the scanner, settings, speckle, screen and the ROI its "
            "readers draw are not. The re-scans come from `python -m softmass_core phantom --out DIR --cohorts "
            "COHORT --rescan-hospital N` with the seed of the original cohorts. "
            "Difference = re-scanned minus first scan; 95% CI and p from the paired DeLong test."
        )
        section.setdefault("rescans", {})[key] = entry

    update_manifest(folder, edit)
