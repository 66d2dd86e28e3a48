"""Tests of softmass_core.store: the blind-then-assisted reader study on SQLite."""

from __future__ import annotations

import io
import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from softmass_core.errors import MetricsError, StoreError
from softmass_core.store import ReaderStudyStore, reader_study_summary

WEIGHTS = "phantom-v1"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "study.sqlite"


@pytest.fixture
def store(db_path):
    s = ReaderStudyStore(f"sqlite:///{db_path}")
    yield s
    s.close()


def read_case(store, reader, case, blind, assisted, **model):
    """Start a case and record both reads; answers are (malignant, subtype)."""
    store.start_case(reader, case, weight_set=WEIGHTS)
    store.record_blind(reader, case, malignant=blind[0], subtype=blind[1])
    store.record_assisted(reader, case, malignant=assisted[0], subtype=assisted[1], **model)


# --- the protocol --------------------------------------------------------------------


def test_full_blind_then_assisted_flow(store):
    reader = store.register_reader("  Dr. Junior ", experience_years=8)
    assert store.register_reader("Dr. Junior") == reader  # idempotent, name stripped
    assert store.start_case(reader, "case-001", weight_set=WEIGHTS) == 1
    assert store.reader_state(reader, "case-001") == "new"
    store.record_blind(reader, "case-001", malignant=False, subtype="lipoma")
    assert store.reader_state(reader, "case-001") == "blind_done"
    store.record_assisted(
        reader,
        "case-001",
        malignant=False,
        subtype="hemangioma",
        model_p_malignant=0.12,
        model_diagnosis="hemangioma",
    )
    assert store.reader_state(reader, "case-001") == "complete"

    reads = store.reads()
    assert len(reads) == 1
    row = reads.iloc[0]
    assert row["reader_name"] == "Dr. Junior" and row["experience_years"] == 8
    assert (row["case_id"], row["seq"], row["weight_set"]) == ("case-001", 1, WEIGHTS)
    assert not row["blind_malignant"] and row["blind_subtype"] == "lipoma"
    assert not row["assisted_malignant"] and row["assisted_subtype"] == "hemangioma"
    assert row["model_p_malignant"] == pytest.approx(0.12)
    assert row["model_diagnosis"] == "hemangioma" and row["state"] == "complete"
    assert row["started_at"] <= row["blind_at"] <= row["assisted_at"]

    with pytest.raises(StoreError, match="already read"):
        store.start_case(reader, "case-001", weight_set=WEIGHTS)


def test_assisted_before_blind_is_refused(store):
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    with pytest.raises(StoreError, match="must not be revealed before"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None)
    assert store.reader_state(reader, "c1") == "new"


def test_blind_twice_and_assisted_twice_are_refused(store):
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    with pytest.raises(StoreError, match="already read blind by this reader"):
        store.record_blind(reader, "c1", malignant=False, subtype="lipoma")
    store.record_assisted(reader, "c1", malignant=True, subtype=None)
    with pytest.raises(StoreError, match="already recorded"):
        store.record_assisted(reader, "c1", malignant=False, subtype="lipoma")
    row = store.reads().iloc[0]
    assert row["blind_malignant"] and pd.isna(row["blind_subtype"])  # first answer kept


def test_blind_read_needs_a_started_case_and_a_known_reader(store):
    reader = store.register_reader("A")
    with pytest.raises(StoreError, match="start_case first"):
        store.record_blind(reader, "c1", malignant=True, subtype=None)
    with pytest.raises(StoreError, match="unknown reader id 99"):
        store.start_case(99, "c1", weight_set=WEIGHTS)


@pytest.mark.parametrize(
    ("malignant", "subtype", "message"),
    [
        (False, None, "needs one of the subtypes"),
        (False, "sarcoma", "needs one of the subtypes"),
        (False, "benign", "needs one of the subtypes"),
        (True, "lipoma", "has no benign subtype"),
        ("yes", None, "True or False"),
    ],
)
def test_answers_are_validated(store, malignant, subtype, message):
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    with pytest.raises(StoreError, match=message):
        store.record_blind(reader, "c1", malignant=malignant, subtype=subtype)
    assert store.reader_state(reader, "c1") == "new"


def test_bad_names_and_model_outputs_are_refused(store):
    with pytest.raises(StoreError, match="non-empty"):
        store.register_reader("   ")
    with pytest.raises(StoreError, match="experience_years"):
        store.register_reader("B", experience_years=-1)
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    with pytest.raises(StoreError, match=r"\[0, 1\]"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None, model_p_malignant=1.5)
    with pytest.raises(StoreError, match="unknown model diagnosis"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None, model_diagnosis="cat")


def test_order_is_logged_per_reader_and_start_is_idempotent(store):
    a = store.register_reader("A")
    b = store.register_reader("B")
    assert [store.start_case(a, c, weight_set=WEIGHTS) for c in ("c3", "c1", "c2")] == [1, 2, 3]
    assert store.start_case(b, "c2", weight_set=WEIGHTS) == 1
    # Opening an unfinished case again keeps its number (blind done or not).
    assert store.start_case(a, "c1", weight_set="other") == 2
    store.record_blind(a, "c1", malignant=True, subtype=None)
    assert store.start_case(a, "c1", weight_set=WEIGHTS) == 2
    reads = store.reads(a)
    assert list(reads["case_id"]) == ["c3", "c1", "c2"]
    assert list(reads["seq"]) == [1, 2, 3]
    assert list(reads["state"]) == ["new", "blind_done", "new"]
    assert set(reads["weight_set"]) == {WEIGHTS}
    assert list(store.reads(b)["case_id"]) == ["c2"]


def test_blind_answer_survives_the_browser_closing(db_path):
    first = ReaderStudyStore(str(db_path))  # a plain path means an SQLite file
    reader = first.register_reader("A")
    first.start_case(reader, "c1", weight_set=WEIGHTS)
    first.record_blind(reader, "c1", malignant=False, subtype="neurinoma")
    first.close()
    del first

    second = ReaderStudyStore(db_path)
    assert second.register_reader("A") == reader
    assert second.reader_state(reader, "c1") == "blind_done"
    assert second.start_case(reader, "c1", weight_set=WEIGHTS) == 1
    with pytest.raises(StoreError, match="already read blind"):
        second.record_blind(reader, "c1", malignant=True, subtype=None)
    second.record_assisted(reader, "c1", malignant=False, subtype="neurinoma")
    assert second.reads().iloc[0]["state"] == "complete"
    second.close()


def test_rules_are_enforced_by_the_database_itself(store, db_path):
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    raw = sa.create_engine(f"sqlite:///{db_path}")
    with raw.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with pytest.raises(sa.exc.IntegrityError):  # UNIQUE(reader_id, case_id)
            conn.exec_driver_sql(
                "INSERT INTO blind_reads (reader_id, case_id, malignant, subtype, recorded_at) "
                f"VALUES ({reader}, 'c1', 0, 'lipoma', '2024-01-01')"
            )
        conn.rollback()
        store.start_case(reader, "c2", weight_set=WEIGHTS)
        with pytest.raises(sa.exc.IntegrityError):  # FOREIGN KEY to the blind read
            conn.exec_driver_sql(
                "INSERT INTO assisted_reads (reader_id, case_id, malignant, subtype, recorded_at) "
                f"VALUES ({reader}, 'c2', 1, NULL, '2024-01-01')"
            )
        conn.rollback()
    raw.dispose()


def test_in_memory_database_works(tmp_path):
    s = ReaderStudyStore("sqlite://")
    reader = s.register_reader("A")
    read_case(s, reader, "c1", (True, None), (True, None))
    assert s.reader_state(reader, "c1") == "complete"


def test_unreachable_database_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ReaderStudyStore(tmp_path / "missing" / "study.sqlite")


# --- concurrency -------------------------------------------------------------------------


def test_two_readers_record_at_the_same_time(db_path):
    shared = ReaderStudyStore(db_path)  # one engine shared by threads, as in the dashboard
    own = ReaderStudyStore(db_path)  # a second process's view of the same file
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(s: ReaderStudyStore, name: str) -> None:
        try:
            reader = s.register_reader(name)
            barrier.wait(timeout=10)
            for i in range(8):
                read_case(s, reader, f"c{i}", (False, "lipoma"), (True, None))
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [
        threading.Thread(target=work, args=(shared, "A")),
        threading.Thread(target=work, args=(own, "B")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    reads = shared.reads()
    assert len(reads) == 16 and set(reads["state"]) == {"complete"}
    for _, mine in reads.groupby("reader_name"):
        assert list(mine["seq"]) == list(range(1, 9))
    shared.close()
    own.close()


def test_racing_blind_reads_have_exactly_one_winner(db_path):
    setup = ReaderStudyStore(db_path)
    reader = setup.register_reader("A")
    cases = [f"race{i}" for i in range(4)]
    for case in cases:
        setup.start_case(reader, case, weight_set=WEIGHTS)
    racers = [ReaderStudyStore(db_path), ReaderStudyStore(db_path)]
    answers = [(True, None), (False, "lipoma")]
    outcomes: dict[tuple[int, str], str] = {}
    barrier = threading.Barrier(2)

    def race(k: int) -> None:
        for case in cases:
            barrier.wait(timeout=10)
            try:
                racers[k].record_blind(reader, case, malignant=answers[k][0], subtype=answers[k][1])
                outcomes[(k, case)] = "won"
            except StoreError as err:
                outcomes[(k, case)] = str(err)

    threads = [threading.Thread(target=race, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    reads = setup.reads().set_index("case_id")
    for case in cases:
        results = [outcomes[(0, case)], outcomes[(1, case)]]
        assert results.count("won") == 1, results
        loser = next(r for r in results if r != "won")
        assert "already read blind by this reader" in loser
        winner = results.index("won")
        assert bool(reads.loc[case, "blind_malignant"]) == answers[winner][0]
        subtype = reads.loc[case, "blind_subtype"]
        assert pd.isna(subtype) if answers[winner][1] is None else subtype == answers[winner][1]
    for s in (setup, *racers):
        s.close()


# --- focus grades and export -----------------------------------------------------------


def test_focus_grades_are_stored_once_unless_replaced(store):
    reader = store.register_reader("A")
    kwargs = dict(lesion_type="lipoma", model="dlm1", reader_coverage=0.5, iou=0.25, shape="box")
    store.record_focus_grade(reader, "c1", grade="most", **kwargs)
    store.record_focus_grade(reader, "c1", grade="complete", **{**kwargs, "model": "sm1"})
    with pytest.raises(StoreError, match="already graded"):
        store.record_focus_grade(reader, "c1", grade="none", **kwargs)
    store.record_focus_grade(reader, "c1", grade="partial", replace=True, **kwargs)
    grades = store.focus_grades(reader).set_index("model")
    assert grades.loc["dlm1", "grade"] == "partial" and grades.loc["sm1", "grade"] == "complete"
    assert grades.loc["dlm1", "iou"] == pytest.approx(0.25)
    with pytest.raises(StoreError, match="unknown grade"):
        store.record_focus_grade(reader, "c2", grade="some", **kwargs)
    with pytest.raises(StoreError, match="unknown model"):
        store.record_focus_grade(reader, "c2", grade="most", **{**kwargs, "model": "dlm3"})


def test_export_csv_round_trips(store, tmp_path):
    reader = store.register_reader("A")
    read_case(store, reader, "c1", (False, "lipoma"), (True, None), model_p_malignant=0.9)
    store.start_case(reader, "c2", weight_set=WEIGHTS)
    buffer = io.StringIO()
    store.export_csv(buffer)
    table = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert list(table["case_id"]) == ["c1", "c2"]
    assert list(table["state"]) == ["complete", "new"]
    assert table.loc[0, "model_p_malignant"] == pytest.approx(0.9)
    path = tmp_path / "focus.csv"
    store.export_csv(path, table="focus")
    assert path.read_text().startswith("reader_id,reader_name,case_id")


# --- summary statistics ---------------------------------------------------------------

TRUTH = {
    "c1": "malignant",
    "c2": "malignant",
    "c3": "lipoma",
    "c4": "hemangioma",
    "c5": "neurinoma",
    "c6": "benign",  # benign of unknown subtype: counts for benign vs malignant only
}
M, LIP = (True, None), (False, "lipoma")


def test_reader_study_summary_on_a_hand_checked_example(store):
    a = store.register_reader("A")
    read_case(store, a, "c1", M, M)  # B/M right, right
    read_case(store, a, "c2", LIP, M)  # B/M wrong -> right
    read_case(store, a, "c3", LIP, LIP)  # right, right in both tasks
    read_case(store, a, "c4", M, (False, "hemangioma"))  # wrong -> right in both tasks
    read_case(store, a, "c5", LIP, (False, "neurinoma"))  # B/M right; subtype wrong -> right
    read_case(store, a, "c6", (False, "epidermal_cyst"), M)  # B/M right -> wrong
    b = store.register_reader("B")
    read_case(store, b, "c3", LIP, LIP)
    store.start_case(b, "c4", weight_set=WEIGHTS)  # unfinished: not counted
    store.record_blind(b, "c4", malignant=True, subtype=None)

    summary = reader_study_summary(store.reads(), TRUTH).set_index(["reader_name", "task"])
    bm = summary.loc[("A", "benign_vs_malignant")]
    assert (bm["n"], bm["correct_before"], bm["correct_after"]) == (6, 4, 5)
    assert bm["accuracy_before"] == pytest.approx(4 / 6)
    # Clopper-Pearson 95%: 4/6 -> (0.2228, 0.9567), 5/6 -> (0.3588, 0.9958).
    assert (bm["ci_before_low"], bm["ci_before_high"]) == pytest.approx((0.2228, 0.9567), abs=1e-4)
    assert (bm["ci_after_low"], bm["ci_after_high"]) == pytest.approx((0.3588, 0.9958), abs=1e-4)
    # Discordant pairs: c6 right -> wrong (b = 1); c2 and c4 wrong -> right (c = 2).
    assert (bm["mcnemar_b"], bm["mcnemar_c"]) == (1, 2)
    # Exact binomial McNemar: p = 2 * P[Binomial(3, 1/2) <= 1] = 2 * 4/8, capped at 1.
    assert bm["mcnemar_method"] == "exact binomial"
    assert bm["mcnemar_p"] == pytest.approx(1.0)

    sub = summary.loc[("A", "benign_subtype")]
    assert (sub["n"], sub["correct_before"], sub["correct_after"]) == (3, 1, 3)
    # 1/3 -> (0.0084, 0.9057); 3/3 -> (0.2924, 1.0).
    assert (sub["ci_before_low"], sub["ci_before_high"]) == pytest.approx((0.0084, 0.9057), abs=1e-4)
    assert (sub["ci_after_low"], sub["ci_after_high"]) == pytest.approx((0.2924, 1.0), abs=1e-4)
    # c4 and c5 wrong -> right: exact p = 2 * 0.5**2 = 0.5.
    assert (sub["mcnemar_b"], sub["mcnemar_c"]) == (0, 2)
    assert sub["mcnemar_p"] == pytest.approx(0.5)

    c = store.register_reader("C")
    store.start_case(c, "c1", weight_set=WEIGHTS)  # nothing recorded yet
    summary = reader_study_summary(store.reads(), TRUTH).set_index(["reader_name", "task"])
    none_yet = summary.loc[("C", "benign_vs_malignant")]
    assert none_yet["n"] == 0 and pd.isna(none_yet["accuracy_before"]) and pd.isna(none_yet["mcnemar_p"])
    only_b = summary.loc[("B", "benign_subtype")]
    assert (only_b["n"], only_b["correct_before"], only_b["correct_after"]) == (1, 1, 1)


def test_reader_study_summary_refuses_missing_truth(store):
    a = store.register_reader("A")
    read_case(store, a, "c1", M, M)
    with pytest.raises(MetricsError, match="no truth label"):
        reader_study_summary(store.reads(), {})
    with pytest.raises(MetricsError, match="unknown truth labels"):
        reader_study_summary(store.reads(), {"c1": "sarcoma"})
    with pytest.raises(MetricsError, match="lacks the columns"):
        reader_study_summary(pd.DataFrame({"reader_id": [1]}), TRUTH)


def test_a_check_skipped_by_a_racing_writer_still_hits_the_constraint(store, monkeypatch):
    # Simulate a writer that passed the "already read?" check before the other committed:
    # the UNIQUE constraint must still refuse it, with the same message.
    reader = store.register_reader("A")
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    monkeypatch.setattr(ReaderStudyStore, "_state", staticmethod(lambda *args: "new"))
    with pytest.raises(StoreError, match="already read blind by this reader"):
        store.record_blind(reader, "c1", malignant=False, subtype="lipoma")
