"""RQ jobs. Every job is one outbox row: ``run_outbox_job(outbox_id)`` (JSON-serialisable args).

The job locks its outbox row, does nothing if the row is already done (so a job delivered twice
changes nothing the second time), checks that what it is about still holds (a timer for an
accept that happened is obsolete), acts through the service, and marks the row done, all in one
transaction. Follow-up jobs it writes are relayed right after its commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rq import get_current_job
from sqlmodel import Session

from kb.db import as_utc, get_engine, session_scope, utcnow
from kb.repository import catalogue_repository
from tickets import outbox, telephony
from tickets.models import OutboxMessage, TicketState
from tickets.repository import ticket_repository
from tickets.service import SYSTEM, JobOutcome, ticket_service

log = logging.getLogger(__name__)

Handler = Callable[[Session, dict[str, Any], datetime], JobOutcome]

# Which states mean the clock's milestone has not been reached yet.
CLOCK_OPEN_STATES = {
    "accept": {TicketState.dispatched},
    "contact": {TicketState.dispatched, TicketState.accepted},
    "resolve": {TicketState.dispatched, TicketState.accepted, TicketState.in_progress},
}
DUE_COLUMNS = {"accept": "accept_due_at", "contact": "contact_due_at", "resolve": "resolve_due_at"}


def sla_check(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    """At a clock's due time: escalate when its milestone was missed."""
    # Locked, so two checks of one ticket (two clocks due together, two workers) take turns
    # instead of racing to the same version: the second sees the escalation and stands down.
    ticket = ticket_repository.by_id(session, int(payload["ticket_id"]), for_update=True)
    clock = str(payload["clock"])
    if ticket is None:
        return JobOutcome("obsolete: no such ticket")
    due = getattr(ticket, DUE_COLUMNS[clock])
    if due is None or as_utc(due) != datetime.fromisoformat(payload["due"]):
        return JobOutcome("obsolete: the clock was restarted")
    if ticket.state not in CLOCK_OPEN_STATES[clock]:
        return JobOutcome(f"not missed: ticket is {ticket.state}")
    if now < as_utc(due):
        # Delivered early (a clock skew between machines): not missed yet; try again at due.
        outbox.add(
            session, "sla_check", payload, run_at=as_utc(due), ticket_id=ticket.id, queue="high"
        )
        return JobOutcome("early: rescheduled")
    ticket_service.escalate(
        session,
        ticket,
        actor=SYSTEM,
        reason=f"sla_{clock}_missed",
        note=f"SLA missed: {clock} was due {as_utc(due).isoformat()}",
        now=now,
    )
    return JobOutcome("escalated", {"clock": clock})


def escalation_follow_up(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    """Still escalated, and nobody acted since: tell the municipal platform."""
    ticket = ticket_repository.by_id(session, int(payload["ticket_id"]))
    if ticket is None or ticket.state != TicketState.escalated or ticket.escalation_level != 1:
        return JobOutcome("obsolete: handled")
    if ticket.escalated_at is None or as_utc(ticket.escalated_at) != datetime.fromisoformat(
        payload["escalated_at"]
    ):
        return JobOutcome("obsolete: escalated again since")
    ticket_service.escalate_municipal(session, ticket, actor=SYSTEM, now=now)
    return JobOutcome("municipal platform notified")


def notify_institution(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    institution = catalogue_repository.institution(session, int(payload["institution_id"]))
    if institution is None:
        return JobOutcome("obsolete: no such institution")
    message = telephony.current().sms_institution(
        session,
        institution_id=int(payload["institution_id"]),
        to=institution.phone,
        body=str(payload["text"]),
        purpose=str(payload.get("purpose", "notice")),
        ticket_id=payload.get("ticket_id"),
    )
    return JobOutcome("sent", {"message_id": message.id})


def revisit_call(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    row = ticket_repository.revisit(session, int(payload["revisit_id"]))
    if row is None:
        return JobOutcome("obsolete: no such revisit")
    return ticket_service.place_revisit_call(session, row, attempt=int(payload["attempt"]), now=now)


def revisit_answer_timeout(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    """No outcome was reported for a call in time (a lost status callback): unanswered."""
    row = ticket_repository.revisit(session, int(payload["revisit_id"]))
    if row is None or row.completed_at is not None:
        return JobOutcome("obsolete: revisit completed")
    attempt = int(payload["attempt"])
    if row.attempts != attempt or row.unanswered >= attempt:
        return JobOutcome("obsolete: attempt already settled")
    ticket = ticket_repository.by_id(session, row.ticket_id)
    assert ticket is not None
    ticket_service.revisit_no_answer(session, ticket, actor=SYSTEM, now=now, attempt=attempt)
    return JobOutcome("recorded as unanswered", {"attempt": attempt})


def revisit_survey_sms(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    row = ticket_repository.revisit(session, int(payload["revisit_id"]))
    if row is None or row.completed_at is not None or row.survey_sent_at is not None:
        return JobOutcome("obsolete")
    ticket = ticket_repository.by_id(session, row.ticket_id)
    assert ticket is not None
    firm = ticket_repository.firm(session, ticket.firm_id)
    link = ticket_service.survey_link(row)
    if ticket.language == "en":
        body = f"SME hotline: was your request {ticket.number} served? Tell us here: {link}"
    else:
        body = f"【中小企业服务热线】您的工单{ticket.number}已办结，请点击评价：{link}"
    message = telephony.current().sms_firm(
        session,
        firm,
        to=ticket.caller_phone,
        body=body,
        purpose="revisit_survey",
        ticket_id=ticket.id,
    )
    row.survey_sent_at = now
    session.add(row)
    return JobOutcome(f"survey {message.status}", {"message_id": message.id})


def revisit_survey_expired(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    row = ticket_repository.revisit(session, int(payload["revisit_id"]))
    if row is None or row.completed_at is not None:
        return JobOutcome("obsolete: answered")
    ticket = ticket_repository.by_id(session, row.ticket_id)
    assert ticket is not None
    if ticket.state != TicketState.revisit_pending:
        return JobOutcome("obsolete: case moved on")
    ticket_service.close_unreachable(
        session, ticket, actor=SYSTEM, now=now, note="no answer to calls nor to the survey"
    )
    return JobOutcome("closed unreachable")


HANDLERS: dict[str, Handler] = {
    "sla_check": sla_check,
    "escalation_follow_up": escalation_follow_up,
    "notify_institution": notify_institution,
    "revisit_call": revisit_call,
    "revisit_answer_timeout": revisit_answer_timeout,
    "revisit_survey_sms": revisit_survey_sms,
    "revisit_survey_expired": revisit_survey_expired,
    "sms_firm": ticket_service.deliver_sms,
}


def run_outbox_job(outbox_id: int, now: str | None = None) -> str:
    """The one RQ entry point. ``now`` (ISO) is for tests that run a job at a chosen time."""
    moment = datetime.fromisoformat(now) if now else utcnow()
    with session_scope() as session:
        row = session.get(OutboxMessage, outbox_id, with_for_update=True)
        if row is None:
            return "no such outbox row"
        if row.done_at is not None:
            return f"already done: {row.result}"
        handler = HANDLERS.get(row.task)
        if handler is None:
            raise LookupError(f"outbox row {outbox_id}: unknown task {row.task!r}")
        outcome = handler(session, dict(row.payload), moment)
        row.done_at = utcnow()
        row.result = outcome.result[:200]
        session.add(row)
    log.info("outbox %s %s: %s", outbox_id, row.task, outcome.result)
    _relay_follow_ups()
    return outcome.result


def _relay_follow_ups() -> None:
    job = get_current_job()
    if job is None:
        return
    try:
        outbox.relay_outbox(outbox.session_factory_for(get_engine()), job.connection)
    except Exception:  # noqa: BLE001 - the periodic relay picks up whatever this one missed
        log.exception("relay after job failed")
