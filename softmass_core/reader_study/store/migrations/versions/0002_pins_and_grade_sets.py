"""Schema 2: readers gain a PIN hash, focus grades a weight set (one grade per set); ``softmass_schema`` = 2.

Every row is kept; the new columns are NULL for the old rows.  On SQLite
the focus grades' table is rebuilt (SQLite cannot change a UNIQUE
constraint in place), on PostgreSQL it is altered.  The version row lets a
softmass from before Alembic refuse a database of a later schema.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("readers", sa.Column("pin_hash", sa.String(200), nullable=True))
    with op.batch_alter_table("focus_grades") as batch:
        batch.add_column(sa.Column("weight_set", sa.String(200), nullable=True))
        batch.drop_constraint("uq_focus_grades_reader_case_model", type_="unique")
        batch.create_unique_constraint(
            "uq_focus_grades_reader_case_model_set", ["reader_id", "case_id", "model", "weight_set"]
        )
    schema = op.create_table(
        "softmass_schema",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("upgraded_at", sa.DateTime, nullable=False),
    )
    op.bulk_insert(schema, [{"id": 1, "version": 2, "upgraded_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.drop_table("softmass_schema")
    with op.batch_alter_table("focus_grades") as batch:
        batch.drop_constraint("uq_focus_grades_reader_case_model_set", type_="unique")
        batch.create_unique_constraint("uq_focus_grades_reader_case_model", ["reader_id", "case_id", "model"])
        batch.drop_column("weight_set")
    op.drop_column("readers", "pin_hash")
