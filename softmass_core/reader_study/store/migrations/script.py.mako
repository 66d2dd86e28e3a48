"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}.  Bump ``softmass_schema.version`` (and
SCHEMA_VERSION in schema.py), so that a softmass older than this revision refuses the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
