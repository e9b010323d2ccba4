"""The worker's outbox relay and its periodic upkeep beyond the outbox: woken at once for an
inbound text's job, and the hourly purge of expired dialogue state, queued by one worker per
hour however many run."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.queue import queue
from hotline.settings import Settings
from hotline.worker import PURGE_EVERY_SECONDS, OutboxRelay, schedule_purge
from ivr_flows.models import DialogueState, WebhookDelivery
from ivr_flows.sms import ANSWER_TASK, InboundSms, accept_text
from ivr_flows.store import DELIVERY_TTL
from kb.db import utcnow
from tickets.models import OutboxMessage
from tickets.outbox import WAKE_KEY, job_id, wake_relay


def _low_jobs(connection: redis.Redis) -> list[str]:
    return queue(connection, "low").get_job_ids()


def test_two_workers_queue_the_purge_once_an_hour_and_it_forgets_what_expired(
    clean_db: Engine, settings: Settings, redis_conn: redis.Redis
) -> None:
    for key in redis_conn.scan_iter("hotline:maintenance:*"):  # claims of earlier tests
        redis_conn.delete(key)
    now = utcnow()
    with Session(clean_db) as session:
        session.add(DialogueState(key="sms:old", flow="sms", expires_at=now - timedelta(hours=1)))
        session.add(DialogueState(key="sms:live", flow="sms", expires_at=now + timedelta(hours=1)))
        session.add(WebhookDelivery(key="old", created_at=now - DELIVERY_TTL - timedelta(hours=1)))
        session.add(WebhookDelivery(key="recent", created_at=now))
        session.commit()

    relays = [OutboxRelay(settings, interval=0.1) for _ in range(2)]  # two workers
    try:
        for relay in relays:
            relay.relay_once()
            relay.relay_once()
    finally:
        for relay in relays:
            relay.stop()
    jobs = _low_jobs(redis_conn)
    period = int(time.time() // PURGE_EVERY_SECONDS)
    # Queued once (an hour boundary crossed during the test would make it the next hour's).
    assert len(jobs) == 1 and jobs[0] in {
        f"purge-dialogue-state-{period}",
        f"purge-dialogue-state-{period - 1}",
    }

    SimpleWorker([queue(redis_conn, "low")], connection=redis_conn, serializer=JSONSerializer).work(
        burst=True
    )
    with Session(clean_db) as session:
        assert session.exec(select(DialogueState.key)).all() == ["sms:live"]
        assert session.exec(
            select(WebhookDelivery.key).order_by(col(WebhookDelivery.key))
        ).all() == ["recent"]

    # The next hour is claimed afresh, once.
    later = time.time() + PURGE_EVERY_SECONDS
    assert schedule_purge(redis_conn, now=later) is True
    assert schedule_purge(redis_conn, now=later) is False
    assert len(_low_jobs(redis_conn)) == 1


def _relayed(engine: Engine, row_id: int) -> bool:
    with Session(engine) as session:
        row = session.get(OutboxMessage, row_id)
        return row is not None and row.relayed_at is not None


def test_a_running_relay_woken_for_a_text_relays_its_job_at_once_and_stops_promptly(
    clean_db: Engine, settings: Settings, redis_conn: redis.Redis
) -> None:
    redis_conn.delete(WAKE_KEY)
    relay = OutboxRelay(settings, interval=60)  # its periodic round would come a minute later
    relay.start()
    try:
        # What the SMS webhook writes: the text and the job that answers it.
        with Session(clean_db) as session:
            message_id = accept_text(
                session,
                InboundSms(
                    message_sid="SM" + "7" * 32,
                    from_number="+8613800138000",
                    to_number=settings.main_number,
                    body="想申请贷款，渝北区",
                ),
            )
            session.commit()
        assert message_id is not None
        with Session(clean_db) as session:
            [row] = session.exec(select(OutboxMessage)).all()
        assert row.id is not None and row.task == ANSWER_TASK and row.queue == "high"
        # Not woken: the relay leaves it for its periodic round (longer than a wait for a wake).
        time.sleep(1.5)
        assert not _relayed(clean_db, row.id)

        wake_relay(redis_conn)
        woken = time.monotonic()
        while job_id(row.id) not in queue(redis_conn, "high").get_job_ids():
            assert time.monotonic() - woken < 3, "the relay did not answer its wake-up"
            time.sleep(0.05)
        assert _relayed(clean_db, row.id)
        assert redis_conn.llen(WAKE_KEY) == 0  # the wake-up was taken
    finally:
        stopping = time.monotonic()
        relay.stop()
        stopped_in = time.monotonic() - stopping
    assert not relay.is_alive()
    assert stopped_in < 2, stopped_in
