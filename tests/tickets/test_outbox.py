"""No lost work: jobs are written with the change that needs them and reach RQ after commit,
even when Redis was down at the time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.app import create_app
from hotline.queue import queue
from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings
from hotline.worker import OutboxRelay
from kb.db import utcnow
from kb.models import Institution
from tests.conftest import TwilioSigner, answer_texts, sms_params
from tests.tickets.conftest import dispatched
from tickets.models import (
    InboundMessage,
    OutboundMessage,
    OutboxMessage,
    Ticket,
    TicketState,
)
from tickets.outbox import (
    QUEUES,
    RETRY_INTERVALS_SECONDS,
    WAKE_KEY,
    job_id,
    pending,
    pending_commits,
    relay_outbox,
    rescue_stranded,
    session_factory_for,
)
from tickets.outbox import add as add_to_outbox


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test's own, so it can be stopped and started again."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _connect(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)


def _scheduled(connection: redis.Redis) -> set[str]:
    return {
        job
        for name in ("high", "default", "low")
        for job in ScheduledJobRegistry(
            name, connection=connection, serializer=JSONSerializer
        ).get_job_ids()
    }


def test_jobs_wait_in_the_outbox_while_redis_is_down(
    session: Session, clean_db: Engine, bank: Institution, own_redis: EmbeddedRedis
) -> None:
    connection = _connect(own_redis)
    factory = session_factory_for(clean_db)
    own_redis.stop()

    ticket = dispatched(session, bank, now=utcnow())
    session.commit()  # the case is saved whatever Redis does
    assert relay_outbox(factory, connection) == 0
    assert pending(session) == 3
    session.commit()

    own_redis.start()
    assert relay_outbox(factory, connection) == 3
    rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert all(row.relayed_at is not None for row in rows)
    assert _scheduled(connection) == {job_id(row.id or 0) for row in rows}
    session.commit()

    # A row relayed again (its mark lost) is still one job, under the row's id.
    rows[0].relayed_at = None
    session.add(rows[0])
    session.commit()
    assert relay_outbox(factory, connection) == 1
    assert len(_scheduled(connection)) == 3
    assert ticket.state == TicketState.dispatched


def test_the_caller_gets_an_answer_while_redis_is_down_and_the_worker_relays_later(
    settings: Settings,
    clean_db: Engine,
    twilio: TwilioSigner,
    own_redis: EmbeddedRedis,
) -> None:
    local_settings = settings.model_copy(update={"redis_url": own_redis.url})
    own_redis.stop()
    with TestClient(create_app(local_settings)) as client:
        response = twilio.post(
            client, "/twilio/sms", sms_params("我们公司在渝北区，想申请一笔贷款", settings=settings)
        )
    # Twilio is answered at once (empty TwiML: the reply follows from a worker); the text and
    # the job that answers it are kept while Redis is away.
    assert response.status_code == 200
    assert response.text.endswith("<Response />"), response.text
    with Session(clean_db) as session:
        message = session.exec(select(InboundMessage)).one()
        assert message.answered_at is None
        [row] = session.exec(select(OutboxMessage)).all()
        assert (row.task, row.payload["message_id"]) == ("sms_answer", message.id)
        assert pending(session) == 1  # the answer's job, not lost

    own_redis.start()
    connection = _connect(own_redis)
    relay = OutboxRelay(local_settings)
    try:
        assert relay.relay_once() == 1
    finally:
        relay.stop()
    assert queue(connection, "high").get_job_ids() == [job_id(row.id or 0)]
    # A real RQ worker runs it: the case is opened, the reply stored and sent, and the case's
    # SLA timers reach RQ's scheduler.
    worker = SimpleWorker(
        [queue(connection, name) for name in QUEUES],
        connection=connection,
        serializer=JSONSerializer,
    )
    assert worker.work(burst=True)
    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket)).one()
        assert ticket.state == TicketState.dispatched
        message = session.exec(select(InboundMessage)).one()
        assert message.answered_at is not None and message.ticket_id == ticket.id
        assert ticket.number in message.reply
        [reply] = session.exec(select(OutboundMessage)).all()
        assert (reply.purpose, reply.body) == ("sms_reply", message.reply)
        assert pending(session) == 0
    assert len(_scheduled(connection)) == 3


def test_a_request_leaves_timers_due_later_to_the_workers_relay(
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
    redis_conn: redis.Redis,
) -> None:
    """An inbound text's job is left to the workers' relay, woken for it; the case's SLA
    timers its job writes, hours ahead, are left by the wake-up round to the periodic one."""
    redis_conn.delete(WAKE_KEY)
    pending_commits.clear()  # left set by an earlier test's commit, the app would relay anyway
    response = twilio.post(
        client, "/twilio/sms", sms_params("想申请贷款，渝北区", settings=settings)
    )
    assert response.status_code == 200
    with Session(clean_db) as session:
        [answer] = session.exec(select(OutboxMessage)).all()
        # Written by the webhook's own SQL: not relayed by the web process, which woke the
        # workers' relay instead.
        assert answer.task == "sms_answer" and answer.relayed_at is None
    assert redis_conn.llen(WAKE_KEY) == 1
    relay = OutboxRelay(settings)
    try:
        assert relay.relay_due_now() == 1
        assert queue(redis_conn, "high").get_job_ids() == [job_id(answer.id or 0)]
        assert answer_texts(clean_db) == ["answered"]
        with Session(clean_db) as session:
            timers = session.exec(
                select(OutboxMessage).where(col(OutboxMessage.id) != answer.id)
            ).all()
        # The case's three SLA clocks, hours ahead: a wake-up round does not relay them...
        assert len(timers) == 3 and all(row.relayed_at is None for row in timers)
        assert relay.relay_due_now() == 0
        # ... the periodic round does.
        assert relay.relay_once() == 3
    finally:
        relay.stop()
    assert {job_id(row.id or 0) for row in timers} <= _scheduled(redis_conn)


def test_relaying_what_is_due_soon_leaves_the_rest_for_later(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    factory = session_factory_for(clean_db)
    now = utcnow()
    with factory() as session:
        due = [
            add_to_outbox(session, "sla_check", {"ticket_id": 0, "clock": "accept"}),
            add_to_outbox(
                session,
                "sla_check",
                {"ticket_id": 0, "clock": "contact"},
                run_at=now + timedelta(seconds=30),
            ),
        ]
        later = add_to_outbox(
            session,
            "sla_check",
            {"ticket_id": 0, "clock": "resolve"},
            run_at=now + timedelta(hours=4),
        )
        session.flush()
        due_ids, later_id = [row.id for row in due], later.id
    assert relay_outbox(factory, redis_conn, now=now, due_within=timedelta(minutes=1)) == 2
    with Session(clean_db) as session:
        relayed = {row.id for row in session.exec(select(OutboxMessage)) if row.relayed_at}
    assert relayed == set(due_ids)
    assert relay_outbox(factory, redis_conn, now=now) == 1
    assert job_id(later_id or 0) in _scheduled(redis_conn)


def test_only_a_commit_with_rows_due_soon_wakes_the_relay_after_the_request(
    clean_db: Engine,
) -> None:
    factory = session_factory_for(clean_db)
    now = utcnow()
    pending_commits.clear()
    with factory() as session:
        add_to_outbox(session, "sla_check", {"ticket_id": 0}, run_at=now + timedelta(hours=4))
    # Timers hours ahead: the web process would relay nothing, so it is not asked to.
    assert not pending_commits.is_set()

    with factory() as session:
        add_to_outbox(session, "sla_check", {"ticket_id": 0}, run_at=now + timedelta(hours=4))
        add_to_outbox(session, "sla_check", {"ticket_id": 0}, run_at=now + timedelta(seconds=30))
        session.rollback()
    assert not pending_commits.is_set()  # nothing was committed

    with factory() as session:
        add_to_outbox(session, "sms_firm", {"ticket_id": 0})
    assert pending_commits.is_set()
    pending_commits.clear()


def test_a_relayed_row_whose_job_redis_lost_is_relayed_again(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    factory = session_factory_for(clean_db)
    with factory() as session:
        row = add_to_outbox(session, "sla_check", {"ticket_id": 0, "clock": "accept"})
        session.flush()
        row_id = row.id
    assert row_id is not None
    assert relay_outbox(factory, redis_conn) >= 1
    job = Job.fetch(job_id(row_id), connection=redis_conn, serializer=JSONSerializer)
    assert job.retries_left == len(RETRY_INTERVALS_SECONDS)

    later = utcnow() + timedelta(minutes=10)
    # The job is still in Redis: nothing to rescue, however old the relay.
    assert rescue_stranded(factory, redis_conn, now=later) == 0
    job.delete()  # as after Redis lost its data
    # Too recent to call stranded: left alone.
    assert rescue_stranded(factory, redis_conn) == 0
    assert rescue_stranded(factory, redis_conn, now=later) == 1
    with Session(clean_db) as session:
        again = session.get(OutboxMessage, row_id)
        assert again is not None and again.relayed_at is None
    assert relay_outbox(factory, redis_conn) >= 1
    assert Job.exists(job_id(row_id), connection=redis_conn)


def test_a_stranded_row_is_found_behind_more_scheduled_rows_than_one_batch(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    """Revisits and SLA timers wait in RQ's scheduler for days, relayed long ago and not done:
    they must not fill every rescue batch and hide a row whose job Redis lost."""
    factory = session_factory_for(clean_db)
    batch = 5
    with factory() as session:
        for day in range(batch + 1):
            add_to_outbox(
                session,
                "revisit_call",
                {"revisit_id": day, "attempt": 1},
                run_at=utcnow() + timedelta(days=day + 1),
            )
        lost = add_to_outbox(session, "sla_check", {"ticket_id": 0, "clock": "accept"})
        session.flush()
        lost_id = lost.id
    assert lost_id is not None
    assert relay_outbox(factory, redis_conn) == batch + 2
    Job.fetch(job_id(lost_id), connection=redis_conn, serializer=JSONSerializer).delete()

    later = utcnow() + timedelta(minutes=10)
    assert rescue_stranded(factory, redis_conn, now=later, limit=batch) == 1
    with Session(clean_db) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        assert [row.id for row in rows if row.relayed_at is None] == [lost_id]
    assert relay_outbox(factory, redis_conn) == 1
    assert Job.exists(job_id(lost_id), connection=redis_conn)
    # The scheduled jobs were left where they were.
    assert len(_scheduled(redis_conn)) == batch + 1


def test_pending_counts_the_rows_waiting_for_the_relay(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    factory = session_factory_for(clean_db)
    with factory() as session:
        for n in range(3):
            add_to_outbox(session, "sla_check", {"ticket_id": n, "clock": "accept"})
    with Session(clean_db) as session:
        assert pending(session) == 3
    assert relay_outbox(factory, redis_conn, limit=2) == 2
    with Session(clean_db) as session:
        assert pending(session) == 1
