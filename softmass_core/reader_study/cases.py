"""The reader study's cases and its administrator's results (printed by the ``reader-study`` command).

The study reads twelve simulated cases (two per class: malignant and the five
benign subtypes) of its own: ids ``S01`` .. ``S12`` say nothing about the
class, the classes are spread over the ids in a shuffled order, and the
images come from seeds that no other page uses, so a reader cannot find a
study case on the Case page (whose demo cases show their true class and run
the model) or among the demo cohort.

Results (every reader's answers, the model's outputs, accuracies) are for the
study administrator only: on the Reader-study page behind a passphrase (see
:func:`passphrase_matches`; configured by the environment variable
``SOFTMASS_STUDY_ADMIN_PASSPHRASE`` or the Streamlit secret
``study_admin_passphrase``), and always on the command line::

    python -m softmass_core reader-study --db cache/reader_study.sqlite --out results/
    python -m softmass_core reader-study --db cache/reader_study.sqlite --issue-pin "Dr Ada"

Reads made by softmass versions before the study had its own cases were made
on the demo cases (ids ``demo-<class>-<k>``, whose images the Case page
showed with their class).  They are kept, exported with the other reads and
marked as such, but left out of the study's summary.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from softmass_core.errors import SoftmassError
from softmass_core.labels import MALIGNANT, SUBTYPES
from softmass_core.stats.formatting import format_p

if TYPE_CHECKING:
    from softmass_core.data.demo import DemoCase
    from softmass_core.reader_study.store import ReaderStudyStore

#: Master seed of the study cases (the demo cases and cohorts use 2023 and draw other seeds from it).
STUDY_SEED = 51_770_417
#: The simulated hospital the study cases come from.
STUDY_HOSPITAL = 1
#: Classes of the study, each read ``CASES_PER_LABEL`` times.
STUDY_LABELS: tuple[str, ...] = (MALIGNANT, *SUBTYPES)
CASES_PER_LABEL = 2

#: Environment variable and Streamlit secret that hold the study administrator's passphrase.
ADMIN_PASSPHRASE_ENV = "SOFTMASS_STUDY_ADMIN_PASSPHRASE"
ADMIN_PASSPHRASE_SECRET = "study_admin_passphrase"

#: How the summary's tasks are named for people.
TASK_TITLES: dict[str, str] = {"benign_vs_malignant": "Benign vs malignant", "benign_subtype": "Benign subtype"}

#: ``case_set`` of a read in :func:`study_results`: the study's own cases, or the demo cases of older versions.
STUDY_SET, LEGACY_SET = "study", "demo (before study cases)"


def _study_plan() -> list[tuple[str, str, int]]:
    """``(case_id, label, seed)`` of every study case, in id order."""
    labels = [label for label in STUDY_LABELS for _ in range(CASES_PER_LABEL)]
    order = np.random.default_rng([STUDY_SEED, 0x5EED]).permutation(len(labels))
    plan = []
    for i, k in enumerate(order):
        seed = int(np.random.SeedSequence([STUDY_SEED, i]).generate_state(1)[0])
        plan.append((f"S{i + 1:02d}", labels[int(k)], seed))
    return plan


_PLAN = _study_plan()
#: Ids of the study cases (``S01`` ..), known without simulating anything.
STUDY_CASE_IDS: tuple[str, ...] = tuple(cid for cid, _, _ in _PLAN)


def _plan_entry(case_id: str) -> tuple[str, str, int]:
    for entry in _PLAN:
        if entry[0] == case_id:
            return entry
    raise SoftmassError(f"There is no study case {case_id!r}; the study's cases are {', '.join(STUDY_CASE_IDS)}.")


def study_label(case_id: str) -> str:
    """True class of a study case (for the administrator's summary); SoftmassError if the id is unknown."""
    return _plan_entry(case_id)[1]


def study_case(case_id: str) -> DemoCase:
    """The simulated study case ``case_id`` (images and ROIs), generated once per process."""
    from softmass_core.data.demo import simulated_case  # lazy: the simulator is only needed here

    cid, label, seed = _plan_entry(case_id)
    return simulated_case(cid, label, seed, hospital=STUDY_HOSPITAL)


def case_truth(case_ids: Any) -> dict[str, str]:
    """``{case_id: label}`` for the study cases and the older demo-case ids among ``case_ids``; others are left out."""
    from softmass_core.data.demo import DEMO_CASE_IDS, demo_label

    out: dict[str, str] = {}
    for cid in {str(c) for c in case_ids}:
        if cid in STUDY_CASE_IDS:
            out[cid] = study_label(cid)
        elif cid in DEMO_CASE_IDS:
            out[cid] = demo_label(cid)
    return out


# --------------------------------------------------------------------------- the administrator


def passphrase_matches(given: str | None, configured: str | None) -> bool:
    """Whether the typed passphrase equals the configured one, compared in constant time.

    Both are hashed first, so neither their contents nor their lengths
    change the time taken.  False when nothing is configured or typed.
    """
    if not configured or not given:
        return False
    a = hashlib.sha256(given.encode("utf-8")).digest()
    b = hashlib.sha256(configured.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class StudyResults:
    """What the administrator sees.

    ``summary``: :func:`softmass_core.stats.reader_study.reader_study_summary` over the
    study cases; ``reads``: every read in the database, in order, with
    ``true_label`` and ``case_set`` (:data:`STUDY_SET` or :data:`LEGACY_SET`)
    added; ``readers``: ``store.readers()``; ``legacy_reads``: how many reads
    were made on the older demo cases (kept, not summarised).
    """

    summary: pd.DataFrame
    reads: pd.DataFrame
    readers: pd.DataFrame
    legacy_reads: int


def study_results(store: ReaderStudyStore) -> StudyResults:
    """Summary and annotated reads of the database behind ``store`` (see :class:`StudyResults`)."""
    from softmass_core.stats.estimate import UndefinedMetricWarning
    from softmass_core.stats.reader_study import reader_study_summary

    reads = store.reads()
    truth = case_truth(reads["case_id"])
    reads = reads.assign(
        true_label=[truth.get(c) for c in reads["case_id"]],
        case_set=[STUDY_SET if c in STUDY_CASE_IDS else LEGACY_SET if c in truth else "" for c in reads["case_id"]],
    )
    ours = reads[reads["case_set"] == STUDY_SET]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        summary = reader_study_summary(ours, truth)
    return StudyResults(
        summary=summary,
        reads=reads,
        readers=store.readers(),
        legacy_reads=int((reads["case_set"] == LEGACY_SET).sum()),
    )


def _accuracy_cell(k: int, n: int, acc: float, lo: float, hi: float) -> str:
    if not n or math.isnan(acc):
        return "n/a"
    return f"{100 * acc:.1f}% ({k}/{n}) [{100 * lo:.1f}, {100 * hi:.1f}]"


#: Columns of :func:`summary_table`.
TABLE_COLUMNS: tuple[str, ...] = (
    "Reader",
    "Experience (years)",
    "Task",
    "Cases",
    "Blind (images only)",
    "With the DLM",
    "McNemar p",
)


def summary_table(summary: pd.DataFrame, readers: pd.DataFrame | None = None) -> pd.DataFrame:
    """``stats.reader_study.reader_study_summary`` as people read it, one row per reader and task (TABLE_COLUMNS).

    Accuracy cells read ``"86.2% (50/58) [74.6, 93.9]"`` (Clopper-Pearson
    95% CI); McNemar's p compares blind and assisted reads of the same cases.
    ``readers`` (``store.readers()``) adds the years of experience.
    """
    years = {} if readers is None else dict(zip(readers["id"], readers["experience_years"], strict=True))
    rows = []
    for r in summary.itertuples(index=False):
        y = years.get(r.reader_id)
        rows.append(
            {
                "Reader": r.reader_name,
                "Experience (years)": "" if y is None or pd.isna(y) else str(int(y)),
                "Task": TASK_TITLES.get(r.task, r.task),
                "Cases": int(r.n),
                "Blind (images only)": _accuracy_cell(
                    r.correct_before, r.n, r.accuracy_before, r.ci_before_low, r.ci_before_high
                ),
                "With the DLM": _accuracy_cell(r.correct_after, r.n, r.accuracy_after, r.ci_after_low, r.ci_after_high),
                "McNemar p": format_p(r.mcnemar_p, r.mcnemar_method) if r.n else "n/a",
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
