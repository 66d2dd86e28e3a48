"""Reader-study storage: blind read, then model-assisted read, per reader and case.

The protocol follows the paper's radiologist study (Long et al., BMC Medicine
2023): a reader identifies themself, reads a case from the images alone and
records a diagnosis (malignant, or benign with one of the five subtypes); only
then is the model's result revealed and the reader records a revised
diagnosis.  The order in which each reader opened the cases is logged.  Focus
grades from the Grad-CAM comparison page (Table 4) are stored alongside.

Storage is any SQLAlchemy URL: an embedded SQLite file by default (one file,
no server; WAL journal and a busy timeout so that several readers can work at
once), or e.g. ``postgresql+psycopg://user@host/db`` for a multi-site study.
Every write is one transaction, committed when the call returns, so nothing
is lost if the browser closes mid-case.  The rules are enforced by the
database itself, not only by this code: one blind and one assisted read per
(reader, case) by UNIQUE constraints, and an assisted read may only exist
after a blind one by a foreign key to it.  Two processes racing to record the
same blind read therefore cannot both succeed.

Readers identify with their name and a PIN.  The PIN is drawn by
:meth:`ReaderStudyStore.register_reader`, shown once, and stored only as a
salted scrypt hash; :meth:`ReaderStudyStore.identify_reader` checks it in
constant time.  A reader's stored fields (name, years of experience) are set
at registration and never changed by identifying again.  Readers registered
before PINs existed get one only from the study administrator
(:meth:`ReaderStudyStore.issue_pin`): a name alone proves nothing, so letting
whoever types an old name first choose its PIN would hand that reader's
study to them.

The schema carries a version (table ``softmass_schema``).  Opening a database
made by an older softmass upgrades it in one transaction, keeping every row:
version 1 (no version table) gains the readers' PIN hash and the focus
grades' weight set (see :data:`SCHEMA_VERSION` and ``_UPGRADES``).  A
database of a newer softmass is refused.

Times are stored as naive UTC datetimes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from softmass_core import labels
from softmass_core.errors import MetricsError, StoreError
from softmass_core.focus import GRADES
from softmass_core.metrics import clopper_pearson_ci, mcnemar_test

DEFAULT_URL = "sqlite:///softmass_reader_study.sqlite"
#: How long a writer waits for another writer's transaction (seconds).
BUSY_TIMEOUT_S = 30.0
_NAME_MAX = 200
_HASH_MAX = 200
_READ_ONLY = "softmass_read_only"

#: Reader states as the dashboard sees them.
STATES: tuple[str, ...] = ("new", "blind_done", "complete")

metadata = sa.MetaData()

#: Version of the tables below; an older database is upgraded when opened (``_UPGRADES``).
SCHEMA_VERSION = 2

schema_table = sa.Table(
    "softmass_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: one row
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("upgraded_at", sa.DateTime, nullable=False),
)

readers_table = sa.Table(
    "readers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(_NAME_MAX), nullable=False, unique=True),
    sa.Column("experience_years", sa.Integer, nullable=True),
    sa.Column("registered_at", sa.DateTime, nullable=False),
    # Salted scrypt hash of the reader's PIN (see _hash_pin); NULL for readers of schema 1.
    sa.Column("pin_hash", sa.String(_HASH_MAX), nullable=True),
)

case_reads_table = sa.Table(
    "case_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
    sa.Column("case_id", sa.String(_NAME_MAX), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("weight_set", sa.String(_NAME_MAX), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("reader_id", "case_id", name="uq_case_reads_reader_case"),
    sa.UniqueConstraint("reader_id", "seq", name="uq_case_reads_reader_seq"),
)

_ANSWER_CHECK = "(malignant AND subtype IS NULL) OR (NOT malignant AND subtype IS NOT NULL)"

blind_reads_table = sa.Table(
    "blind_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reader_id", sa.Integer, nullable=False),
    sa.Column("case_id", sa.String(_NAME_MAX), nullable=False),
    sa.Column("malignant", sa.Boolean, nullable=False),
    sa.Column("subtype", sa.String(64), nullable=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("reader_id", "case_id", name="uq_blind_reads_reader_case"),
    sa.ForeignKeyConstraint(["reader_id", "case_id"], ["case_reads.reader_id", "case_reads.case_id"]),
    sa.CheckConstraint(_ANSWER_CHECK, name="ck_blind_reads_answer"),
)

assisted_reads_table = sa.Table(
    "assisted_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reader_id", sa.Integer, nullable=False),
    sa.Column("case_id", sa.String(_NAME_MAX), nullable=False),
    sa.Column("malignant", sa.Boolean, nullable=False),
    sa.Column("subtype", sa.String(64), nullable=True),
    sa.Column("model_p_malignant", sa.Float, nullable=True),
    sa.Column("model_diagnosis", sa.String(64), nullable=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("reader_id", "case_id", name="uq_assisted_reads_reader_case"),
    sa.ForeignKeyConstraint(["reader_id", "case_id"], ["blind_reads.reader_id", "blind_reads.case_id"]),
    sa.CheckConstraint(_ANSWER_CHECK, name="ck_assisted_reads_answer"),
)


def _focus_grades_def(name: str, meta: sa.MetaData) -> sa.Table:
    """The focus-grades table of schema 2 under ``name`` (the upgrade builds it beside the old one)."""
    return sa.Table(
        name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("case_id", sa.String(_NAME_MAX), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        # "<id> v<version>" of the weight set whose model was graded; NULL for grades of schema 1.
        sa.Column("weight_set", sa.String(_NAME_MAX), nullable=True),
        sa.Column("lesion_type", sa.String(64), nullable=False),
        sa.Column("grade", sa.String(16), nullable=False),
        sa.Column("reader_coverage", sa.Float, nullable=False),
        sa.Column("iou", sa.Float, nullable=False),
        sa.Column("shape", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        # DLM-1 of one weight set is another model than DLM-1 of another: one grade per set.
        sa.UniqueConstraint("reader_id", "case_id", "model", "weight_set", name=f"uq_{name}_reader_case_model_set"),
    )


focus_grades_table = _focus_grades_def("focus_grades", metadata)

READ_COLUMNS: tuple[str, ...] = (
    "reader_id",
    "reader_name",
    "experience_years",
    "case_id",
    "seq",
    "weight_set",
    "started_at",
    "blind_at",
    "blind_malignant",
    "blind_subtype",
    "assisted_at",
    "assisted_malignant",
    "assisted_subtype",
    "model_p_malignant",
    "model_diagnosis",
    "state",
)

FOCUS_COLUMNS: tuple[str, ...] = (
    "reader_id",
    "reader_name",
    "case_id",
    "model",
    "weight_set",
    "lesion_type",
    "grade",
    "reader_coverage",
    "iou",
    "shape",
    "recorded_at",
)


class _Retry(Exception):
    """A concurrent writer won a uniqueness race; the caller may try again."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _to_url(url: str | Path) -> str:
    text = str(url)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    if not path.parent.is_dir():
        raise StoreError(
            f"cannot create the reader-study database {path}: folder {path.parent} does "
            "not exist; create it or choose another path"
        )
    return f"sqlite:///{path}"


def _shown(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_engine(url: sa.engine.URL) -> tuple[Engine, bool]:
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(url, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below open transactions, so that writers
        # take the write lock up front (BEGIN IMMEDIATE) and wait their turn for
        # up to the busy timeout instead of failing half-way.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine, memory


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise StoreError(f"{what} must be a whole number, got {value!r}")
    if int(value) <= 0:
        raise StoreError(f"{what} must be positive, got {value!r}")
    return int(value)


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be a non-empty text, got {value!r}")
    text = value.strip()
    if len(text) > _NAME_MAX:
        raise StoreError(f"{what} is longer than {_NAME_MAX} characters: {text[:40]!r}...")
    return text


def _check_answer(malignant: Any, subtype: str | None) -> tuple[bool, str | None]:
    if not isinstance(malignant, bool):
        if type(malignant).__name__ == "bool_":  # numpy.bool_
            malignant = bool(malignant)
        else:
            raise StoreError(f"'malignant' must be True or False, got {malignant!r}")
    if malignant:
        if subtype is not None:
            raise StoreError(f"a malignant diagnosis has no benign subtype, got subtype {subtype!r}; pass subtype=None")
        return True, None
    if subtype not in labels.SUBTYPES:
        raise StoreError(f"a benign diagnosis needs one of the subtypes {', '.join(labels.SUBTYPES)}; got {subtype!r}")
    return False, subtype


# --- PINs ---------------------------------------------------------------------------

#: Characters of a PIN: digits and capitals without the look-alikes 0/O, 1/I/L.
PIN_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Characters in a PIN (31**8, about 8.5e11 PINs: guessing through the page is hopeless).
PIN_LENGTH = 8
# scrypt cost (RFC 7914's interactive-login setting): about 0.1-0.2 s per check on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_pin() -> str:
    """A fresh random PIN, e.g. ``"K7QF-93MD"`` (``PIN_LENGTH`` characters of ``PIN_ALPHABET``, a dash in the middle)."""
    chars = "".join(secrets.choice(PIN_ALPHABET) for _ in range(PIN_LENGTH))
    return f"{chars[: PIN_LENGTH // 2]}-{chars[PIN_LENGTH // 2 :]}"


def normalise_pin(pin: Any) -> str:
    """A PIN as typed -> its canonical characters: capitals, no spaces or dashes; StoreError if malformed."""
    if not isinstance(pin, str):
        raise StoreError("Enter your PIN (the 8 characters shown when you registered).")
    text = "".join(pin.split()).replace("-", "").upper()
    if len(text) != PIN_LENGTH or any(ch not in PIN_ALPHABET for ch in text):
        raise StoreError(
            f"A PIN has {PIN_LENGTH} letters and digits, as shown when you registered (e.g. K7QF-93MD): "
            "check what you typed."
        )
    return text


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * (n + p + 2), dklen=32)


def _hash_pin(pin: str) -> str:
    """``scrypt$n$r$p$salt$digest`` (hex) of the normalised ``pin``, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(normalise_pin(pin), salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _pin_matches(pin: str, stored: str) -> bool:
    """Whether ``pin`` (normalised) hashes to ``stored``; compared in constant time."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = _scrypt(pin, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class Registration:
    """A newly registered reader: their id and PIN (shown to them once, stored only as a hash)."""

    reader_id: int
    pin: str


class GradeExistsError(StoreError):
    """This reader already graded this model's focus on this case (see ``record_focus_grade(replace=...)``)."""


# --- schema versions -----------------------------------------------------------------


def _schema_version(conn: Connection) -> int:
    """0 for an empty database, 1 for one made before versions were recorded, else the recorded version."""
    tables = set(sa.inspect(conn).get_table_names())
    if schema_table.name in tables:
        version = conn.execute(sa.select(schema_table.c.version).where(schema_table.c.id == 1)).scalar()
        return int(version) if version is not None else 1
    return 1 if readers_table.name in tables else 0


def _upgrade_1_to_2(conn: Connection) -> None:
    """Schema 1 -> 2: readers gain ``pin_hash``; focus grades gain ``weight_set`` (one grade per set).

    The readers' column is added in place.  The focus grades are copied into a
    table of the new definition, which then takes the old one's name, since
    SQLite cannot change a UNIQUE constraint in place.  Every row is kept; the
    new columns are NULL for them.
    """
    conn.exec_driver_sql(f"ALTER TABLE readers ADD COLUMN pin_hash VARCHAR({_HASH_MAX})")
    scratch = sa.MetaData()
    sa.Table("readers", scratch, sa.Column("id", sa.Integer, primary_key=True))  # for the foreign key
    new = _focus_grades_def("focus_grades_v2", scratch)
    new.create(conn)
    kept = [c.name for c in new.columns if c.name != "weight_set"]
    cols = ", ".join(kept)
    conn.exec_driver_sql(f"INSERT INTO focus_grades_v2 ({cols}) SELECT {cols} FROM focus_grades")
    conn.exec_driver_sql("DROP TABLE focus_grades")
    conn.exec_driver_sql("ALTER TABLE focus_grades_v2 RENAME TO focus_grades")


#: ``_UPGRADES[v]`` turns schema ``v`` into ``v + 1`` (in the caller's transaction).
_UPGRADES: dict[int, Callable[[Connection], None]] = {1: _upgrade_1_to_2}


def _prepare_schema(conn: Connection) -> int:
    """Create the tables of an empty database or upgrade an older one; returns the version found."""
    found = _schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the reader-study database has schema version {found}, made by a newer softmass "
            f"(this one reads up to {SCHEMA_VERSION}); update softmass to open it"
        )
    if found == SCHEMA_VERSION:
        return found
    if found:
        for version in range(found, SCHEMA_VERSION):
            _UPGRADES[version](conn)
    metadata.create_all(conn)  # every table still missing (all of them in an empty database)
    s = schema_table
    if conn.execute(sa.select(s.c.id).where(s.c.id == 1)).first() is None:
        conn.execute(s.insert().values(id=1, version=SCHEMA_VERSION, upgraded_at=_now()))
    else:
        conn.execute(s.update().where(s.c.id == 1).values(version=SCHEMA_VERSION, upgraded_at=_now()))
    return found


class ReaderStudyStore:
    """Reader-study database behind one SQLAlchemy engine (thread-safe).

    ``url`` is an SQLAlchemy URL or a plain file path (taken as an SQLite
    file).  Tables are created if missing, and a database of an older schema
    is upgraded (see the module docstring).
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
                self.opened_version = _prepare_schema(conn)
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
        """Commit one Table 4 grade (see :mod:`softmass_core.focus`).

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


# --- statistics -------------------------------------------------------------------

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

    ``reads`` is :meth:`ReaderStudyStore.reads` (at least reader_id, case_id,
    blind_malignant, blind_subtype, assisted_malignant, assisted_subtype);
    only cases with both reads count.  ``truth`` maps case id -> label
    (``labels.COHORT_LABELS``).  Task ``benign_vs_malignant`` uses every such
    case; ``benign_subtype`` the benign cases of known subtype, where calling
    one malignant counts as wrong.  Accuracies are fractions with
    Clopper-Pearson 95% intervals; McNemar compares the paired before/after
    correctness (``softmass_core.metrics``: ``mcnemar_b`` counts cases right
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
