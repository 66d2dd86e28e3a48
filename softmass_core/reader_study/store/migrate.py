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

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from softmass_core.errors import StoreError
from softmass_core.reader_study.store.schema import SCHEMA_VERSION, _schema_version

#: The folder of the Alembic environment and its ``versions``.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Schema version of a database made before Alembic -> the revision it is stamped at.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The revision of the current schema (the last one shipped)."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None for an empty one or one made before Alembic."""
    return MigrationContext.configure(conn).get_current_revision()


def migrate(conn: Connection) -> int:
    """Create or upgrade the schema on ``conn`` (in its transaction); the schema version found (0: empty)."""
    found = _schema_version(conn)
    revision = current_revision(conn)
    known = {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if found > SCHEMA_VERSION or (revision is not None and revision not in known):
        made_by = f"schema version {found}" if found > SCHEMA_VERSION else f"schema revision {revision!r}"
        raise StoreError(
            f"the reader-study database has {made_by}, made by a newer softmass "
            f"(this one reads up to {SCHEMA_VERSION}, revision {head_revision()}); update softmass to open it"
        )
    config = _config(conn)
    if revision is None and found:
        command.stamp(config, LEGACY_REVISIONS[found])
    command.upgrade(config, "head")
    return found
