"""The reader-study tables and their schema version.

Schema 2 is the current one (:data:`SCHEMA_VERSION`, kept in table
``softmass_schema``).  The tables are made and upgraded by the Alembic
revisions in ``migrations/versions`` (:mod:`~softmass_core.reader_study.store.migrate`);
the definitions here are what the queries use, and a test checks that the
revisions build exactly these.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

_NAME_MAX = 200
_HASH_MAX = 200

#: Reader states as the dashboard sees them.
STATES: tuple[str, ...] = ("new", "blind_done", "complete")

metadata = sa.MetaData()

#: Version of the tables below (Alembic revision "0002"); an older database is upgraded when opened.
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


focus_grades_table = sa.Table(
    "focus_grades",
    metadata,
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
    sa.UniqueConstraint("reader_id", "case_id", "model", "weight_set", name="uq_focus_grades_reader_case_model_set"),
)

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
