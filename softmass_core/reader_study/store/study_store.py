"""The reader-study store: readers and PINs, the blind-then-assisted reads, and the focus grades."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softmass_core import labels
from softmass_core.errors import StoreError
from softmass_core.inference.focus import GRADES
from softmass_core.reader_study.store.engine import (
    _READ_ONLY,
    DEFAULT_URL,
    _check_answer,
    _check_id,
    _check_text,
    _Retry,
    _shown,
    _sqlite_engine,
    _to_url,
)
from softmass_core.reader_study.store.migrate import migrate
from softmass_core.reader_study.store.pins import Registration, _hash_pin, _pin_matches, new_pin, normalise_pin
from softmass_core.reader_study.store.schema import (
    FOCUS_COLUMNS,
    READ_COLUMNS,
    _now,
    assisted_reads_table,
    blind_reads_table,
    case_reads_table,
    focus_grades_table,
    readers_table,
)


class GradeExistsError(StoreError):
    """This reader already graded this model's focus on this case (see ``record_focus_grade(replace=...)``)."""


class ReaderStudyStore:
    """Reader-study database behind one SQLAlchemy engine (thread-safe).

    ``url`` is an SQLAlchemy URL or a plain file path (taken as an SQLite
    file).  Tables are created if missing, and a database of an older schema
    is upgraded by the Alembic revisions (:mod:`~softmass_core.reader_study.store.migrate`).
    """

    def __init__(self, url: str | Path = DEFAULT_URL) -> None:
        self.url = _to_url(url)
        try:
            parsed = sa.engine.make_url(self.url)
            if parsed.get_backend_name() == "sqlite":
                self.engine, memory = _sqlite_engine(parsed)
            else:
                self.engine, memory = sa.create_engine(parsed, pool_pre_ping=True), False
            # One shared connection for an in-memory database: serialise its use.
            self._lock: Any = threading.RLock() if memory else contextlib.nullcontext()
            with self._lock, self.engine.begin() as conn:
                #: Schema version the database had when opened (0: it was empty).
                self.opened_version = migrate(conn)
        except (sa.exc.SQLAlchemyError, ImportError) as err:
            raise StoreError(
                f"cannot open the reader-study database {_shown(self.url)}: {err}. "
                "Check the URL, that the server is reachable and its driver is installed."
            ) from err

    def __repr__(self) -> str:
        return f"ReaderStudyStore({_shown(self.url)!r})"

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    @contextlib.contextmanager
    def _tx(
        self, *, read_only: bool = False, conflict: str | None = "", conflict_error: type[StoreError] = StoreError
    ) -> Iterator[Connection]:
        """One transaction; IntegrityError becomes ``conflict_error(conflict)``, or _Retry if ``conflict`` is None."""
        with self._lock:
            try:
                conn = self.engine.connect()
                if read_only:
                    conn = conn.execution_options(**{_READ_ONLY: True})
                with conn, conn.begin():
                    yield conn
            except sa.exc.IntegrityError as err:
                if conflict is None:
                    raise _Retry from err
                raise conflict_error(conflict or f"the database refused the change: {err.orig}") from err
            except sa.exc.OperationalError as err:
                raise StoreError(
                    f"the reader-study database {_shown(self.url)} is unavailable or busy ({err.orig}); try again"
                ) from err

    # --- readers ---------------------------------------------------------------

    def register_reader(self, name: str, *, experience_years: int | None = None) -> Registration:
        """Register a new reader called ``name`` (stripped) and draw their PIN.

        Returns the reader's id and PIN; show the PIN to the reader once: only
        its salted hash is stored.  ``experience_years`` (0-80) is stored as
        given and is not changed by identifying later.  Raises StoreError if
        the name is already registered (identify with :meth:`identify_reader`,
        or choose another name).
        """
        name = _check_text(name, "the reader's name")
        years = None
        if experience_years is not None:
            ok = isinstance(experience_years, int) and not isinstance(experience_years, bool)
            if not ok or not 0 <= experience_years <= 80:
                raise StoreError(f"experience_years must be a whole number from 0 to 80, got {experience_years!r}")
            years = int(experience_years)
        taken = (
            f"A reader called {name!r} is already registered: if that is you, identify with your name and PIN; "
            "otherwise choose another name."
        )
        pin = new_pin()
        pin_hash = _hash_pin(pin)  # outside the transaction: it takes a noticeable moment
        r = readers_table
        with self._tx(conflict=taken) as conn:
            if conn.execute(sa.select(r.c.id).where(r.c.name == name)).first() is not None:
                raise StoreError(taken)
            result = conn.execute(
                r.insert().values(name=name, experience_years=years, registered_at=_now(), pin_hash=pin_hash)
            )
            return Registration(reader_id=int(result.inserted_primary_key[0]), pin=pin)

    def identify_reader(self, name: str, pin: str) -> int:
        """Id of the registered reader ``name`` whose PIN is ``pin``; changes nothing stored.

        ``pin`` may be typed in small letters, with or without the dash.
        Raises StoreError for an unknown name, a wrong PIN, or a reader
        registered before PINs existed (they ask the study administrator,
        who calls :meth:`issue_pin`).
        """
        name = _check_text(name, "the reader's name")
        typed = normalise_pin(pin)
        r = readers_table
        with self._tx(read_only=True) as conn:
            row = conn.execute(sa.select(r.c.id, r.c.pin_hash).where(r.c.name == name)).first()
        if row is None:
            raise StoreError(
                f"No reader called {name!r} is registered: check the spelling, or register as a new reader."
            )
        if row.pin_hash is None:
            raise StoreError(
                f"Reader {name!r} was registered before readers had PINs: ask the study administrator "
                "to issue your PIN, then identify with it."
            )
        if not _pin_matches(typed, row.pin_hash):
            raise StoreError(
                f"That PIN does not match reader {name!r}: check it, or ask the study administrator for a new one."
            )
        return int(row.id)

    def issue_pin(self, reader_id: int) -> str:
        """Draw a new PIN for a registered reader (a study-administrator action); returns it.

        For a reader registered before PINs existed, or one who lost theirs:
        the old PIN stops working.  Nothing else about the reader changes.
        """
        reader_id = _check_id(reader_id, "reader_id")
        pin = new_pin()
        pin_hash = _hash_pin(pin)
        r = readers_table
        with self._tx() as conn:
            self._require_reader(conn, reader_id)
            conn.execute(r.update().where(r.c.id == reader_id).values(pin_hash=pin_hash))
        return pin

    def reader_id(self, name: str) -> int:
        """Id of the registered reader called ``name`` (stripped); StoreError if there is none."""
        name = _check_text(name, "the reader's name")
        r = readers_table
        with self._tx(read_only=True) as conn:
            found = conn.execute(sa.select(r.c.id).where(r.c.name == name)).scalar()
        if found is None:
            raise StoreError(f"No reader called {name!r} is registered.")
        return int(found)

    def _require_reader(self, conn: Connection, reader_id: int) -> None:
        r = readers_table
        if conn.execute(sa.select(r.c.id).where(r.c.id == reader_id)).scalar() is None:
            raise StoreError(f"unknown reader id {reader_id}: identify yourself (register) first")

    def readers(self) -> pd.DataFrame:
        """Registered readers: id, name, experience_years, registered_at, has_pin (never the PIN's hash)."""
        r = readers_table
        query = sa.select(
            r.c.id, r.c.name, r.c.experience_years, r.c.registered_at, r.c.pin_hash.is_not(None).label("has_pin")
        ).order_by(r.c.id)
        with self._tx(read_only=True) as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(
            [row._asdict() for row in rows],
            columns=["id", "name", "experience_years", "registered_at", "has_pin"],
        )
        return frame.astype({"has_pin": bool})

    # --- the reading protocol -------------------------------------------------

    def start_case(self, reader_id: int, case_id: str, *, weight_set: str) -> int:
        """Log that the reader opened ``case_id``; returns its order (1, 2, ...) for them.

        Idempotent while the case is unfinished: opening it again returns the
        same number and keeps the first start time and weight set.  Raises
        StoreError once the reader has finished the case.
        """
        reader_id = _check_id(reader_id, "reader_id")
        case_id = _check_text(case_id, "case_id")
        weight_set = _check_text(weight_set, "weight_set")
        c = case_reads_table
        for _ in range(5):  # retried only when a concurrent start took the same number
            with contextlib.suppress(_Retry), self._tx(conflict=None) as conn:
                self._require_reader(conn, reader_id)
                seq = conn.execute(
                    sa.select(c.c.seq).where(c.c.reader_id == reader_id, c.c.case_id == case_id)
                ).scalar()
                if seq is not None:
                    if self._state(conn, reader_id, case_id) == "complete":
                        raise StoreError(
                            f"case {case_id!r} was already read by this reader (blind and "
                            "assisted); each reader reads a case once"
                        )
                    return int(seq)
                last = conn.execute(sa.select(sa.func.max(c.c.seq)).where(c.c.reader_id == reader_id)).scalar()
                seq = int(last or 0) + 1
                conn.execute(
                    c.insert().values(
                        reader_id=reader_id,
                        case_id=case_id,
                        seq=seq,
                        weight_set=weight_set,
                        started_at=_now(),
                    )
                )
                return seq
        raise StoreError(f"could not start case {case_id!r}: the database stayed busy; try again")

    def record_blind(self, reader_id: int, case_id: str, *, malignant: bool, subtype: str | None) -> None:
        """Commit the reader's diagnosis from the images alone.

        ``subtype`` is one of ``labels.SUBTYPES`` when benign and None when
        malignant.  Raises StoreError if the case was not started or was
        already read blind by this reader.
        """
        reader_id = _check_id(reader_id, "reader_id")
        case_id = _check_text(case_id, "case_id")
        malignant, subtype = _check_answer(malignant, subtype)
        already = f"case {case_id!r} was already read blind by this reader; a blind read cannot be repeated"
        with self._tx(conflict=already) as conn:
            self._require_reader(conn, reader_id)
            c = case_reads_table
            started = conn.execute(sa.select(c.c.id).where(c.c.reader_id == reader_id, c.c.case_id == case_id)).scalar()
            if started is None:
                raise StoreError(f"case {case_id!r} was not started: call start_case first")
            if self._state(conn, reader_id, case_id) != "new":
                raise StoreError(already)
            conn.execute(
                blind_reads_table.insert().values(
                    reader_id=reader_id,
                    case_id=case_id,
                    malignant=malignant,
                    subtype=subtype,
                    recorded_at=_now(),
                )
            )

    def record_assisted(
        self,
        reader_id: int,
        case_id: str,
        *,
        malignant: bool,
        subtype: str | None,
        model_p_malignant: float | None = None,
        model_diagnosis: str | None = None,
    ) -> None:
        """Commit the reader's revised diagnosis after seeing the model's result.

        ``model_p_malignant`` (in [0, 1]) and ``model_diagnosis`` (a label) are
        what was shown.  Raises StoreError if there is no blind read yet (the
        model's result must not be revealed before it) or if the assisted read
        was already recorded.
        """
        reader_id = _check_id(reader_id, "reader_id")
        case_id = _check_text(case_id, "case_id")
        malignant, subtype = _check_answer(malignant, subtype)
        if model_p_malignant is not None:
            p = float(model_p_malignant)
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise StoreError(f"model_p_malignant must lie in [0, 1], got {model_p_malignant!r}")
            model_p_malignant = p
        if model_diagnosis is not None and model_diagnosis not in labels.COHORT_LABELS:
            raise StoreError(
                f"unknown model diagnosis {model_diagnosis!r}; expected one of {', '.join(labels.COHORT_LABELS)}"
            )
        already = f"the assisted read of case {case_id!r} was already recorded by this reader"
        with self._tx(conflict=already) as conn:
            self._require_reader(conn, reader_id)
            state = self._state(conn, reader_id, case_id)
            if state == "new":
                raise StoreError(
                    f"case {case_id!r} has no blind read by this reader yet: record the blind "
                    "diagnosis first; the model's result must not be revealed before it"
                )
            if state == "complete":
                raise StoreError(already)
            conn.execute(
                assisted_reads_table.insert().values(
                    reader_id=reader_id,
                    case_id=case_id,
                    malignant=malignant,
                    subtype=subtype,
                    model_p_malignant=model_p_malignant,
                    model_diagnosis=model_diagnosis,
                    recorded_at=_now(),
                )
            )

    @staticmethod
    def _state(conn: Connection, reader_id: int, case_id: str) -> str:
        def exists(table: sa.Table) -> bool:
            query = sa.select(table.c.id).where(table.c.reader_id == reader_id, table.c.case_id == case_id)
            return conn.execute(query).first() is not None

        if exists(assisted_reads_table):
            return "complete"
        if exists(blind_reads_table):
            return "blind_done"
        return "new"

    def reader_state(self, reader_id: int, case_id: str) -> str:
        """``"new"``, ``"blind_done"`` or ``"complete"``: reveal the model only after blind_done."""
        reader_id = _check_id(reader_id, "reader_id")
        case_id = _check_text(case_id, "case_id")
        with self._tx(read_only=True) as conn:
            self._require_reader(conn, reader_id)
            return self._state(conn, reader_id, case_id)

    def reads(self, reader_id: int | None = None) -> pd.DataFrame:
        """One row per (reader, case) started, ordered by reader and order; see READ_COLUMNS.

        ``*_malignant`` are nullable booleans, ``*_at`` naive UTC datetimes,
        ``state`` as in :meth:`reader_state`; what was not recorded yet (and a
        malignant answer's subtype) is missing: test it with ``pd.isna``.
        """
        r, c, b, a = readers_table, case_reads_table, blind_reads_table, assisted_reads_table
        on_b = sa.and_(b.c.reader_id == c.c.reader_id, b.c.case_id == c.c.case_id)
        on_a = sa.and_(a.c.reader_id == c.c.reader_id, a.c.case_id == c.c.case_id)
        query = (
            sa.select(
                c.c.reader_id,
                r.c.name.label("reader_name"),
                r.c.experience_years,
                c.c.case_id,
                c.c.seq,
                c.c.weight_set,
                c.c.started_at,
                b.c.recorded_at.label("blind_at"),
                b.c.malignant.label("blind_malignant"),
                b.c.subtype.label("blind_subtype"),
                a.c.recorded_at.label("assisted_at"),
                a.c.malignant.label("assisted_malignant"),
                a.c.subtype.label("assisted_subtype"),
                a.c.model_p_malignant,
                a.c.model_diagnosis,
            )
            .select_from(c.join(r, r.c.id == c.c.reader_id).outerjoin(b, on_b).outerjoin(a, on_a))
            .order_by(c.c.reader_id, c.c.seq)
        )
        if reader_id is not None:
            query = query.where(c.c.reader_id == _check_id(reader_id, "reader_id"))
        with self._tx(read_only=True) as conn:
            rows = [row._asdict() for row in conn.execute(query)]
        for row in rows:
            row["state"] = (
                "complete" if row["assisted_at"] is not None else "blind_done" if row["blind_at"] is not None else "new"
            )
        frame = pd.DataFrame(rows, columns=list(READ_COLUMNS))
        for col in ("started_at", "blind_at", "assisted_at"):
            frame[col] = pd.to_datetime(frame[col])
        return frame.astype(
            {
                "experience_years": "Int64",
                "blind_malignant": "boolean",
                "assisted_malignant": "boolean",
                "model_p_malignant": "float64",
            }
        )

    # --- Grad-CAM focus grades --------------------------------------------------

    def record_focus_grade(
        self,
        reader_id: int,
        case_id: str,
        *,
        lesion_type: str,
        model: str,
        weight_set: str,
        grade: str,
        reader_coverage: float,
        iou: float,
        shape: str,
        replace: bool = False,
    ) -> None:
        """Commit one Table 4 grade (see :mod:`softmass_core.inference.focus`).

        ``model`` is a model id (``labels.MODEL_IDS``) of the weight set
        ``weight_set`` (e.g. "phantom v1.4.0"), ``lesion_type`` a label,
        ``grade`` one of ``focus.GRADES``, coverages fractions in [0, 1],
        ``shape`` how the reader drew (e.g. "box", "free-hand").  One grade per
        (reader, case, model, weight set): GradeExistsError if it exists,
        unless ``replace``.
        """
        reader_id = _check_id(reader_id, "reader_id")
        case_id = _check_text(case_id, "case_id")
        weight_set = _check_text(weight_set, "weight_set")
        shape = _check_text(shape, "shape")
        if lesion_type not in labels.COHORT_LABELS:
            raise StoreError(f"unknown lesion type {lesion_type!r}; expected one of {', '.join(labels.COHORT_LABELS)}")
        if model not in labels.MODEL_IDS:
            raise StoreError(f"unknown model {model!r}; expected one of {', '.join(labels.MODEL_IDS)}")
        if grade not in GRADES:
            raise StoreError(f"unknown grade {grade!r}; expected one of {', '.join(GRADES)}")
        values: dict[str, float] = {}
        for what, value in (("reader_coverage", reader_coverage), ("iou", iou)):
            v = float(value)
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise StoreError(f"{what} must lie in [0, 1], got {value!r}")
            values[what] = v
        f = focus_grades_table
        key = sa.and_(
            f.c.reader_id == reader_id, f.c.case_id == case_id, f.c.model == model, f.c.weight_set == weight_set
        )
        already = (
            f"this reader already graded the focus of model {model} of {weight_set} on case {case_id!r}; "
            "replace the earlier grade to change it"
        )
        with self._tx(conflict=already, conflict_error=GradeExistsError) as conn:
            self._require_reader(conn, reader_id)
            if conn.execute(sa.select(f.c.id).where(key)).first() is not None:
                if not replace:
                    raise GradeExistsError(already)
                conn.execute(f.delete().where(key))
            conn.execute(
                f.insert().values(
                    reader_id=reader_id,
                    case_id=case_id,
                    model=model,
                    weight_set=weight_set,
                    lesion_type=lesion_type,
                    grade=grade,
                    shape=shape,
                    recorded_at=_now(),
                    **values,
                )
            )

    def focus_grades(self, reader_id: int | None = None) -> pd.DataFrame:
        """One row per stored focus grade; see FOCUS_COLUMNS."""
        f, r = focus_grades_table, readers_table
        query = (
            sa.select(
                f.c.reader_id,
                r.c.name.label("reader_name"),
                f.c.case_id,
                f.c.model,
                f.c.weight_set,
                f.c.lesion_type,
                f.c.grade,
                f.c.reader_coverage,
                f.c.iou,
                f.c.shape,
                f.c.recorded_at,
            )
            .select_from(f.join(r, r.c.id == f.c.reader_id))
            .order_by(f.c.reader_id, f.c.recorded_at, f.c.id)
        )
        if reader_id is not None:
            query = query.where(f.c.reader_id == _check_id(reader_id, "reader_id"))
        with self._tx(read_only=True) as conn:
            rows = [row._asdict() for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=list(FOCUS_COLUMNS))
        frame["recorded_at"] = pd.to_datetime(frame["recorded_at"])
        return frame

    def export_csv(self, path_or_buffer: Any, *, table: str = "reads") -> None:
        """Write ``reads()`` (or ``focus_grades()`` with ``table="focus"``) as CSV."""
        if table == "reads":
            frame = self.reads()
        elif table == "focus":
            frame = self.focus_grades()
        else:
            raise StoreError(f"unknown table {table!r}; expected 'reads' or 'focus'")
        frame.to_csv(path_or_buffer, index=False)
