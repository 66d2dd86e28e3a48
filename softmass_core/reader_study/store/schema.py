"""The reader-study tables, their schema version and the upgrade of an older database.

Schema 2 is the current one (:data:`SCHEMA_VERSION`, kept in table
``softmass_schema``); ``_UPGRADES[v]`` turns schema ``v`` into ``v + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from softmass_core.errors import StoreError

_NAME_MAX = 200
_HASH_MAX = 200

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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
