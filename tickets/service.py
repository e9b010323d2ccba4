"""Ticket operations. Each state change is one named function taking the acting party, and
writes its event in the same transaction; the caller's unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from kb.db import utcnow
from kb.repository import catalogue_repository
from routing.decision import RoutingDecision
from tickets.models import (
    Channel,
    Firm,
    RoutingRecord,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketState,
)
from tickets.numbers import format_number
from tickets.repository import TicketRepository, ticket_repository


class TicketError(Exception):
    """A domain rule refused the operation; the message says which."""


class IllegalTransition(TicketError):
    def __init__(self, ticket: Ticket, action: str) -> None:
        self.ticket = ticket
        super().__init__(f"cannot {action} ticket {ticket.number} in state {ticket.state}")


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (``user:alice``, with a role) or a part of the system (``system:sms``)."""

    name: str
    role: str = "system"


class TicketService:
    def __init__(self, repository: TicketRepository, timezone: str = "Asia/Shanghai") -> None:
        self.repository = repository
        self.zone = ZoneInfo(timezone)

    def configure(self, *, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def _event(
        self,
        session: Session,
        ticket: Ticket,
        actor: Actor,
        action: str,
        *,
        from_state: str | None,
        note: str = "",
        data: dict[str, Any] | None = None,
    ) -> TicketEvent:
        assert ticket.id is not None
        event = TicketEvent(
            ticket_id=ticket.id,
            actor=actor.name,
            action=action,
            from_state=from_state,
            to_state=ticket.state.value,
            note=note,
            data=data or {},
        )
        session.add(event)
        return event

    def find_or_create_firm(self, session: Session, phone: str, *, language: str) -> Firm:
        firm = self.repository.firm_by_phone(session, phone)
        if firm is None:
            firm = Firm(phone=phone, language=language)
            session.add(firm)
            session.flush()
        return firm

    def open_ticket(
        self,
        session: Session,
        *,
        actor: Actor,
        channel: Channel,
        caller_phone: str,
        summary: str,
        language: str,
        kind: TicketKind = TicketKind.service,
        category: str | None = None,
        district_code: str | None = None,
        cluster_code: str | None = None,
        classification: dict[str, Any] | None = None,
        firm: Firm | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        now = now or utcnow()
        day = now.astimezone(self.zone).strftime("%y%m%d")
        number = format_number(day, self.repository.next_sequence(session, day))
        ticket = Ticket(
            number=number,
            kind=kind,
            state=TicketState.new,
            channel=channel,
            caller_phone=caller_phone,
            firm_id=firm.id if firm else None,
            summary=summary,
            language=language,
            category=category,
            district_code=district_code,
            cluster_code=cluster_code,
            classification=classification or {},
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        self._event(
            session,
            ticket,
            actor,
            "open",
            from_state=None,
            data={"channel": channel.value, "category": category, "district": district_code},
        )
        return ticket

    def dispatch(
        self, session: Session, ticket: Ticket, *, actor: Actor, decision: RoutingDecision
    ) -> Ticket:
        """Send the case to the chosen institution and keep the decision with its reasons."""
        if ticket.state not in (TicketState.new, TicketState.declined, TicketState.reopened):
            raise IllegalTransition(ticket, "dispatch")
        assert ticket.id is not None
        previous = ticket.state
        if ticket.institution_id is not None:
            catalogue_repository.adjust_open_cases(session, ticket.institution_id, -1)
        ticket.institution_id = decision.institution_id
        ticket.state = TicketState.dispatched
        ticket.updated_at = utcnow()
        ticket.version += 1
        session.add(ticket)
        catalogue_repository.adjust_open_cases(session, decision.institution_id, +1)
        record = decision.to_dict()
        session.add(
            RoutingRecord(
                ticket_id=ticket.id,
                institution_id=decision.institution_id,
                tier=decision.tier,
                distance_km=decision.distance_km,
                score=decision.score,
                inputs=record["inputs"],
                reasons=record["reasons"],
                candidates=record["candidates"],
            )
        )
        self._event(
            session,
            ticket,
            actor,
            "dispatch",
            from_state=previous.value,
            data={"institution_id": decision.institution_id, "tier": decision.tier},
        )
        session.flush()
        return ticket


ticket_service = TicketService(ticket_repository)
