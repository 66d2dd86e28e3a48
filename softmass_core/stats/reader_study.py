"""The reader study's statistics: accuracy before and after the model, per reader and task, with McNemar.

The reads come from :meth:`softmass_core.reader_study.store.ReaderStudyStore.reads`;
:func:`softmass_core.reader_study.cases.summary_table` shows the result as people read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from softmass_core import labels
from softmass_core.errors import MetricsError
from softmass_core.stats.hypothesis_tests import mcnemar_test
from softmass_core.stats.intervals import clopper_pearson_ci

SUMMARY_COLUMNS: tuple[str, ...] = (
    "reader_id",
    "reader_name",
    "task",
    "n",
    "correct_before",
    "accuracy_before",
    "ci_before_low",
    "ci_before_high",
    "correct_after",
    "accuracy_after",
    "ci_after_low",
    "ci_after_high",
    "mcnemar_b",
    "mcnemar_c",
    "mcnemar_statistic",
    "mcnemar_p",
    "mcnemar_method",
)

#: The two tasks of the paper's reader study.
TASKS: tuple[str, ...] = ("benign_vs_malignant", "benign_subtype")


def _correct(malignant: Any, subtype: Any, truth: str, task: str) -> bool:
    if task == "benign_vs_malignant":
        return bool(malignant) == (truth == labels.MALIGNANT)
    return (not bool(malignant)) and subtype == truth


def reader_study_summary(reads: pd.DataFrame, truth: Mapping[str, str]) -> pd.DataFrame:
    """Accuracy before and after the model, per reader and task (SUMMARY_COLUMNS).

    ``reads`` is :meth:`softmass_core.reader_study.store.ReaderStudyStore.reads` (at least reader_id, case_id,
    blind_malignant, blind_subtype, assisted_malignant, assisted_subtype);
    only cases with both reads count.  ``truth`` maps case id -> label
    (``labels.COHORT_LABELS``).  Task ``benign_vs_malignant`` uses every such
    case; ``benign_subtype`` the benign cases of known subtype, where calling
    one malignant counts as wrong.  Accuracies are fractions with
    Clopper-Pearson 95% intervals; McNemar compares the paired before/after
    correctness (:func:`~softmass_core.stats.hypothesis_tests.mcnemar_test`: ``mcnemar_b`` counts cases right
    before and wrong after, ``mcnemar_c`` wrong before and right after).  A task with no case gives n = 0
    and NaN.  Raises MetricsError for missing columns, unknown labels or
    completed cases without a truth label.
    """
    needed = [
        "reader_id",
        "case_id",
        "blind_malignant",
        "blind_subtype",
        "assisted_malignant",
        "assisted_subtype",
    ]
    missing_cols = [col for col in needed if col not in reads.columns]
    if missing_cols:
        raise MetricsError(f"the reads table lacks the columns {missing_cols!r}")
    bad = {k: v for k, v in truth.items() if v not in labels.COHORT_LABELS}
    if bad:
        shown = dict(list(bad.items())[:5])
        raise MetricsError(f"unknown truth labels {shown!r}; expected one of {', '.join(labels.COHORT_LABELS)}")
    done = reads[reads["blind_malignant"].notna() & reads["assisted_malignant"].notna()]
    no_truth = sorted({str(c) for c in done["case_id"] if c not in truth})
    if no_truth:
        raise MetricsError(
            f"{len(no_truth)} read cases have no truth label, e.g. {no_truth[:5]!r}; "
            "pass the labels of every case in the study"
        )

    records: list[dict[str, Any]] = []
    names = reads.groupby("reader_id")["reader_name"].first() if "reader_name" in reads else None
    for reader_id in sorted(reads["reader_id"].unique()):
        mine = done[done["reader_id"] == reader_id]
        for task in TASKS:
            before: list[bool] = []
            after: list[bool] = []
            for row in mine.itertuples(index=False):
                label = truth[row.case_id]
                if task == "benign_subtype" and label not in labels.SUBTYPES:
                    continue
                before.append(_correct(row.blind_malignant, row.blind_subtype, label, task))
                after.append(_correct(row.assisted_malignant, row.assisted_subtype, label, task))
            rec: dict[str, Any] = {
                "reader_id": int(reader_id),
                "reader_name": None if names is None else names.get(reader_id),
                "task": task,
                "n": len(before),
                "correct_before": sum(before),
                "correct_after": sum(after),
            }
            n = len(before)
            for when, k in (("before", sum(before)), ("after", sum(after))):
                if n:
                    lo, hi = clopper_pearson_ci(k, n, alpha=0.05)
                    rec[f"accuracy_{when}"] = k / n
                    rec[f"ci_{when}_low"], rec[f"ci_{when}_high"] = float(lo), float(hi)
                else:
                    rec[f"accuracy_{when}"] = float("nan")
                    rec[f"ci_{when}_low"] = rec[f"ci_{when}_high"] = float("nan")
            if n:
                test = mcnemar_test(before, after)
                rec.update(
                    mcnemar_b=int(test["b"]),
                    mcnemar_c=int(test["c"]),
                    mcnemar_statistic=float(test["statistic"]),
                    mcnemar_p=float(test["p_value"]),
                    mcnemar_method=str(test["method"]),
                )
            else:
                rec.update(
                    mcnemar_b=0,
                    mcnemar_c=0,
                    mcnemar_statistic=float("nan"),
                    mcnemar_p=float("nan"),
                    mcnemar_method="",
                )
            records.append(rec)
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))
