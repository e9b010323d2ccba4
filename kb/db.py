"""Database plumbing shared by every domain package.

The engine is built once at start-up by whoever runs the process (the web app, a worker or the
CLI) through :func:`configure`; domain code only asks for sessions. Nothing here reads the
environment: the caller passes the URL from the settings object.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from queue import Empty, SimpleQueue
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

log = logging.getLogger(__name__)


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
    rows = _run_alone(engine, statement, params, every_row=False)
    return rows[0] if rows else None


def _run_alone(
    engine: Engine, statement: str, params: Mapping[str, Any], *, every_row: bool
) -> list[dict[str, Any]]:
    from psycopg import OperationalError
    from psycopg.pq import TransactionStatus
    from psycopg.rows import dict_row

    alone = _alone_engine(engine)
    for attempt in (1, 2):
        pooled = alone.raw_connection()
        connection: Any = pooled.driver_connection
        try:
            with connection.cursor(row_factory=dict_row) as cursor:
                cursor.execute(statement, params)
                if every_row:
                    return list(cursor.fetchall())
                first = cursor.fetchone()
                return [first] if first is not None else []
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


@dataclass(eq=False)
class _Request:
    engine: Engine
    params: Mapping[str, Any]
    keys: tuple[Hashable, ...]
    answer: Future[dict[str, Any] | None] = field(default_factory=Future)


class GroupedStatement:
    """A hot statement that the concurrent requests of a process run together, in one
    transaction with one round trip and one commit (a "group commit").

    Requests are handed to one thread of the process (started on first use), which runs the
    statement for every request that has come since its last one: under load, as many as came
    while the last ran; on a quiet line, one at a time, with no wait. One request runs
    ``alone`` (see :func:`execute_alone`); several run ``grouped`` once. Why: on PostgreSQL
    such a statement's fixed cost (a transaction, its commit, the executor's set-up, the
    driver's round trip) is many times its cost per row (about 220 µs of the server's CPU
    against 10 µs, session 11). And why a thread of its own rather than the requests' own
    threads taking turns: a web process runs two requests at once (``HOTLINE_WEB_THREADS``), so
    at most two could share a statement; requests that ``await`` :meth:`run_async` hold no
    thread while they wait.

    ``grouped`` takes every parameter of ``alone`` as an array (``%(name)s::type[]``, one
    element per request, in the order of ``columns``), unnests them ``WITH ORDINALITY`` and
    returns, with each row, the request's 1-based position as ``n``; a request with no row gets
    None, as from ``alone``. Requests whose ``conflicts(params)`` share a value never go in one
    statement (one statement cannot claim one key twice, nor update one row twice): the later
    waits for the next. Each statement's requests are sorted by those values, so that two
    processes lock rows in the same order. When a grouped statement fails, each of its requests
    runs ``alone``, so an error is only its own request's. Both statements must be safe to run
    twice (see :func:`execute_alone`)."""

    def __init__(
        self,
        *,
        name: str,
        alone: str,
        grouped: str,
        columns: tuple[str, ...],
        conflicts: Callable[[Mapping[str, Any]], tuple[Hashable, ...]],
        largest: int = 64,
    ) -> None:
        self.name = name
        self.alone = alone
        self.grouped = grouped
        self.columns = columns
        self.conflicts = conflicts
        self.largest = largest
        self._queue: SimpleQueue[_Request] = SimpleQueue()
        self._worker_pid = 0
        self._worker = threading.Thread()  # started on first use, in each process
        self._start_lock = threading.Lock()

    def submit(self, engine: Engine, params: Mapping[str, Any]) -> Future[dict[str, Any] | None]:
        """Queue ``params`` for the next statement; the future holds its row (or error)."""
        if self._worker_pid != os.getpid() or not self._worker.is_alive():
            self._start()
        request = _Request(engine, params, self.conflicts(params))
        self._queue.put(request)
        return request.answer

    def run(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.submit(engine, params).result()

    async def run_async(self, engine: Engine, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return await asyncio.wrap_future(self.submit(engine, params))

    def _start(self) -> None:
        with self._start_lock:
            if self._worker_pid == os.getpid() and self._worker.is_alive():
                return
            if self._worker_pid != os.getpid():
                # In a forked child the parent's thread is gone and what it had queued is the
                # parent's: start afresh.
                self._queue = SimpleQueue()
            self._worker = threading.Thread(
                target=self._work, name=f"grouped:{self.name}", daemon=True
            )
            self._worker.start()
            self._worker_pid = os.getpid()

    def _work(self) -> None:
        queue = self._queue
        held: list[_Request] = []
        while True:
            if not held:
                held.append(queue.get())
            while True:
                try:
                    held.append(queue.get_nowait())
                except Empty:
                    break
            # A request whose caller gave up (its task cancelled) is not run; the others can
            # no longer be cancelled, so each gets its answer.
            batch = [
                request
                for request in self._take(held)
                if request.answer.set_running_or_notify_cancel()
            ]
            if not batch:
                continue
            try:
                self._execute(batch)
            except BaseException as exc:  # never leave a request waiting
                for request in batch:
                    if not request.answer.done():
                        request.answer.set_exception(exc)
                if not isinstance(exc, Exception):
                    # This thread ends (the next request starts another): what it held fails.
                    for request in held:
                        request.answer.set_exception(exc)
                    raise

    def _take(self, held: list[_Request]) -> list[_Request]:
        """The first held request and, in the order they came, those on its engine that
        conflict with none taken before them; they leave ``held``."""
        first = held[0]
        batch = [first]
        taken = set(first.keys)
        rest = []
        for candidate in held[1:]:
            if (
                len(batch) < self.largest
                and candidate.engine is first.engine
                and not taken.intersection(candidate.keys)
            ):
                batch.append(candidate)
                taken.update(candidate.keys)
            else:
                rest.append(candidate)
        held[:] = rest
        return sorted(batch, key=lambda request: request.keys)

    def _execute(self, batch: list[_Request]) -> None:
        engine = batch[0].engine
        if len(batch) > 1:
            arrays = {
                column: [request.params[column] for request in batch] for column in self.columns
            }
            try:
                rows = _run_alone(engine, self.grouped, arrays, every_row=True)
            except Exception:
                log.warning(
                    "a grouped statement (%s) of %d requests failed; running each alone",
                    self.name,
                    len(batch),
                    exc_info=True,
                )
            else:
                by_position = {row.pop("n"): row for row in rows}
                for position, request in enumerate(batch, start=1):
                    request.answer.set_result(by_position.get(position))
                return
        for request in batch:
            try:
                row = execute_alone(engine, self.alone, request.params)
            except Exception as exc:
                request.answer.set_exception(exc)
            else:
                request.answer.set_result(row)


_ALONE_ENGINES: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def _alone_engine(engine: Engine) -> Engine:
    """``engine``'s companion for :func:`execute_alone`: the same database, in autocommit,
    without pre-ping nor a reset when a connection goes back to the pool (in autocommit no
    transaction is ever left open to roll back, and the reset's bookkeeping was the larger
    part of the pool's cost per statement); disposed with ``engine``.

    Its prepared statements always run their generic plan: for a statement taking arrays
    (:class:`GroupedStatement`) PostgreSQL otherwise keeps planning each run afresh, since a
    plan made for the arrays at hand looks cheaper than the generic one, and that planning cost
    more than the run (380 µs against 220 µs, session 11). These few statements find their
    rows by key, so the generic plan is the one a custom plan would choose anyway."""
    alone = _ALONE_ENGINES.get(engine)
    if alone is None:
        alone = create_engine(
            engine.url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=False,
            pool_reset_on_return=None,
            connect_args={"options": "-c plan_cache_mode=force_generic_plan"},
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
