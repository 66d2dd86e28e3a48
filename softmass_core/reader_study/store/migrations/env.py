"""Alembic's environment for the reader-study store: migrations run on the caller's connection.

:func:`softmass_core.reader_study.store.migrate.migrate` passes the open
connection (inside its transaction) as ``config.attributes["connection"]``,
so an upgrade is one transaction with the store's own checks, and a failed
one leaves the database as it was.  ``render_as_batch`` lets a revision
change a constraint on SQLite (the table is rebuilt) as on PostgreSQL (ALTER).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
