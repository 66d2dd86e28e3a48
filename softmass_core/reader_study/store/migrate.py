"""Schema migrations of the reader-study database: Alembic revisions shipped in ``migrations/``, run on open.

:func:`migrate` brings any database to the current schema in the caller's
transaction, keeping every row:

* an empty database is built by the revisions from the first;
* a database of a softmass from before Alembic (no ``alembic_version``
  table) is recognised by its tables: schema 1 (no ``softmass_schema``) or
  the version ``softmass_schema`` records; it is stamped at that revision
  (:data:`LEGACY_REVISIONS`) and upgraded from there;
* a database with ``alembic_version`` is upgraded from its revision;
* a database of a newer softmass (a revision this one does not ship, or a
  ``softmass_schema`` version above :data:`SCHEMA_VERSION`) is refused.

A new revision goes in ``migrations/versions`` (``alembic revision`` with
``script_location`` pointing there, or by hand after the two there) and
bumps ``softmass_schema.version`` and :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from softmass_core.errors import StoreError
from softmass_core.reader_study.store.schema import SCHEMA_VERSION, readers_table, schema_table

#: The folder of the Alembic environment and its ``versions``.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Schema version of a database made before Alembic -> the revision it is stamped at.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@functools.cache
def _shipped() -> tuple[str, frozenset[str]]:
    """The head revision and every revision shipped (files of the package: read once per process)."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    return scripts.get_current_head(), frozenset(script.revision for script in scripts.walk_revisions())


def head_revision() -> str:
    """The revision of the current schema (the last one shipped)."""
    return _shipped()[0]


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None for an empty one or one made before Alembic."""
    return MigrationContext.configure(conn).get_current_revision()


def _schema_version(conn: Connection) -> int:
    """0 for an empty database, 1 for one made before versions were recorded, else the recorded version."""
    tables = set(sa.inspect(conn).get_table_names())
    if schema_table.name in tables:
        version = conn.execute(sa.select(schema_table.c.version).where(schema_table.c.id == 1)).scalar()
        return int(version) if version is not None else 1
    return 1 if readers_table.name in tables else 0


def migrate(conn: Connection) -> int:
    """Create or upgrade the schema on ``conn`` (in its transaction); the schema version found (0: empty)."""
    found = _schema_version(conn)
    revision = current_revision(conn)
    head, known = _shipped()
    if found > SCHEMA_VERSION or (revision is not None and revision not in known):
        made_by = f"schema version {found}" if found > SCHEMA_VERSION else f"schema revision {revision!r}"
        raise StoreError(
            f"the reader-study database has {made_by}, made by a newer softmass "
            f"(this one reads up to {SCHEMA_VERSION}, revision {head}); update softmass to open it"
        )
    if revision == head:  # the usual open: nothing to upgrade, so Alembic's environment is not run
        return found
    config = _config(conn)
    if revision is None and found:
        command.stamp(config, LEGACY_REVISIONS[found])
    command.upgrade(config, "head")
    return found
