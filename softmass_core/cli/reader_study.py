"""``reader-study``: the study administrator's results of a reader-study database, or a reader's new PIN."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from softmass_core.cli._helpers import print_json
from softmass_core.errors import SoftmassError
from softmass_core.paths import make_dir

if TYPE_CHECKING:
    from softmass_core.reader_study.store import ReaderStudyStore

HELP = "the study administrator's results of a reader-study database (summary, CSVs) or a reader's new PIN"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m softmass_core reader-study``."""
    p.description = (
        "The study administrator's view of a reader-study database: readers, accuracy before and after the DLM "
        "(Clopper-Pearson 95%% CIs, McNemar's test), and CSV exports; or a new PIN for a reader."
    )
    p.add_argument(
        "--db",
        required=True,
        help="the app's database: an SQLite file (the app's default is cache/reader_study.sqlite, or what "
        "SOFTMASS_READER_DB names) or an SQLAlchemy URL",
    )
    p.add_argument("--out", help="folder for reads.csv (every read, in order), summary.csv and focus_grades.csv")
    p.add_argument(
        "--issue-pin",
        metavar="NAME",
        help="draw a new PIN for the reader NAME (registered before PINs existed, or who lost theirs) and print it; "
        "their old PIN stops working",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _open(db: str) -> ReaderStudyStore:
    from softmass_core.reader_study.store import ReaderStudyStore

    text = str(db)
    if "://" not in text or text.startswith("sqlite:///"):
        path = Path(text.removeprefix("sqlite:///")).expanduser()
        if not path.is_file():
            raise SoftmassError(
                f"--db {db}: no such database file. Give the file the app writes (SOFTMASS_READER_DB, "
                "by default cache/reader_study.sqlite)."
            )
    return ReaderStudyStore(text)


def run(args: argparse.Namespace) -> int:
    """Print the summary (or issue a PIN) and write the CSVs."""
    from softmass_core.reader_study.cases import STUDY_CASE_IDS, STUDY_SET, study_results, summary_table

    if args.out:
        make_dir(args.out, "--out")
    store = _open(args.db)
    try:
        if args.issue_pin:
            name = args.issue_pin.strip()
            pin = store.issue_pin(store.reader_id(name))
            print(f"new PIN for {name}: {pin}")
            print("hand it to the reader in person; their earlier PIN (if any) no longer works", file=sys.stderr)
            return 0
        res = study_results(store)
        if args.out:
            out = Path(args.out)
            res.reads.to_csv(out / "reads.csv", index=False)
            res.summary.to_csv(out / "summary.csv", index=False)
            store.focus_grades().to_csv(out / "focus_grades.csv", index=False)
            print(f"wrote {out / 'reads.csv'}, {out / 'summary.csv'}, {out / 'focus_grades.csv'}", file=sys.stderr)
    finally:
        store.close()
    if args.json:
        print_json(
            {
                "readers": int(len(res.readers)),
                "readers_without_pin": int((~res.readers["has_pin"]).sum()),
                "legacy_reads": res.legacy_reads,
                "summary": res.summary.to_dict(orient="records"),
            }
        )
        return 0
    study = res.reads[res.reads["case_set"] == STUDY_SET]
    no_pin = res.readers.loc[~res.readers["has_pin"], "name"].tolist()
    print(
        f"readers      {len(res.readers)}" + (f" ({len(no_pin)} without a PIN: {', '.join(no_pin)})" if no_pin else "")
    )
    print(
        f"study cases  {len(STUDY_CASE_IDS)}; reads started {len(study)}, "
        f"complete {int((study['state'] == 'complete').sum())}"
    )
    if res.legacy_reads:
        print(
            f"older reads  {res.legacy_reads} on the demo cases (before the study had its own cases; "
            "their images were shown with their class on the Case page): in reads.csv, not in the summary"
        )
    table = summary_table(res.summary, res.readers)
    if table.empty or not res.summary["n"].any():
        print("no study case has been read blind and with the model yet")
        return 0
    print()
    print(table.to_string(index=False))
    print("\nBrackets: Clopper-Pearson 95% CI. McNemar's test compares each reader's blind and assisted reads.")
    return 0
