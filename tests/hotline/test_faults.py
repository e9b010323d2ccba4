"""Faults under traffic, on real parts: Redis stopped, a worker killed mid-job, the database
locked or its connections killed, a burst of identical deliveries, clock jumps, holidays.

Each test runs on both CI legs (SQLite + embedded Redis, PostgreSQL + Redis server), except
where a fault only exists on one of them (noted)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rq import Queue, SimpleWorker, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.app import create_app
from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings
from hotline.worker import OutboxRelay
from ivr_flows.models import DialogueState
from kb.db import get_engine
from kb.models import Institution
from tests.conftest import (
    TwilioSigner,
    answer_texts,
    count_rows,
    kill_other_connections,
    sms_params,
)
from tests.ivr_flows.phone import OFFICE_HOURS, PhoneCall, Twiml, new_sid
from tests.tickets.conftest import dispatched, local, service_institutions, staff_of
from tickets import service as ticket_ops
from tickets.models import (
    InboundMessage,
    OutboundMessage,
    OutboxMessage,
    Revisit,
    Ticket,
    TicketEvent,
    TicketState,
)
from tickets.outbox import (
    QUEUES,
    RETRY_INTERVALS_SECONDS,
    WAKE_KEY,
    enqueue,
    job_id,
    pending,
)
from tickets.service import ticket_service
from tickets.tasks import run_outbox_job

LOAN = "我们公司在渝北区，想申请一笔贷款"


@pytest.fixture(autouse=True)
def _empty_queues_after(redis_conn: redis.Redis) -> Iterator[None]:
    """Jobs this module's requests relayed leave the shared Redis with the test (job ids are
    outbox row ids, which start again at 1 in the next test's emptied tables)."""
    yield


def _twiml(body: str) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


# --- Redis stopped while webhooks arrive ----------------------------------------------------


def test_redis_down_callers_answered_tickets_saved_jobs_delivered_once_after(
    settings: Settings, clean_db: Engine, twilio: TwilioSigner, own_redis: EmbeddedRedis
) -> None:
    local_settings = settings.model_copy(update={"redis_url": own_redis.url})
    app = create_app(local_settings)
    app.state.clock = lambda: OFFICE_HOURS
    own_redis.stop()
    senders = [f"+86139{n:08d}" for n in range(12)]
    with TestClient(app) as client:
        replies = [
            twilio.post(
                client,
                "/twilio/sms",
                sms_params(LOAN, sid=new_sid("SM"), sender=sender, settings=settings),
            )
            for sender in senders
        ]
        calls = [PhoneCall(client, twilio, settings, caller=sender) for sender in senders[:4]]
        for call in calls:
            call.start()
        # Each caller answers the greeting (English): the step that makes the call's state.
        first_steps = [call.press("9") for call in calls]
        status = client.get("/healthz")
    assert status.status_code == 503 and status.json()["checks"]["database"] == "ok"
    for reply in replies:
        assert reply.status_code == 200
        # Valid TwiML, empty: the text is taken in; a worker answers it once Redis is back.
        assert len(_twiml(reply.text)) == 0, reply.text
    assert all(step.verbs[0] == "Gather" for step in first_steps)  # each heard the next prompt
    with Session(clean_db) as session:
        texts = session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all()
        assert [m.from_number for m in texts] == senders  # every text saved
        assert all(m.answered_at is None for m in texts)
        jobs = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        assert [(row.task, row.queue, row.payload["message_id"]) for row in jobs] == [
            ("sms_answer", "high", m.id) for m in texts
        ]
        assert len(session.exec(select(DialogueState)).all()) == 4
        assert pending(session) == len(senders)  # the answers' jobs, not lost

    own_redis.start()
    connection = redis.Redis.from_url(own_redis.url)
    relays = [OutboxRelay(local_settings) for _ in range(2)]  # two workers' relays at once
    try:
        with ThreadPoolExecutor(2) as pool:
            relayed = sum(pool.map(lambda r: r.relay_once(), relays))
        assert relayed == len(senders)
        assert sum(r.relay_once() for r in relays) == 0
    finally:
        for relay in relays:
            relay.stop()
    queued = Queue("high", connection=connection, serializer=JSONSerializer).get_job_ids()
    assert sorted(queued) == sorted(job_id(row.id or 0) for row in jobs)

    # A real RQ worker answers every text once; each answer's SLA timers reach RQ's scheduler
    # (relayed by the job that wrote them).
    worker = SimpleWorker(
        [Queue(q, connection=connection, serializer=JSONSerializer) for q in QUEUES],
        connection=connection,
        serializer=JSONSerializer,
    )
    assert worker.work(burst=True)
    with Session(clean_db) as session:
        texts = session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all()
        tickets = {t.id: t for t in session.exec(select(Ticket)).all()}
        replies_sent = session.exec(
            select(OutboundMessage).where(OutboundMessage.purpose == "sms_reply")
        ).all()
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        assert pending(session) == 0
    assert len(tickets) == len(senders)
    assert all(m.answered_at is not None and m.ticket_id in tickets for m in texts)
    assert all(tickets[m.ticket_id].number in m.reply for m in texts)  # type: ignore[index]
    assert sorted((r.to_number, r.body) for r in replies_sent) == sorted(
        (m.from_number, m.reply) for m in texts
    )
    answers = [row for row in rows if row.task == "sms_answer"]
    timers = [row for row in rows if row.task != "sms_answer"]
    assert all(row.done_at is not None for row in answers)
    assert len(timers) == 3 * len(senders)
    scheduled = {
        j
        for q in QUEUES
        for j in ScheduledJobRegistry(
            q, connection=connection, serializer=JSONSerializer
        ).get_job_ids()
    }
    assert scheduled == {job_id(row.id or 0) for row in timers}

    # Every job runs again (a week later: every SLA clock has expired); delivered twice, it
    # acts once: no second reply, one escalation per ticket.
    later = (OFFICE_HOURS + timedelta(days=7)).isoformat()
    for row in answers:
        assert run_outbox_job(row.id or 0, now=later).startswith("already done")
    for row in timers:
        assert not run_outbox_job(row.id or 0, now=later).startswith("already")
        assert run_outbox_job(row.id or 0, now=later).startswith("already done")
    with Session(clean_db) as session:
        escalations = session.exec(
            select(TicketEvent.ticket_id).where(TicketEvent.action == "escalate")
        ).all()
        assert len(
            session.exec(
                select(OutboundMessage).where(OutboundMessage.purpose == "sms_reply")
            ).all()
        ) == len(senders)
    assert sorted(escalations) == sorted(tickets)  # once per ticket, not 3 times


# --- a worker killed in the middle of a job -------------------------------------------------


def _worker_env(settings: Settings, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        {
            "HOTLINE_DATABASE_URL": settings.database_url,
            "HOTLINE_REDIS_URL": redis_url,
            "HOTLINE_VAR_DIR": str(settings.var_dir),
            "HOTLINE_TWILIO_AUTH_TOKEN": settings.auth_token,
            "HOTLINE_PUBLIC_BASE_URL": settings.public_base_url,
        }
    )
    return env


def _hold_database(engine: Engine, row_id: int) -> Callable[[], None]:
    """Block the job inside its transaction: a row lock on PostgreSQL, the write lock on SQLite.
    Returns the release."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        transaction = connection.begin()
        connection.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": row_id})
    else:
        transaction = connection.begin()  # BEGIN IMMEDIATE: the write lock
        connection.execute(text("UPDATE outbox SET result = result WHERE id = :id"), {"id": row_id})

    def release() -> None:
        transaction.rollback()
        connection.close()

    return release


def test_a_worker_killed_mid_job_the_job_is_retried_and_acts_once(
    settings: Settings, clean_db: Engine, redis_url: str, redis_conn: redis.Redis
) -> None:
    redis_conn.flushdb()
    session = Session(clean_db, expire_on_commit=False)
    bank = service_institutions(session, "financing")[0]
    # Dispatched on a past working morning: its accept clock has long expired.
    ticket = dispatched(session, bank, now=datetime(2026, 10, 12, 2, 0, tzinfo=UTC))
    session.commit()
    row = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.task == "sla_check")
        .order_by(col(OutboxMessage.id))
    ).first()
    assert row is not None and row.id is not None
    session.close()
    # Only this row's job runs: the others count as relayed already.
    with clean_db.begin() as conn:
        conn.execute(
            text("UPDATE outbox SET run_at = NULL, relayed_at = :now WHERE id <> :id"),
            {"now": datetime.now(UTC), "id": row.id},
        )
        # Ours too counts as relayed, or the worker's start-up relay would run it at once; the
        # test enqueues it itself once the database is held.
        conn.execute(
            text("UPDATE outbox SET relayed_at = :now WHERE id = :id"),
            {"now": datetime.now(UTC), "id": row.id},
        )
    bin_dir = Path(sys.executable).parent
    worker = subprocess.Popen(
        [str(bin_dir / "hotline"), "worker"],
        env=_worker_env(settings, redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not Worker.all(connection=redis_conn):  # up, past its start-up relay
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    time.sleep(0.5)
    release = _hold_database(clean_db, row.id)
    # Enqueued as the relay does, so the job carries the outbox's retry policy (the relay itself
    # would wait for the database this test is holding).
    enqueue(redis_conn, row)
    started = StartedJobRegistry("high", connection=redis_conn, serializer=JSONSerializer)
    try:
        deadline = time.monotonic() + 30
        while job_id(row.id) not in started.get_job_ids(cleanup=False):
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.1)
        time.sleep(0.3)  # inside the job, waiting on the lock
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse
        worker.wait(timeout=10)
    finally:
        release()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    # The job did not finish: the worker ran it in its own process (RQ's work horses, forked
    # into a process group of their own, used to outlive this kill and finish the job).
    with Session(clean_db) as check:
        assert check.get_one(OutboxMessage, row.id).done_at is None
    # Time passes: RQ's cleanup finds the abandoned job (its worker's heartbeat expired), and
    # the dead worker's scheduler locks expire (after 60 s), so another worker's scheduler
    # can enqueue the retry.
    started.cleanup(timestamp=time.time() + 3600)
    for lock in redis_conn.keys("rq:scheduler-lock:*"):
        redis_conn.delete(lock)
    time.sleep(RETRY_INTERVALS_SECONDS[0] + 0.5)  # the retry falls due
    worker = subprocess.Popen(
        [str(bin_dir / "hotline"), "worker", "--burst"],
        env=_worker_env(settings, redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert worker.wait(timeout=60) == 0
    with Session(clean_db) as check:
        done = check.get_one(OutboxMessage, row.id)
        escalations = check.exec(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.action == "escalate"
            )
        ).all()
    assert done.done_at is not None, "the job's effect never happened"
    assert len(escalations) == 1
    failed = FailedJobRegistry("high", connection=redis_conn, serializer=JSONSerializer)
    assert job_id(row.id) not in failed.get_job_ids()


# --- the database locked or its connections killed ------------------------------------------


def _shorten(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=300")


@pytest.fixture
def short_busy_timeout(clean_db: Engine) -> Iterator[Callable[[], Engine]]:
    """SQLite only: the app's connections wait 0.3 s for a lock instead of 30 s, so the test
    sees the failure quickly (the code path is the same). Call it once the app has started
    (its start-up builds the process's engine)."""
    if clean_db.dialect.name != "sqlite":
        pytest.skip("SQLite's lock; the PostgreSQL leg kills connections instead")
    shortened: list[Engine] = []

    def shorten() -> Engine:
        engine = get_engine()
        event.listen(engine, "connect", _shorten)
        engine.dispose()
        shortened.append(engine)
        return engine

    yield shorten
    for engine in shortened:
        event.remove(engine, "connect", _shorten)
        engine.dispose()


def test_sqlite_locked_requests_fail_cleanly_then_recover_without_restart(
    settings: Settings,
    twilio: TwilioSigner,
    short_busy_timeout: Callable[[], Engine],
    clean_db: Engine,
) -> None:
    app = create_app(settings)
    app.state.clock = lambda: OFFICE_HOURS
    path = clean_db.url.database
    assert path
    with TestClient(app) as client:
        short_busy_timeout()  # the app's own connections, with the short timeout
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            sms = twilio.post(client, "/twilio/sms", sms_params(LOAN, sid=new_sid("SM")))
            call = PhoneCall(client, twilio, settings)
            greeting = call.start()  # the greeting needs no database
            answer = call.press("9")  # the caller's answer does
            api = client.get("/api/institutions")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # The apology, valid TwiML: the text was not taken in, so Twilio's retry starts clean.
        assert sms.status_code == 200 and _twiml(sms.text).find("Message") is not None
        assert greeting.verbs[0] == "Gather"
        assert answer.verbs == ["Say", "Say", "Hangup"]  # the apology, valid TwiML
        assert api.status_code == 503
        assert api.json() == {"detail": "the database is unavailable; try again shortly"}
        assert api.headers["Retry-After"] == "5"
        # Nothing half-written: no text without its job, no job without its text.
        assert count_rows(clean_db, InboundMessage) == count_rows(clean_db, OutboxMessage) == 0
        # The lock is gone: the same process serves again.
        again = twilio.post(client, "/twilio/sms", sms_params(LOAN, sid=new_sid("SM")))
        assert again.status_code == 200 and len(_twiml(again.text)) == 0, again.text
        assert client.get("/api/institutions").status_code == 200
        assert PhoneCall(client, twilio, settings).start().verbs != ["Say", "Say", "Hangup"]
    assert count_rows(clean_db, InboundMessage) == 1
    assert answer_texts(clean_db) == ["answered"]
    assert count_rows(clean_db, Ticket) == 1
    with Session(clean_db) as session:
        [message] = session.exec(select(InboundMessage)).all()
        assert session.exec(select(Ticket)).one().number in message.reply


def test_postgresql_connections_killed_during_traffic_fail_cleanly_and_recover(
    settings: Settings, twilio: TwilioSigner, clean_db: Engine
) -> None:
    if clean_db.dialect.name != "postgresql":
        pytest.skip("PostgreSQL leg: the SQLite leg holds a lock instead")
    app = create_app(settings)
    app.state.clock = lambda: OFFICE_HOURS
    with TestClient(app) as client:

        def one(n: int) -> tuple[int, str, str]:
            if n % 3 == 0:
                response = client.get("/api/institutions?limit=5")
                return response.status_code, "api", response.text
            sid = f"SM{n:032x}"
            response = twilio.post(
                client, "/twilio/sms", sms_params(LOAN, sid=sid, sender=f"+86139{n:08d}")
            )
            return response.status_code, sid, response.text

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, n) for n in range(60)]
            kills = 0
            for _ in range(6):
                time.sleep(0.15)
                kills += kill_other_connections(clean_db)
            results = [f.result() for f in futures]
        assert kills > 0
        assert all(status in (200, 503) for status, _, _ in results), results
        taken_in = set()
        for status, kind, body in results:
            if kind != "api":
                assert status == 200
                if len(_twiml(body)) == 0:  # empty TwiML: taken in; else the apology
                    taken_in.add(kind)
                else:
                    assert _twiml(body).find("Message") is not None, body
        assert taken_in, "no text got through"
        # Recovered, same process, no restart:
        kill_other_connections(clean_db)
        assert client.get("/api/institutions?limit=5").status_code == 200
        assert client.get("/healthz").status_code == 200
    with Session(clean_db) as session:
        inbound = {m.message_sid: m.id for m in session.exec(select(InboundMessage)).all()}
        jobs = [
            row.payload["message_id"]
            for row in session.exec(
                select(OutboxMessage).where(OutboxMessage.task == "sms_answer")
            ).all()
        ]
    # A text taken in was kept with its job; an apology kept nothing, so Twilio's retry starts
    # clean.
    assert set(inbound) == taken_in
    assert sorted(jobs) == sorted(inbound.values())
    # The workers answer every text kept, each with its own ticket.
    assert answer_texts(clean_db) == ["answered"] * len(taken_in)
    with Session(clean_db) as session:
        tickets = {t.id: t.number for t in session.exec(select(Ticket)).all()}
        texts = session.exec(select(InboundMessage)).all()
    assert len(tickets) == len(texts) == len(taken_in)
    assert all(tickets[m.ticket_id] in m.reply for m in texts)  # type: ignore[index]


# --- a burst of identical deliveries ----------------------------------------------------------


def test_fifty_identical_sms_deliveries_at_once_make_one_ticket_and_one_reply(
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
    redis_conn: redis.Redis,
) -> None:
    redis_conn.delete(WAKE_KEY)
    params = sms_params(LOAN, sid=new_sid("SM"), settings=settings)
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda _: twilio.post(client, "/twilio/sms", params), range(50)))
    assert {r.status_code for r in responses} == {200}
    bodies = {r.text for r in responses}
    assert len(bodies) == 1, bodies
    assert len(_twiml(bodies.pop())) == 0  # empty TwiML: the reply is the worker's
    # One text, one job to answer it, one wake-up of the workers' relay.
    assert count_rows(clean_db, InboundMessage) == 1
    with Session(clean_db) as session:
        [job] = session.exec(select(OutboxMessage)).all()
        assert (job.task, job.queue) == ("sms_answer", "high")
    assert redis_conn.llen(WAKE_KEY) == 1
    # The job, delivered twice: one ticket, one reply.
    assert answer_texts(clean_db) == ["answered"]
    assert run_outbox_job(job.id or 0).startswith("already done")
    assert answer_texts(clean_db) == []
    assert count_rows(clean_db, Ticket) == 1
    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket)).one()
        message = session.exec(select(InboundMessage)).one()
        [reply] = session.exec(
            select(OutboundMessage).where(OutboundMessage.purpose == "sms_reply")
        ).all()
        assert ticket.number in message.reply and reply.body == message.reply
        assert message.ticket_id == reply.ticket_id == ticket.id
        # The ticket's three SLA timers, once each.
        timers = session.exec(select(OutboxMessage).where(OutboxMessage.id != job.id)).all()
        assert sorted(row.payload["clock"] for row in timers) == ["accept", "contact", "resolve"]


def test_fifty_identical_voice_deliveries_at_once_keep_one_dialogue(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine, app: FastAPI
) -> None:
    app.state.clock = lambda: OFFICE_HOURS
    call = PhoneCall(client, twilio, settings)

    def fifty(url: str, params: dict[str, str]) -> set[str]:
        path = url.removeprefix(settings.public_base_url)
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: twilio.post(client, path, params), range(50)))
        assert {r.status_code for r in responses} == {200}
        for response in responses:
            _twiml(response.text)
        return {r.text for r in responses}

    # The greeting: the same TwiML fifty times, and nothing stored until the caller answers.
    [greeting] = fifty("/twilio/voice", call.base())
    assert count_rows(clean_db, DialogueState) == 0
    # The answer (English, key 9), delivered fifty times at once: one dialogue, one reply.
    call.last = Twiml(greeting)
    replies = fifty(call.last.action, {**call.base(), "Digits": "9"})
    assert len(replies) == 1, replies
    assert count_rows(clean_db, DialogueState) == 1
    with Session(clean_db) as session:
        [state] = session.exec(select(DialogueState)).all()
        assert state.language == "en" and state.data["step"] == "ask_need"


# --- the clock ---------------------------------------------------------------------------------


@pytest.fixture
def bank(session: Session) -> Institution:
    return service_institutions(session, "financing")[0]


def test_clock_jumps_back_and_forth_across_an_sla_deadline(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank, now=OFFICE_HOURS)
    session.commit()
    due = ticket.accept_due_at
    assert due is not None
    due = due.replace(tzinfo=UTC) if due.tzinfo is None else due

    def accept_check() -> OutboxMessage:
        session.expire_all()
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.task == "sla_check", col(OutboxMessage.done_at).is_(None))
            .order_by(col(OutboxMessage.id))
        ).all()
        session.commit()
        return next(r for r in rows if r.payload["clock"] == "accept")

    # Delivered a second early (this machine's clock is behind): not missed, rescheduled.
    assert run_outbox_job(accept_check().id or 0, now=(due - timedelta(seconds=1)).isoformat())
    rescheduled = accept_check()
    assert rescheduled.run_at is not None
    # The clock jumps back an hour: still early, rescheduled again, no escalation.
    result = run_outbox_job(rescheduled.id or 0, now=(due - timedelta(hours=1)).isoformat())
    assert result == "early: rescheduled"
    session.refresh(ticket)
    assert ticket.state == TicketState.dispatched
    # Then forward past the deadline: escalated once; a repeat delivery changes nothing.
    final = accept_check()
    assert run_outbox_job(final.id or 0, now=(due + timedelta(seconds=1)).isoformat()) == (
        "escalated"
    )
    assert run_outbox_job(final.id or 0, now=(due + timedelta(days=1)).isoformat()).startswith(
        "already done"
    )
    session.expire_all()
    escalations = session.exec(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "escalate"
        )
    ).all()
    session.commit()
    assert len(escalations) == 1


def test_a_revisit_due_during_a_holiday_lands_on_the_next_working_day(
    session: Session, bank: Institution
) -> None:
    # Resolved on Wednesday 30 September 2026, the eve of the National Day holiday (1-8 Oct).
    resolved_at = local(2026, 9, 30, 15)
    ticket = dispatched(session, bank, now=resolved_at - timedelta(hours=5))
    ticket_ops.accept(session, ticket, actor=staff_of(bank), now=resolved_at - timedelta(hours=4))
    ticket_ops.resolve(session, ticket, actor=staff_of(bank), note="done", now=resolved_at)
    session.commit()
    calendar = ticket_service.calendar
    call = session.exec(select(OutboxMessage).where(OutboxMessage.task == "revisit_call")).one()
    session.commit()
    assert call.run_at is not None
    run_at = call.run_at.replace(tzinfo=UTC) if call.run_at.tzinfo is None else call.run_at
    landed = calendar.local(run_at)
    assert calendar.is_working_day(landed.date())
    assert landed.date() > datetime(2026, 10, 8).date() - timedelta(days=1)
    holiday_days = [
        d
        for d in (landed.date() - timedelta(days=n) for n in range(1, 10))
        if calendar.holiday_name(d)
    ]
    assert holiday_days, "the delay ran across the holiday"
    # Delivered during the holiday anyway (a worker's clock jumped): no call, moved on to the
    # first calling moment of the next working day.
    during = local(2026, 10, 3, 10)
    assert calendar.holiday_name(calendar.local(during).date())
    result = run_outbox_job(call.id or 0, now=during.isoformat())
    assert result == "outside the call window: moved"
    session.expire_all()
    moved = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.task == "revisit_call")
        .order_by(col(OutboxMessage.id).desc())
    ).first()
    row = session.exec(select(Revisit).where(Revisit.ticket_id == ticket.id)).one()
    session.commit()
    assert moved is not None and moved.id != call.id and moved.run_at is not None
    moved_at = calendar.local(
        moved.run_at.replace(tzinfo=UTC) if moved.run_at.tzinfo is None else moved.run_at
    )
    assert calendar.is_working_day(moved_at.date()) and not calendar.holiday_name(moved_at.date())
    assert moved_at.date() > calendar.local(during).date()
    assert row.attempts == 0  # nobody was called on a holiday
