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

The schema is managed by Alembic: the revisions ship inside the package
(``migrations/versions``) and run when a store is opened, in one
transaction, keeping every row (:mod:`~softmass_core.reader_study.store.migrate`).
A database made before Alembic (schema 1 without a version table, or
schema 2 recorded in ``softmass_schema``) is recognised, stamped at its
revision and upgraded.  A database of a newer softmass is refused.  The same
revisions run on SQLite and on PostgreSQL (``postgresql+psycopg://...``).

Times are stored as naive UTC datetimes.

Modules: ``schema`` (tables, schema version), ``migrate`` (Alembic on open), ``engine`` (URLs,
SQLite settings, checks of stored values), ``pins`` (PINs and their hashes),
``study_store`` (:class:`ReaderStudyStore`).  The statistics of the reads are
in :mod:`softmass_core.stats.reader_study`.
"""

from softmass_core.reader_study.store.engine import BUSY_TIMEOUT_S, DEFAULT_URL
from softmass_core.reader_study.store.pins import PIN_ALPHABET, PIN_LENGTH, Registration, new_pin, normalise_pin
from softmass_core.reader_study.store.schema import (
    FOCUS_COLUMNS,
    READ_COLUMNS,
    SCHEMA_VERSION,
    STATES,
    assisted_reads_table,
    blind_reads_table,
    case_reads_table,
    focus_grades_table,
    readers_table,
    schema_table,
)
from softmass_core.reader_study.store.study_store import GradeExistsError, ReaderStudyStore

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_URL",
    "FOCUS_COLUMNS",
    "PIN_ALPHABET",
    "PIN_LENGTH",
    "READ_COLUMNS",
    "SCHEMA_VERSION",
    "STATES",
    "GradeExistsError",
    "ReaderStudyStore",
    "Registration",
    "assisted_reads_table",
    "blind_reads_table",
    "case_reads_table",
    "focus_grades_table",
    "new_pin",
    "normalise_pin",
    "readers_table",
    "schema_table",
]
