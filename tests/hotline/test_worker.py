"""The worker's periodic upkeep beyond the outbox: the hourly purge of expired dialogue state,
queued by one worker per hour however many run."""

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
from ivr_flows.store import DELIVERY_TTL
from kb.db import utcnow


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
