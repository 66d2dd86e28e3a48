"""The reader study's own cases, the administrator's results and the `reader-study` command (softmass_core.reader_study.cases)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from softmass_core.cli import main
from softmass_core.data import demo
from softmass_core.errors import SoftmassError
from softmass_core.labels import COHORT_LABELS, MALIGNANT, SUBTYPES
from softmass_core.reader_study import cases as study
from softmass_core.reader_study.store import ReaderStudyStore

WS = "phantom v1"


def test_study_cases_have_opaque_ids_two_per_class():
    ids = study.STUDY_CASE_IDS
    assert ids == tuple(f"S{i:02d}" for i in range(1, 13))
    labels = [study.study_label(c) for c in ids]
    assert sorted(labels) == sorted([MALIGNANT, *SUBTYPES] * 2)
    # Nothing in an id names the class, and the classes are not laid out in id order.
    assert not any(name in cid.lower() for cid in ids for name in COHORT_LABELS)
    assert labels != sorted(labels) and labels != [lab for lab in (MALIGNANT, *SUBTYPES) for _ in range(2)]
    assert not set(ids) & set(demo.DEMO_CASE_IDS)
    with pytest.raises(SoftmassError, match="S01"):
        study.study_label("demo-malignant-1")


def test_study_images_are_none_of_the_case_pages_demo_cases():
    cases = [study.study_case(c) for c in study.STUDY_CASE_IDS]
    assert [c.label for c in cases] == [study.study_label(c) for c in study.STUDY_CASE_IDS]
    assert study.study_case("S01") is cases[0]  # simulated once per process
    demo_seeds = {demo._case_seed(i, k) for i in range(len(demo.DEMO_LABELS)) for k in (1, 2)}
    assert not {seed for _, _, seed in study._PLAN} & demo_seeds
    demo_images = [c.gray for c in demo.demo_cases()]
    for case in cases:
        assert case.gray.dtype == np.uint8 and case.gray.ndim == 3
        assert not any(d.shape == case.gray.shape and np.array_equal(d, case.gray) for d in demo_images)
        with pytest.raises(ValueError):
            case.gray[0, 0, 0] = 1  # shared by every session: read-only


def test_passphrase_comparison():
    assert study.passphrase_matches("open sesame", "open sesame")
    assert not study.passphrase_matches("open sesame ", "open sesame")
    assert not study.passphrase_matches("open", "open sesame")
    assert not study.passphrase_matches("", "open sesame")
    assert not study.passphrase_matches("anything", None)
    assert not study.passphrase_matches("", "")


def _finish(store, reader, case, blind, assisted):
    store.start_case(reader, case, weight_set=WS)
    store.record_blind(reader, case, malignant=blind == MALIGNANT, subtype=None if blind == MALIGNANT else blind)
    store.record_assisted(
        reader,
        case,
        malignant=assisted == MALIGNANT,
        subtype=None if assisted == MALIGNANT else assisted,
        model_p_malignant=0.7,
        model_diagnosis=MALIGNANT,
    )


@pytest.fixture
def study_db(store_url):
    """One reader with two finished study cases (right blind, right after) and one older read on a demo case.

    The database's URL: an SQLite file, then a PostgreSQL server's (see ``store_url`` in conftest).
    """
    path = store_url
    store = ReaderStudyStore(path)
    ada = store.register_reader("Dr Ada", experience_years=8).reader_id
    for cid in study.STUDY_CASE_IDS[:2]:
        truth = study.study_label(cid)
        _finish(store, ada, cid, truth, truth)
    _finish(store, ada, "demo-malignant-2", MALIGNANT, MALIGNANT)
    store.close()
    return path


def test_results_summarise_the_study_cases_and_keep_older_reads_apart(study_db):
    res = study.study_results(ReaderStudyStore(study_db))
    bvm = res.summary.set_index("task").loc["benign_vs_malignant"]
    assert (bvm["n"], bvm["correct_before"], bvm["correct_after"]) == (2, 2, 2)
    assert res.legacy_reads == 1
    reads = res.reads.set_index("case_id")
    assert reads.loc["demo-malignant-2", "case_set"] == study.LEGACY_SET
    assert reads.loc["demo-malignant-2", "true_label"] == MALIGNANT
    s01 = study.STUDY_CASE_IDS[0]
    assert reads.loc[s01, "case_set"] == study.STUDY_SET and reads.loc[s01, "true_label"] == study.study_label(s01)


def test_cli_prints_the_summary_and_writes_the_csvs(study_db, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["reader-study", "--db", str(study_db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "readers      1" in text and "reads started 2, complete 2" in text
    assert "older reads  1 on the demo cases" in text
    assert "Dr Ada" in text and "100.0% (2/2)" in text and "Clopper-Pearson" in text
    reads = pd.read_csv(out / "reads.csv")
    assert len(reads) == 3 and {"true_label", "case_set", "model_p_malignant"} <= set(reads.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["task"]) == {"benign_vs_malignant", "benign_subtype"}
    assert "weight_set" in pd.read_csv(out / "focus_grades.csv").columns

    assert main(["reader-study", "--db", study_db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["readers"] == 1 and data["legacy_reads"] == 1 and data["readers_without_pin"] == 0


def test_cli_issues_a_pin(study_db, capsys):
    assert main(["reader-study", "--db", str(study_db), "--issue-pin", "Dr Ada"]) == 0
    pin = capsys.readouterr().out.strip().split(": ")[-1]
    store = ReaderStudyStore(study_db)
    assert store.identify_reader("Dr Ada", pin) == store.reader_id("Dr Ada")
    assert main(["reader-study", "--db", str(study_db), "--issue-pin", "Eve"]) == 2
    assert capsys.readouterr().err.strip() == "error: No reader called 'Eve' is registered."


def test_cli_refuses_a_missing_database_without_creating_it(tmp_path, capsys):
    missing = tmp_path / "nope.sqlite"
    assert main(["reader-study", "--db", str(missing)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no such database file" in err
    assert not missing.exists()
