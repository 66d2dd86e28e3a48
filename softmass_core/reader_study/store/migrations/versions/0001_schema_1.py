"""Schema 1: readers, case reads, blind and assisted reads, focus grades (softmass before schema versions).

A database that softmass made before it recorded versions (no table
``softmass_schema``, no ``alembic_version``) is at this revision: it is
stamped, not created again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ANSWER = "(malignant AND subtype IS NULL) OR (NOT malignant AND subtype IS NOT NULL)"


def upgrade() -> None:
    op.create_table(
        "readers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("experience_years", sa.Integer, nullable=True),
        sa.Column("registered_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "case_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("readers.id"), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("weight_set", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("reader_id", "case_id", name="uq_case_reads_reader_case"),
        sa.UniqueConstraint("reader_id", "seq", name="uq_case_reads_reader_seq"),
    )
    for name, parent, extra in (
        ("blind_reads", "case_reads", []),
        ("assisted_reads", "blind_reads", [sa.Column("model_p_malignant", sa.Float), sa.Column("model_diagnosis", sa.String(64))]),
    ):  # fmt: skip
        op.create_table(
            name,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("reader_id", sa.Integer, nullable=False),
            sa.Column("case_id", sa.String(200), nullable=False),
            sa.Column("malignant", sa.Boolean, nullable=False),
            sa.Column("subtype", sa.String(64), nullable=True),
            *extra,
            sa.Column("recorded_at", sa.DateTime, nullable=False),
            sa.UniqueConstraint("reader_id", "case_id", name=f"uq_{name}_reader_case"),
            sa.ForeignKeyConstraint(["reader_id", "case_id"], [f"{parent}.reader_id", f"{parent}.case_id"]),
            sa.CheckConstraint(_ANSWER, name=f"ck_{name}_answer"),
        )
    op.create_table(
        "focus_grades",
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


def downgrade() -> None:
    for name in ("focus_grades", "assisted_reads", "blind_reads", "case_reads", "readers"):
        op.drop_table(name)
