"""Jobs of the dialogues (run by ``hotline worker``; arguments are JSON).

Sending an SMS through Twilio's REST API takes longer than a webhook may, so a call that opens a
ticket writes the confirmation into the tickets outbox (:func:`queue_ticket_sms`), in the
transaction that opens the ticket: it is relayed into RQ once that commits, so a Redis outage at
that moment delays the text but never loses it, and the job carries the request id of the call's
webhook into its log lines like every outbox job. The job (:func:`ticket_sms_job`, the outbox
task ``ticket_sms``) is idempotent: a confirmation already sent for a ticket and purpose is not
sent again, whichever delivery of the job runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from ivr_flows import sms, store
from ivr_flows.notices import ticket_sms
from kb.db import session_scope
from tickets import outbox, tasks, telephony
from tickets.models import OutboundMessage, OutboxMessage, Ticket
from tickets.phones import mask_phone
from tickets.repository import ticket_repository
from tickets.service import JobOutcome

log = logging.getLogger(__name__)

TICKET_SMS_TASK = "ticket_sms"


def queue_ticket_sms(session: Session, ticket_id: int, purpose: str) -> None:
    """Write the ticket's SMS (``voice_confirmation``, ``complaint_ack``) into the outbox, in the
    caller's transaction; once per ticket and purpose, however many times a call asks."""
    queued = session.exec(
        select(OutboxMessage.payload).where(
            col(OutboxMessage.ticket_id) == ticket_id, OutboxMessage.task == TICKET_SMS_TASK
        )
    ).all()
    if any((payload or {}).get("purpose") == purpose for payload in queued):
        return
    outbox.add(
        session,
        TICKET_SMS_TASK,
        {"ticket_id": ticket_id, "purpose": purpose},
        ticket_id=ticket_id,
    )


def _send_ticket_sms(session: Session, ticket_id: int, purpose: str) -> str:
    """The confirmation (or acknowledgement) of a ticket opened by phone, to the caller.
    Through the telephony port, which honours the firm's SMS opt-out."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not ticket.caller_phone:
        return "obsolete: no ticket or no phone"
    sent = session.exec(
        select(OutboundMessage.id).where(
            OutboundMessage.ticket_id == ticket_id, OutboundMessage.purpose == purpose
        )
    ).first()
    if sent is not None:
        return "already sent"
    firm = ticket_repository.firm_by_phone(session, ticket.caller_phone)
    message = telephony.current().sms_firm(
        session,
        firm,
        to=ticket.caller_phone,
        body=ticket_sms(session, ticket, purpose),
        purpose=purpose,
        ticket_id=ticket.id,
    )
    log.info(
        "ticket %s %s SMS to %s: %s",
        ticket_id,
        purpose,
        mask_phone(ticket.caller_phone),
        message.status,
    )
    return message.status


def ticket_sms_job(session: Session, payload: dict[str, Any], _now: datetime) -> JobOutcome:
    """The outbox task ``ticket_sms``: runs in the job's transaction, which also marks the
    outbox row done."""
    return JobOutcome(_send_ticket_sms(session, int(payload["ticket_id"]), str(payload["purpose"])))


def send_ticket_sms(ticket_id: int, purpose: str) -> str:
    """The same SMS as a plain RQ job: jobs queued under this name before the confirmation went
    through the outbox still run after an upgrade."""
    with session_scope() as session:
        return _send_ticket_sms(session, ticket_id, purpose)


def register() -> None:
    """Make the outbox's job runner know the dialogues' tasks. Called on import and by the
    start-up wiring of every process kind, so a worker runs them whatever it imported."""
    tasks.HANDLERS.setdefault(TICKET_SMS_TASK, ticket_sms_job)
    tasks.HANDLERS.setdefault(sms.ANSWER_TASK, sms.answer_text_job)


register()


def purge_dialogue_state() -> int:
    """Forget expired conversations and old webhook deliveries."""
    with session_scope() as session:
        return store.purge_expired(session)
