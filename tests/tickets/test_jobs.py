"""SLA timers and escalation run as RQ jobs on the real Redis, by a real RQ worker with its
scheduler: the due time is a couple of seconds away, not hours."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import redis
from rq import Worker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.queue import QUEUE_NAMES, queue
from hotline.worker import protect_database_across_forks
from kb.db import as_utc, utcnow
from kb.models import Institution
from tests.tickets.conftest import AGENT, dispatched, local, open_request, staff_of
from tickets import service
from tickets.models import OutboundMessage, OutboxMessage, Ticket, TicketEvent, TicketState
from tickets.outbox import job_id, relay_outbox, session_factory_for
from tickets.tasks import run_outbox_job


def work_burst(connection: redis.Redis) -> None:
    """One real RQ worker (forking a work horse per job) with its scheduler, until idle."""
    protect_database_across_forks()
    worker = Worker(
        [queue(connection, name) for name in QUEUE_NAMES],
        connection=connection,
        serializer=JSONSerializer,
    )
    worker.work(burst=True, with_scheduler=True)


def _rows(session: Session, ticket: Ticket, task: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
    if task:
        query = query.where(OutboxMessage.task == task)
    session.expire_all()
    rows = list(session.exec(query.order_by(col(OutboxMessage.id))).all())
    _done_reading(session)
    return rows


def _done_reading(session: Session) -> None:
    """End the test's read transaction: on SQLite every transaction takes the write lock
    (BEGIN IMMEDIATE), and the jobs run in other sessions need it."""
    session.commit()


def _reload(session: Session, ticket: Ticket) -> None:
    session.refresh(ticket)
    _done_reading(session)


def _clock_row(session: Session, ticket: Ticket, clock: str) -> OutboxMessage:
    return next(r for r in _rows(session, ticket, "sla_check") if r.payload["clock"] == clock)


def test_a_missed_acceptance_escalates_through_a_real_worker(
    session: Session, clean_db: Engine, bank: Institution, redis_conn: redis.Redis
) -> None:
    ticket = dispatched(session, bank, now=utcnow() - timedelta(days=30))
    session.commit()
    # The accept clock falls due two seconds from now; the other clocks are far away.
    due = utcnow() + timedelta(seconds=2)
    accept_timer, *other_timers = _rows(session, ticket, "sla_check")
    assert accept_timer.payload["clock"] == "accept"
    ticket.accept_due_at = due
    session.add(ticket)
    accept_timer.run_at = due
    accept_timer.payload = {**accept_timer.payload, "due": due.isoformat()}
    session.add(accept_timer)
    for row in other_timers:
        row.run_at = utcnow() + timedelta(days=1)
        session.add(row)
    session.commit()

    accept_id = accept_timer.id or 0
    assert relay_outbox(session_factory_for(clean_db), redis_conn) == 3
    scheduled = ScheduledJobRegistry("high", connection=redis_conn, serializer=JSONSerializer)
    assert job_id(accept_id) in scheduled.get_job_ids()
    assert relay_outbox(session_factory_for(clean_db), redis_conn) == 0  # relayed once

    work_burst(redis_conn)  # not due yet: the scheduler leaves it where it is
    _reload(session, ticket)
    assert ticket.state == TicketState.dispatched

    time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.3)
    # A loaded machine may hand the due job to the scheduler a moment late: work again, briefly.
    deadline = time.monotonic() + 10
    while True:
        work_burst(redis_conn)
        _reload(session, ticket)
        if ticket.state != TicketState.dispatched or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ticket.state == TicketState.escalated and ticket.escalation_level == 1
    events = session.exec(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(col(TicketEvent.id))
    ).all()
    escalation = next(e for e in events if e.action == "escalate")
    assert (escalation.from_state, escalation.actor) == ("dispatched", "system:lifecycle")
    assert escalation.data == {"reason": "sla_accept_missed"}
    # The district window platform was notified through the telephony port (offline adapter).
    window = session.exec(select(Institution).where(Institution.code == "win-yubei")).one()
    notice = session.exec(select(OutboundMessage)).one()
    assert (notice.to_number, notice.institution_id) == (window.phone, window.id)
    assert ticket.number in notice.body and notice.status == "queued"
    assert notice.provider == "offline"
    # Its follow-up (the municipal platform, a working day later) is scheduled in RQ.
    follow_up = _rows(session, ticket, "escalation_follow_up")[0]
    assert follow_up.relayed_at is not None and follow_up.done_at is None
    assert job_id(follow_up.id or 0) in scheduled.get_job_ids()
    _done_reading(session)

    # Delivered again, the job changes nothing.
    events_before = len(events)
    assert run_outbox_job(accept_id).startswith("already done")
    session.expire_all()
    assert (
        len(session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).all())
        == events_before
    )
    assert len(session.exec(select(OutboundMessage)).all()) == 1


def test_escalation_still_unhandled_reaches_the_municipal_platform(
    session: Session, bank: Institution
) -> None:
    start = datetime.fromisoformat("2026-12-02T02:00:00+00:00")  # Wednesday 10:00 local
    ticket = dispatched(session, bank, now=start)
    session.commit()
    accept_timer = _clock_row(session, ticket, "accept")
    assert (
        run_outbox_job(accept_timer.id or 0, now=(start + timedelta(hours=6)).isoformat())
        == "escalated"
    )
    follow_up = _rows(session, ticket, "escalation_follow_up")[0]
    assert follow_up.run_at is not None
    # Escalated Wed 16:00 local; one working day (7h) later is Thu 16:00 (lunch excluded).
    assert as_utc(follow_up.run_at) == local(2026, 12, 3, 16)
    assert run_outbox_job(follow_up.id or 0, now=(start + timedelta(days=2)).isoformat()) == (
        "municipal platform notified"
    )
    _reload(session, ticket)
    assert ticket.escalation_level == 2 and ticket.state == TicketState.escalated
    notices = _rows(session, ticket, "notify_institution")
    tiers = [session.get_one(Institution, r.payload["institution_id"]).tier.value for r in notices]
    assert tiers == ["district_window", "municipal"]
    _done_reading(session)
    for row in notices:
        run_outbox_job(row.id or 0)
    assert len(session.exec(select(OutboundMessage)).all()) == 2
    _done_reading(session)


def test_timers_of_met_or_restarted_clocks_do_nothing(
    session: Session, bank: Institution, other_bank: Institution
) -> None:
    start = datetime.fromisoformat("2026-12-02T02:00:00+00:00")
    ticket = dispatched(session, bank, now=start)
    service.accept(session, ticket, actor=staff_of(bank), now=start + timedelta(hours=1))
    session.commit()
    late = (start + timedelta(days=10)).isoformat()
    assert run_outbox_job(_clock_row(session, ticket, "accept").id or 0, now=late).startswith(
        "not missed"
    )
    # Contact is missed (never started): that one escalates.
    contact = _clock_row(session, ticket, "contact")
    assert run_outbox_job(contact.id or 0, now=late) == "escalated"
    _reload(session, ticket)
    service.dispatch(
        session, ticket, actor=AGENT, institution_id=other_bank.id, now=start + timedelta(days=10)
    )
    session.commit()
    # The first dispatch's resolve timer belongs to a clock that was restarted.
    first_resolve = _clock_row(session, ticket, "resolve")
    assert run_outbox_job(first_resolve.id or 0, now=late).startswith("obsolete")
    _reload(session, ticket)
    assert ticket.state == TicketState.dispatched and ticket.institution_id == other_bank.id


def test_an_agents_sms_to_the_firm_is_sent_by_a_real_worker(
    session: Session, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    ticket = open_request(session, now=utcnow())
    service.ticket_service.send_sms(session, ticket, actor=AGENT, text="请带营业执照到窗口办理")
    session.commit()
    relay_outbox(session_factory_for(clean_db), redis_conn)
    work_burst(redis_conn)

    (row,) = _rows(session, ticket, "sms_firm")
    assert row.done_at is not None and row.result == "sms queued"
    messages = session.exec(
        select(OutboundMessage).where(OutboundMessage.purpose == "agent_sms")
    ).all()
    _done_reading(session)
    assert [(m.to_number, m.body) for m in messages] == [
        ("+8613800138000", "【中小企业服务热线】请带营业执照到窗口办理")
    ]
