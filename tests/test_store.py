"""Tests of softmass_core.reader_study.store: the blind-then-assisted reader study on SQLite and PostgreSQL.

Tests taking ``store`` or ``store_url`` run on both (PostgreSQL when SOFTMASS_TEST_POSTGRES_URL names a
server, see tests/conftest.py); the others test SQLite's own settings (a file path, WAL, its locking).
"""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softmass_core.errors import MetricsError, StoreError
from softmass_core.reader_study.store import (
    SCHEMA_VERSION,
    GradeExistsError,
    ReaderStudyStore,
    normalise_pin,
)
from softmass_core.stats.reader_study import reader_study_summary

WEIGHTS = "phantom-v1"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "study.sqlite"


@pytest.fixture
def store(store_url):
    s = ReaderStudyStore(store_url)
    yield s
    s.close()


def read_case(store, reader, case, blind, assisted, **model):
    """Start a case and record both reads; answers are (malignant, subtype)."""
    store.start_case(reader, case, weight_set=WEIGHTS)
    store.record_blind(reader, case, malignant=blind[0], subtype=blind[1])
    store.record_assisted(reader, case, malignant=assisted[0], subtype=assisted[1], **model)


# --- the protocol --------------------------------------------------------------------


def test_full_blind_then_assisted_flow(store):
    reg = store.register_reader("  Dr. Junior ", experience_years=8)
    reader = reg.reader_id
    assert store.identify_reader("Dr. Junior", reg.pin) == reader  # name stripped
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
    reader = store.register_reader("A").reader_id
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    with pytest.raises(StoreError, match="must not be revealed before"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None)
    assert store.reader_state(reader, "c1") == "new"


def test_blind_twice_and_assisted_twice_are_refused(store):
    reader = store.register_reader("A").reader_id
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
    reader = store.register_reader("A").reader_id
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
    reader = store.register_reader("A").reader_id
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    with pytest.raises(StoreError, match=message):
        store.record_blind(reader, "c1", malignant=malignant, subtype=subtype)
    assert store.reader_state(reader, "c1") == "new"


def test_numpy_booleans_are_answers_and_numpy_integers_are_not(store):
    import numpy as np

    reader = store.register_reader("A").reader_id
    for case in ("c1", "c2"):
        store.start_case(reader, case, weight_set=WEIGHTS)
    with pytest.raises(StoreError, match="True or False"):
        store.record_blind(reader, "c1", malignant=np.int64(1), subtype=None)
    store.record_blind(reader, "c1", malignant=np.True_, subtype=None)
    store.record_blind(reader, "c2", malignant=np.bool_(False), subtype="lipoma")
    reads = store.reads().set_index("case_id")
    assert reads.loc["c1", "blind_malignant"] is np.True_ and reads.loc["c2", "blind_subtype"] == "lipoma"


def test_bad_names_and_model_outputs_are_refused(store):
    with pytest.raises(StoreError, match="non-empty"):
        store.register_reader("   ")
    with pytest.raises(StoreError, match="experience_years"):
        store.register_reader("B", experience_years=-1)
    reader = store.register_reader("A").reader_id
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    with pytest.raises(StoreError, match=r"\[0, 1\]"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None, model_p_malignant=1.5)
    with pytest.raises(StoreError, match="unknown model diagnosis"):
        store.record_assisted(reader, "c1", malignant=True, subtype=None, model_diagnosis="cat")


def test_order_is_logged_per_reader_and_start_is_idempotent(store):
    a = store.register_reader("A").reader_id
    b = store.register_reader("B").reader_id
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
    reg = first.register_reader("A")
    reader = reg.reader_id
    first.start_case(reader, "c1", weight_set=WEIGHTS)
    first.record_blind(reader, "c1", malignant=False, subtype="neurinoma")
    first.close()
    del first

    second = ReaderStudyStore(db_path)
    assert second.identify_reader("A", reg.pin) == reader
    assert second.reader_state(reader, "c1") == "blind_done"
    assert second.start_case(reader, "c1", weight_set=WEIGHTS) == 1
    with pytest.raises(StoreError, match="already read blind"):
        second.record_blind(reader, "c1", malignant=True, subtype=None)
    second.record_assisted(reader, "c1", malignant=False, subtype="neurinoma")
    assert second.reads().iloc[0]["state"] == "complete"
    second.close()


def test_rules_are_enforced_by_the_database_itself(store):
    reader = store.register_reader("A").reader_id
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    sqlite = store.engine.dialect.name == "sqlite"
    raw = sa.create_engine(store.url)
    with raw.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with pytest.raises(sa.exc.IntegrityError):  # UNIQUE(reader_id, case_id)
            conn.exec_driver_sql(
                "INSERT INTO blind_reads (reader_id, case_id, malignant, subtype, recorded_at) "
                f"VALUES ({reader}, 'c1', FALSE, 'lipoma', '2024-01-01')"
            )
        conn.rollback()
        store.start_case(reader, "c2", weight_set=WEIGHTS)
        with pytest.raises(sa.exc.IntegrityError):  # FOREIGN KEY to the blind read
            conn.exec_driver_sql(
                "INSERT INTO assisted_reads (reader_id, case_id, malignant, subtype, recorded_at) "
                f"VALUES ({reader}, 'c2', TRUE, NULL, '2024-01-01')"
            )
        conn.rollback()
        with pytest.raises(sa.exc.IntegrityError):  # CHECK: a malignant answer has no subtype
            conn.exec_driver_sql(
                "INSERT INTO blind_reads (reader_id, case_id, malignant, subtype, recorded_at) "
                f"VALUES ({reader}, 'c2', TRUE, 'lipoma', '2024-01-01')"
            )
        conn.rollback()
    raw.dispose()


def test_in_memory_database_works(tmp_path):
    s = ReaderStudyStore("sqlite://")
    reader = s.register_reader("A").reader_id
    read_case(s, reader, "c1", (True, None), (True, None))
    assert s.reader_state(reader, "c1") == "complete"


def test_unreachable_database_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        ReaderStudyStore(tmp_path / "missing" / "study.sqlite")


# --- concurrency -------------------------------------------------------------------------


def test_two_readers_record_at_the_same_time(store_url):
    shared = ReaderStudyStore(store_url)  # one engine shared by threads, as in the dashboard
    own = ReaderStudyStore(store_url)  # a second process's view of the same file
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(s: ReaderStudyStore, name: str) -> None:
        try:
            reader = s.register_reader(name).reader_id
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


def test_racing_blind_reads_have_exactly_one_winner(store_url):
    setup = ReaderStudyStore(store_url)
    reader = setup.register_reader("A").reader_id
    cases = [f"race{i}" for i in range(4)]
    for case in cases:
        setup.start_case(reader, case, weight_set=WEIGHTS)
    racers = [ReaderStudyStore(store_url), ReaderStudyStore(store_url)]
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


def test_focus_grades_are_stored_once_per_weight_set_unless_replaced(store):
    reader = store.register_reader("A").reader_id
    kwargs = dict(lesion_type="lipoma", model="dlm1", weight_set=WEIGHTS, reader_coverage=0.5, iou=0.25, shape="box")
    store.record_focus_grade(reader, "c1", grade="most", **kwargs)
    store.record_focus_grade(reader, "c1", grade="complete", **{**kwargs, "model": "sm1"})
    with pytest.raises(GradeExistsError, match="already graded") as err:
        store.record_focus_grade(reader, "c1", grade="none", **kwargs)
    # A message for people, not for programmers (it said "pass replace=True to overwrite it").
    assert "replace=True" not in str(err.value) and "replace the earlier grade" in str(err.value)
    store.record_focus_grade(reader, "c1", grade="partial", replace=True, **kwargs)
    # DLM-1 of another weight set is another model: its grade is kept beside the first.
    store.record_focus_grade(reader, "c1", grade="none", **{**kwargs, "weight_set": "busi v1.0"})
    grades = store.focus_grades(reader).set_index(["weight_set", "model"])
    assert grades.loc[(WEIGHTS, "dlm1"), "grade"] == "partial" and grades.loc[(WEIGHTS, "sm1"), "grade"] == "complete"
    assert grades.loc[("busi v1.0", "dlm1"), "grade"] == "none"
    assert grades.loc[(WEIGHTS, "dlm1"), "iou"] == pytest.approx(0.25)
    with pytest.raises(StoreError, match="unknown grade"):
        store.record_focus_grade(reader, "c2", grade="some", **kwargs)
    with pytest.raises(StoreError, match="unknown model"):
        store.record_focus_grade(reader, "c2", grade="most", **{**kwargs, "model": "dlm3"})
    with pytest.raises(StoreError, match="weight_set"):
        store.record_focus_grade(reader, "c2", grade="most", **{**kwargs, "weight_set": " "})


def test_a_racing_duplicate_grade_is_a_grade_exists_error(store, monkeypatch):
    # A second writer that passed the "already graded?" check is refused by the UNIQUE constraint, with the same type.
    reader = store.register_reader("A").reader_id
    kwargs = dict(lesion_type="lipoma", model="dlm1", weight_set=WEIGHTS, reader_coverage=0.5, iou=0.25, shape="box")
    store.record_focus_grade(reader, "c1", grade="most", **kwargs)
    real_execute = Connection.execute

    def skip_the_check(self, statement, *args, **kw):
        if isinstance(statement, sa.Select) and "focus_grades" in str(statement):
            return real_execute(self, sa.select(sa.literal(1)).where(sa.false()))
        return real_execute(self, statement, *args, **kw)

    monkeypatch.setattr(Connection, "execute", skip_the_check)
    with pytest.raises(GradeExistsError, match="already graded"):
        store.record_focus_grade(reader, "c1", grade="none", **kwargs)


def test_export_csv_round_trips(store, tmp_path):
    reader = store.register_reader("A").reader_id
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
    assert path.read_text().startswith("reader_id,reader_name,case_id,model,weight_set,")


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
    a = store.register_reader("A").reader_id
    read_case(store, a, "c1", M, M)  # B/M right, right
    read_case(store, a, "c2", LIP, M)  # B/M wrong -> right
    read_case(store, a, "c3", LIP, LIP)  # right, right in both tasks
    read_case(store, a, "c4", M, (False, "hemangioma"))  # wrong -> right in both tasks
    read_case(store, a, "c5", LIP, (False, "neurinoma"))  # B/M right; subtype wrong -> right
    read_case(store, a, "c6", (False, "epidermal_cyst"), M)  # B/M right -> wrong
    b = store.register_reader("B").reader_id
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

    c = store.register_reader("C").reader_id
    store.start_case(c, "c1", weight_set=WEIGHTS)  # nothing recorded yet
    summary = reader_study_summary(store.reads(), TRUTH).set_index(["reader_name", "task"])
    none_yet = summary.loc[("C", "benign_vs_malignant")]
    assert none_yet["n"] == 0 and pd.isna(none_yet["accuracy_before"]) and pd.isna(none_yet["mcnemar_p"])
    only_b = summary.loc[("B", "benign_subtype")]
    assert (only_b["n"], only_b["correct_before"], only_b["correct_after"]) == (1, 1, 1)


def test_reader_study_summary_refuses_missing_truth(store):
    a = store.register_reader("A").reader_id
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
    reader = store.register_reader("A").reader_id
    store.start_case(reader, "c1", weight_set=WEIGHTS)
    store.record_blind(reader, "c1", malignant=True, subtype=None)
    monkeypatch.setattr(ReaderStudyStore, "_state", staticmethod(lambda *args: "new"))
    with pytest.raises(StoreError, match="already read blind by this reader"):
        store.record_blind(reader, "c1", malignant=False, subtype="lipoma")


# --- identity: PINs --------------------------------------------------------------------


def test_registration_draws_a_pin_stored_only_as_a_salted_hash(store):
    a = store.register_reader("Ada", experience_years=8)
    b = store.register_reader("Bo")
    assert a.reader_id != b.reader_id and a.pin != b.pin
    assert len(a.pin) == 9 and a.pin[4] == "-" and normalise_pin(a.pin) == a.pin.replace("-", "")
    with store.engine.connect() as conn:
        stored = dict(conn.exec_driver_sql("SELECT name, pin_hash FROM readers").all())
    assert stored["Ada"].startswith("scrypt$") and a.pin.replace("-", "") not in stored["Ada"]
    assert stored["Ada"].split("$")[4] != stored["Bo"].split("$")[4]  # each hash has its own salt
    readers = store.readers()
    assert "pin_hash" not in readers.columns and list(readers["has_pin"]) == [True, True]


def test_identify_needs_the_right_pin_and_changes_nothing(store):
    reg = store.register_reader("Ada", experience_years=8)
    assert store.identify_reader("Ada", reg.pin) == reg.reader_id
    assert store.identify_reader(" Ada ", reg.pin.lower().replace("-", " ")) == reg.reader_id
    other = store.register_reader("Bo").pin
    with pytest.raises(StoreError, match="does not match reader 'Ada'"):
        store.identify_reader("Ada", other)  # another reader's PIN
    with pytest.raises(StoreError, match="8 letters and digits"):
        store.identify_reader("Ada", "")
    with pytest.raises(StoreError, match="No reader called 'Eve'"):
        store.identify_reader("Eve", reg.pin)
    # Typing an existing name to register is refused; the stored experience stays.
    with pytest.raises(StoreError, match="already registered"):
        store.register_reader("Ada", experience_years=0)
    with pytest.raises(StoreError, match="already registered"):
        store.register_reader(" Ada")
    assert store.readers().set_index("name").loc["Ada", "experience_years"] == 8


def test_a_new_pin_from_the_administrator_replaces_the_old_one(store):
    reg = store.register_reader("Ada", experience_years=8)
    new = store.issue_pin(reg.reader_id)
    assert store.identify_reader("Ada", new) == reg.reader_id
    with pytest.raises(StoreError, match="does not match"):
        store.identify_reader("Ada", reg.pin)
    assert store.readers().set_index("name").loc["Ada", "experience_years"] == 8
    with pytest.raises(StoreError, match="unknown reader id 99"):
        store.issue_pin(99)
    with pytest.raises(StoreError, match="No reader called"):
        store.reader_id("Eve")


def test_racing_registrations_of_one_name_have_one_winner(store_url):
    racers = [ReaderStudyStore(store_url), ReaderStudyStore(store_url)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go(k: int) -> None:
        barrier.wait(timeout=10)
        try:
            racers[k].register_reader("Ada")
            outcomes.append("won")
        except StoreError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=go, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count("won") == 1 and "already registered" in next(o for o in outcomes if o != "won")
    assert len(racers[0].readers()) == 1
    for s in racers:
        s.close()


# --- schema versions: databases of the previous version ---------------------------------


def _schema_1(meta: sa.MetaData) -> None:
    """The tables exactly as softmass made them before schema versions (store.py until this change)."""
    answer = "(malignant AND subtype IS NULL) OR (NOT malignant AND subtype IS NOT NULL)"
    sa.Table(
        "readers",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("experience_years", sa.Integer, nullable=True),
        sa.Column("registered_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "case_reads",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("weight_set", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("reader_id", "case_id", name="uq_case_reads_reader_case"),
        sa.UniqueConstraint("reader_id", "seq", name="uq_case_reads_reader_seq"),
    )
    for name, extra in (
        ("blind_reads", []),
        ("assisted_reads", [sa.Column("model_p_malignant", sa.Float), sa.Column("model_diagnosis", sa.String(64))]),
    ):
        parent = "case_reads" if name == "blind_reads" else "blind_reads"
        sa.Table(
            name,
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("reader_id", sa.Integer, nullable=False),
            sa.Column("case_id", sa.String(200), nullable=False),
            sa.Column("malignant", sa.Boolean, nullable=False),
            sa.Column("subtype", sa.String(64), nullable=True),
            *extra,
            sa.Column("recorded_at", sa.DateTime, nullable=False),
            sa.UniqueConstraint("reader_id", "case_id", name=f"uq_{name}_reader_case"),
            sa.ForeignKeyConstraint(["reader_id", "case_id"], [f"{parent}.reader_id", f"{parent}.case_id"]),
            sa.CheckConstraint(answer, name=f"ck_{name}_answer"),
        )
    sa.Table(
        "focus_grades",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("lesion_type", sa.String(64), nullable=False),
        sa.Column("grade", sa.String(16), nullable=False),
        sa.Column("reader_coverage", sa.Float, nullable=False),
        sa.Column("iou", sa.Float, nullable=False),
        sa.Column("shape", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("reader_id", "case_id", "model", name="uq_focus_grades_reader_case_model"),
    )


def _make_schema_1_db(url) -> None:
    """A database as the previous softmass left it: one reader, a finished and an open read, one focus grade."""
    meta = sa.MetaData()
    _schema_1(meta)
    engine = sa.create_engine(url)
    meta.create_all(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(t["readers"].insert().values(id=1, name="Dr Old", experience_years=12, registered_at=NOW))
        for seq, case in enumerate(("demo-malignant-2", "demo-lipoma-1"), start=1):
            conn.execute(
                t["case_reads"]
                .insert()
                .values(reader_id=1, case_id=case, seq=seq, weight_set="phantom v1.3.0", started_at=NOW)
            )
        conn.execute(
            t["blind_reads"]
            .insert()
            .values(reader_id=1, case_id="demo-malignant-2", malignant=False, subtype="lipoma", recorded_at=NOW)
        )
        conn.execute(
            t["assisted_reads"]
            .insert()
            .values(
                reader_id=1,
                case_id="demo-malignant-2",
                malignant=True,
                subtype=None,
                model_p_malignant=0.91,
                model_diagnosis="malignant",
                recorded_at=NOW,
            )
        )
        conn.execute(
            t["focus_grades"]
            .insert()
            .values(
                reader_id=1,
                case_id="demo-lipoma-1",
                model="dlm1",
                lesion_type="lipoma",
                grade="most",
                reader_coverage=0.6,
                iou=0.3,
                shape="box",
                recorded_at=NOW,
            )
        )
    engine.dispose()


NOW = datetime(2026, 1, 2, 3, 4, 5)


def test_a_schema_1_database_is_upgraded_and_keeps_every_read(store_url):
    _make_schema_1_db(store_url)
    store = ReaderStudyStore(store_url)
    assert store.opened_version == 1
    reads = store.reads()
    assert list(reads["case_id"]) == ["demo-malignant-2", "demo-lipoma-1"]
    assert list(reads["state"]) == ["complete", "new"]
    done = reads.iloc[0]
    assert (done["reader_name"], done["experience_years"], done["weight_set"]) == ("Dr Old", 12, "phantom v1.3.0")
    assert not done["blind_malignant"] and done["blind_subtype"] == "lipoma" and done["assisted_malignant"]
    assert done["model_p_malignant"] == pytest.approx(0.91) and done["blind_at"] == NOW
    grades = store.focus_grades()
    assert len(grades) == 1 and grades.loc[0, "grade"] == "most" and pd.isna(grades.loc[0, "weight_set"])
    # The older reader has no PIN: they are sent to the administrator, who issues one.
    assert list(store.readers()["has_pin"]) == [False]
    with pytest.raises(StoreError, match="ask the study administrator"):
        store.identify_reader("Dr Old", "2345-6789")
    pin = store.issue_pin(1)
    assert store.identify_reader("Dr Old", pin) == 1
    # The upgraded database takes the new rules: a grade per weight set, the protocol as before.
    kwargs = dict(lesion_type="lipoma", model="dlm1", reader_coverage=0.5, iou=0.25, shape="box")
    store.record_focus_grade(1, "demo-lipoma-1", grade="none", weight_set=WEIGHTS, **kwargs)
    with pytest.raises(GradeExistsError):
        store.record_focus_grade(1, "demo-lipoma-1", grade="none", weight_set=WEIGHTS, **kwargs)
    store.record_blind(1, "demo-lipoma-1", malignant=False, subtype="lipoma")
    assert store.start_case(1, "S01", weight_set=WEIGHTS) == 3
    store.close()
    # Opened again: already at the current version, nothing to do, nothing lost.
    again = ReaderStudyStore(store_url)
    assert again.opened_version == SCHEMA_VERSION
    assert len(again.reads()) == 3 and len(again.focus_grades()) == 2
    assert _schema_drift(again) == []  # the upgraded tables are exactly those of a new database
    again.close()


def _schema_drift(store) -> list:
    """What differs between the store's tables and the ones its queries use (Alembic's autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from softmass_core.reader_study.store.schema import metadata

    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _tables(url) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    return tables


def test_a_failed_upgrade_leaves_the_old_database_as_it_was(store_url, monkeypatch):
    from alembic import command

    from softmass_core.reader_study.store import migrate as migrate_module

    _make_schema_1_db(store_url)

    class HalfThenFail:
        stamp = staticmethod(command.stamp)

        @staticmethod
        def upgrade(config, revision):
            command.upgrade(config, revision)  # every revision ran, in the open transaction; then the disk fills
            raise sa.exc.OperationalError("upgrade", {}, Exception("disk full"))

    monkeypatch.setattr(migrate_module, "command", HalfThenFail)
    with pytest.raises(StoreError, match="cannot open the reader-study database"):
        ReaderStudyStore(store_url)
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        columns = {c["name"] for c in sa.inspect(conn).get_columns("readers")}
        n_grades = conn.exec_driver_sql("SELECT count(*) FROM focus_grades").scalar()
    engine.dispose()
    assert {"softmass_schema", "alembic_version"} & tables == set() and "pin_hash" not in columns
    assert n_grades == 1
    monkeypatch.setattr(migrate_module, "command", command)
    assert ReaderStudyStore(store_url).opened_version == 1  # and the next open upgrades it


def test_a_database_made_by_softmass_before_alembic_is_stamped_and_keeps_every_read(store_url):
    """Schema 2 as softmass made it until Alembic: the tables of today and softmass_schema, no alembic_version."""
    from softmass_core.reader_study.store.migrate import current_revision, head_revision
    from softmass_core.reader_study.store.pins import _hash_pin
    from softmass_core.reader_study.store.schema import metadata

    engine = sa.create_engine(store_url)
    t = metadata.tables
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t["softmass_schema"].insert().values(id=1, version=2, upgraded_at=NOW))
        conn.execute(t["readers"].insert().values(name="Dr Two", registered_at=NOW, pin_hash=_hash_pin("2345-6789")))
        reader = conn.execute(sa.select(t["readers"].c.id)).scalar()
        conn.execute(
            t["case_reads"].insert().values(reader_id=reader, case_id="S01", seq=1, weight_set=WEIGHTS, started_at=NOW)
        )
        conn.execute(
            t["blind_reads"]
            .insert()
            .values(reader_id=reader, case_id="S01", malignant=True, subtype=None, recorded_at=NOW)
        )
    engine.dispose()
    assert "alembic_version" not in _tables(store_url)
    store = ReaderStudyStore(store_url)
    assert store.opened_version == 2
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision() == "0002"
    assert store.identify_reader("Dr Two", "2345-6789") == reader
    reads = store.reads()
    assert list(reads["case_id"]) == ["S01"] and list(reads["state"]) == ["blind_done"]
    store.record_assisted(reader, "S01", malignant=False, subtype="lipoma")
    assert _schema_drift(store) == []
    store.close()
    again = ReaderStudyStore(store_url)
    assert again.opened_version == 2 and list(again.reads()["state"]) == ["complete"]
    again.close()


def test_a_database_of_a_newer_softmass_is_refused(store_url):
    ReaderStudyStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE softmass_schema SET version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema version 3, made by a newer softmass"):
        ReaderStudyStore(store_url)
    with engine.begin() as conn:  # a later revision of Alembic's that this softmass does not ship
        conn.exec_driver_sql(f"UPDATE softmass_schema SET version = {SCHEMA_VERSION}")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    with pytest.raises(StoreError, match="revision '0099', made by a newer softmass"):
        ReaderStudyStore(store_url)


def test_a_new_database_starts_at_the_current_version(store_url):
    from softmass_core.reader_study.store.migrate import current_revision, head_revision

    store = ReaderStudyStore(store_url)
    assert store.opened_version == 0
    with store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert _schema_drift(store) == []  # the revisions build exactly the tables the queries use
    store.close()
    assert ReaderStudyStore(store_url).opened_version == SCHEMA_VERSION
