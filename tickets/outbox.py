"""The transactional outbox: jobs are written as rows with the change that needs them, and moved
into RQ only after that change is committed.

- :func:`add` writes a row in the caller's transaction (services call it, never RQ directly);
- :func:`relay_outbox` moves committed, not yet relayed rows into RQ: enqueued now, or scheduled
  with ``enqueue_at`` for their ``run_at``; the RQ job id is ``outbox-<row id>`` so a row relayed
  twice (a crash between enqueue and the commit of ``relayed_at``) is still one job;
- the job itself (:func:`tickets.tasks.run_outbox_job`) marks the row done in the transaction of
  its effect, so a job delivered twice changes nothing the second time.

If Redis is down, the relay leaves the rows as they are and returns; the web app retries after
each committing request and the worker retries periodically, so nothing is stranded.

``pending_commits`` is set whenever a session that wrote outbox rows due within
``RELAY_AFTER_REQUEST_HORIZON`` commits: the web layer's hook looks at it after each request to
relay those right away. Rows due later (a case's SLA timers) wait for the workers' periodic
relay: a request that wrote only those would relay nothing, at the price of a Redis round trip
and a query.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import event, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from kb.db import as_utc, utcnow
from tickets.models import OutboxMessage

log = logging.getLogger(__name__)

JOB_FUNCTION = "tickets.tasks.run_outbox_job"
QUEUES = ("high", "default", "low")
RELAY_BATCH = 200
# A job that raised (a lost race, a database hiccup) or whose worker died mid-job is retried by
# RQ; the job itself is idempotent, so a retry after a partial run is safe.
RETRY_INTERVALS_SECONDS = [2, 10, 60, 300, 900]
# A relayed row older than this, not done, whose job Redis no longer has (Redis lost its data,
# or the job expired) is relayed again.
STRANDED_AFTER = timedelta(minutes=5)
# What the web process relays after answering: jobs due this soon (see relay_outbox).
RELAY_AFTER_REQUEST_HORIZON = timedelta(minutes=1)
# The list a worker's relay waits on between its periodic rounds (see wake_relay).
WAKE_KEY = "hotline:outbox:wake"

SessionFactory = Callable[[], AbstractContextManager[Session]]

# Set when a session that wrote outbox rows due soon commits; cleared by whoever relays.
pending_commits = threading.Event()


def wake_relay(connection: redis.Redis) -> None:
    """Ask the workers' relay to run now, for jobs a web process wrote but leaves to it (an
    inbound text's answer: relaying in the web process would cost each text more than storing
    it). One push to a list the relay waits on; if Redis is away, the relay's periodic round
    finds the rows anyway."""
    try:
        connection.lpush(WAKE_KEY, 1)
    except redis.RedisError as exc:
        log.info("could not wake the outbox relay (%s); its periodic round will run the job", exc)


def wait_for_wake(connection: redis.Redis, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds (at least one) for :func:`wake_relay`; True when woken. The
    pushes made meanwhile are all answered by the one relay round that follows, so they are
    cleared together. Redis errors propagate: the caller waits its own way then."""
    woken = connection.blpop([WAKE_KEY], timeout=max(1, int(timeout)))
    if woken is None:
        return False
    connection.delete(WAKE_KEY)
    return True


def job_id(row_id: int) -> str:
    return f"outbox-{row_id}"


def add(
    session: Session,
    task: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    ticket_id: int | None = None,
    queue: str = "default",
) -> OutboxMessage:
    """Write a job to run (at ``run_at``, or when relayed) once this transaction commits."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    row = OutboxMessage(task=task, payload=payload, run_at=run_at, ticket_id=ticket_id, queue=queue)
    session.add(row)
    if run_at is None or as_utc(run_at) <= utcnow() + RELAY_AFTER_REQUEST_HORIZON:
        session.info["outbox_due_soon"] = True
    return row


@event.listens_for(Session, "after_commit")
def _signal_commit(session: Session) -> None:
    if session.info.pop("outbox_due_soon", False):
        pending_commits.set()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("outbox_due_soon", None)


def session_factory_for(engine: Engine) -> SessionFactory:
    """A unit-of-work factory over ``engine``: commit on success, roll back on error."""

    @contextmanager
    def scope() -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    return scope


def relay_outbox(
    session_factory: SessionFactory,
    connection: redis.Redis,
    *,
    limit: int = RELAY_BATCH,
    now: datetime | None = None,
    due_within: timedelta | None = None,
) -> int:
    """Move committed outbox rows into RQ; returns how many were relayed.

    With ``due_within``, only the rows due by then (or now): the web process relays those after
    its answer, so a job that should start now does not wait for a worker's periodic relay,
    and leaves timers hours or days ahead (a case's SLA clocks) to the workers' relay, which
    moves them within seconds and at no cost to the callers waiting on the web process.

    Safe to run from several processes at once: rows are claimed with ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL (SQLite serialises writers), and the job id makes a second enqueue a no-op.
    Never raises for Redis being unreachable: it logs and leaves the rows for the next relay.
    """
    try:
        connection.ping()
    except redis.RedisError as exc:
        # Checked before any database work, so no write lock is held while Redis times out.
        log.warning("outbox relay: Redis unreachable (%s); jobs stay in the outbox", exc)
        return 0
    relayed = 0
    unrelayed = select(OutboxMessage).where(col(OutboxMessage.relayed_at).is_(None))
    if due_within is not None:
        horizon = (now or utcnow()) + due_within
        unrelayed = unrelayed.where(
            or_(col(OutboxMessage.run_at).is_(None), col(OutboxMessage.run_at) <= horizon)
        )
    with session_factory() as session:
        rows = session.exec(
            unrelayed.order_by(col(OutboxMessage.id)).limit(limit).with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            assert row.id is not None
            try:
                enqueue(connection, row)
            except redis.RedisError as exc:
                log.warning("outbox relay stopped at row %s: %s", row.id, exc)
                break
            row.relayed_at = now or utcnow()
            session.add(row)
            relayed += 1
    return relayed


def enqueue(connection: redis.Redis, row: OutboxMessage) -> None:
    """Put one row's job into RQ, with the retry policy; a second call for the same row is a
    no-op (the job id is the row's). The relay calls it; so may a tool that must not touch the
    database at that moment."""
    assert row.id is not None
    queue = Queue(row.queue, connection=connection, serializer=JSONSerializer)
    options: dict[str, Any] = {
        "job_id": job_id(row.id),
        "unique": True,
        "description": f"{row.task} (outbox {row.id})",
        "result_ttl": 24 * 3600,
        "failure_ttl": 7 * 24 * 3600,
        "retry": Retry(max=len(RETRY_INTERVALS_SECONDS), interval=RETRY_INTERVALS_SECONDS),
    }
    try:
        if row.run_at is not None and as_utc(row.run_at) > utcnow():
            queue.enqueue_at(as_utc(row.run_at), JOB_FUNCTION, row.id, **options)
        else:
            queue.enqueue(JOB_FUNCTION, row.id, **options)
    except DuplicateJobError:
        # Relayed before, but the mark did not commit: the job is already there.
        log.info("outbox row %s was already in RQ", row.id)


def rescue_stranded(
    session_factory: SessionFactory,
    connection: redis.Redis,
    *,
    now: datetime | None = None,
    stranded_after: timedelta = STRANDED_AFTER,
    limit: int = RELAY_BATCH,
) -> int:
    """Mark for relaying again every row that was relayed but whose job Redis no longer holds.

    A job still queued, scheduled, running or failed is left alone: RQ retries it, and a job
    that failed every retry stays in RQ's failed registry for someone to look at. Returns how
    many rows were marked; the next :func:`relay_outbox` enqueues them."""
    moment = now or utcnow()
    cutoff = moment - stranded_after
    try:
        connection.ping()
    except redis.RedisError:
        return 0
    marked = 0
    with session_factory() as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.relayed_at).is_not(None))
            .where(col(OutboxMessage.done_at).is_(None))
            .where(col(OutboxMessage.relayed_at) < cutoff)
            # Filtered here, not after the LIMIT: rows scheduled for later (or only just due)
            # are the scheduler's, and with more of them than one batch a filter in Python
            # would see only those and never reach a stranded row behind them.
            .where(or_(col(OutboxMessage.run_at).is_(None), col(OutboxMessage.run_at) <= cutoff))
            .order_by(col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            assert row.id is not None
            try:
                Job.fetch(job_id(row.id), connection=connection, serializer=JSONSerializer)
                continue
            except NoSuchJobError:
                pass
            log.warning("outbox row %s: its job is gone from Redis; relaying it again", row.id)
            row.relayed_at = None
            session.add(row)
            marked += 1
    return marked


def pending(session: Session) -> int:
    """How many committed rows wait for the relay (counted in SQL: the backlog can be large)."""
    return session.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.relayed_at).is_(None))
    ).one()
