"""The database engine of the reader study: URLs, SQLite settings, and the checks of stored values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from softmass_core import labels
from softmass_core.errors import StoreError
from softmass_core.reader_study.store.schema import _NAME_MAX

DEFAULT_URL = "sqlite:///softmass_reader_study.sqlite"
#: How long a writer waits for another writer's transaction (seconds).
BUSY_TIMEOUT_S = 30.0
_READ_ONLY = "softmass_read_only"


class _Retry(Exception):
    """A concurrent writer won a uniqueness race; the caller may try again."""


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
    if not isinstance(malignant, (bool, np.bool_)):
        raise StoreError(f"'malignant' must be True or False, got {malignant!r}")
    malignant = bool(malignant)
    if malignant:
        if subtype is not None:
            raise StoreError(f"a malignant diagnosis has no benign subtype, got subtype {subtype!r}; pass subtype=None")
        return True, None
    if subtype not in labels.SUBTYPES:
        raise StoreError(f"a benign diagnosis needs one of the subtypes {', '.join(labels.SUBTYPES)}; got {subtype!r}")
    return False, subtype
