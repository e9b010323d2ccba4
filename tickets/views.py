"""Read models of tickets for lists and exports."""

from __future__ import annotations

from sqlmodel import Session

from kb.repository import catalogue_repository
from tickets.phones import mask_phone
from tickets.repository import ticket_repository
from tickets.schemas import TicketSummary


def ticket_summaries(session: Session, *, limit: int = 50) -> list[TicketSummary]:
    tickets = ticket_repository.recent(session, limit=limit)
    names: dict[int, str] = {}
    for ticket in tickets:
        if ticket.institution_id is not None and ticket.institution_id not in names:
            found = catalogue_repository.institution(session, ticket.institution_id)
            names[ticket.institution_id] = found.name_zh if found else ""
    return [
        TicketSummary(
            number=t.number,
            kind=t.kind.value,
            state=t.state.value,
            category=t.category,
            district=t.district_code,
            institution=names.get(t.institution_id) if t.institution_id else None,
            institution_id=t.institution_id,
            channel=t.channel.value,
            caller_phone=mask_phone(t.caller_phone),
            created_at=t.created_at,
        )
        for t in tickets
    ]
