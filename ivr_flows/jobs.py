"""RQ jobs of the dialogues (run by ``hotline worker``; arguments are JSON).

Sending an SMS through Twilio's REST API takes longer than a webhook may, so the dialogues queue
it here after their transaction commits. Each job is idempotent: a confirmation already sent for
a ticket and purpose is not sent again, whichever delivery of the job runs.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from ivr_flows import store
from ivr_flows.notices import ticket_sms
from kb.db import session_scope
from tickets import telephony
from tickets.models import OutboundMessage, Ticket
from tickets.phones import mask_phone
from tickets.repository import ticket_repository

log = logging.getLogger(__name__)


def send_ticket_sms(ticket_id: int, purpose: str) -> str:
    """The confirmation (or acknowledgement) of a ticket opened by phone, to the caller.
    Through the telephony port, which honours the firm's SMS opt-out."""
    with session_scope() as session:
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
        status = message.status
    log.info(
        "ticket %s %s SMS to %s: %s", ticket_id, purpose, mask_phone(ticket.caller_phone), status
    )
    return status


def purge_dialogue_state() -> int:
    """Forget expired conversations and old webhook deliveries."""
    with session_scope() as session:
        return store.purge_expired(session)
