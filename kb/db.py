"""Database plumbing shared by every domain package.

The engine is built once at start-up by whoever runs the process (the web app, a worker or the
CLI) through :func:`configure`; domain code only asks for sessions. Nothing here reads the
environment: the caller passes the URL from the settings object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, create_engine

# Named constraints make Alembic's batch mode on SQLite and diffs on PostgreSQL predictable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

_engine: Engine | None = None


def utcnow() -> datetime:
    """Timezone-aware now in UTC; every stored timestamp is UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; treat them as the UTC they were stored as."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[Any]):
    """A string column that hands back the enum member, so loaded rows compare and ``.value``
    like fresh ones. Stored as plain VARCHAR: no native enum types to migrate."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum], length: int = 24) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum_class(value)


def enum_field(enum_class: type[StrEnum], length: int = 24, **kwargs: Any) -> Any:
    return Field(sa_type=StrEnumType(enum_class, length), **kwargs)


def timestamp_field(**kwargs: Any) -> Any:
    """A timezone-aware timestamp column (naive on SQLite; see :func:`as_utc`)."""
    return Field(sa_type=DateTime(timezone=True), **kwargs)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def execute_alone(engine: Engine, statement: str, params: Mapping[str, Any]) -> Any:
    """Run one statement as its own transaction, through the driver, and return its first row
    as a dict (None when it returned none). PostgreSQL (psycopg) only: ``statement`` uses
    psycopg's ``%(name)s`` placeholders.

    For the few hot statements that are by themselves a request's whole unit of work: in
    autocommit, so no BEGIN and COMMIT round trips, and past SQLAlchemy's execution layer,
    which costs more CPU than the statement. Their connections come from a pool of their own
    that does not ping each connection it lends (a round trip as dear as the statement): on a
    dead connection (the server restarted) that pool is emptied and the statement runs once
    more, so it **must be safe to run twice** (an idempotent claim in the statement does it:
    the first run may have committed before the connection died)."""
    from psycopg import OperationalError
    from psycopg.pq import TransactionStatus
    from psycopg.rows import dict_row

    alone = _alone_engine(engine)
    for attempt in (1, 2):
        pooled = alone.raw_connection()
        connection: Any = pooled.driver_connection
        try:
            with connection.cursor(row_factory=dict_row) as cursor:
                return cursor.execute(statement, params).fetchone()
        except OperationalError:
            if attempt == 2 or not connection.broken:
                raise
            # Every pooled connection is as dead as this one: take new ones.
            alone.dispose()
        finally:
            if connection.info.transaction_status != TransactionStatus.IDLE:
                # Interrupted mid-statement: not reset on its way back (see _alone_engine), so
                # it must not be lent again.
                pooled.invalidate()
            pooled.close()
    raise AssertionError("unreachable")


_ALONE_ENGINES: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def _alone_engine(engine: Engine) -> Engine:
    """``engine``'s companion for :func:`execute_alone`: the same database, in autocommit,
    without pre-ping nor a reset when a connection goes back to the pool (in autocommit no
    transaction is ever left open to roll back, and the reset's bookkeeping was the larger
    part of the pool's cost per statement); disposed with ``engine``."""
    alone = _ALONE_ENGINES.get(engine)
    if alone is None:
        alone = create_engine(
            engine.url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            pool_reset_on_return=None,
        )
        event.listen(engine, "engine_disposed", partial(_dispose_alone, alone, os.getpid()))
        _ALONE_ENGINES[engine] = alone
    return alone


def _dispose_alone(alone: Engine, creator_pid: int, _engine: Engine) -> None:
    # In a process forked after the pool was filled (a job's work horse disposes the engine it
    # inherited), its connections are the parent's: let go of them without closing them.
    alone.dispose(close=os.getpid() == creator_pid)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def configure(url: str, **kwargs: Any) -> Engine:
    """Build the process-wide engine. Called once at start-up; calling again replaces it."""
    global _engine
    if _engine is not None:
        _engine.dispose()
    _engine = make_engine(url, **kwargs)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database engine not configured: call kb.db.configure(url) at start-up")
    return _engine


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
