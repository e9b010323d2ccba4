"""Read models of tickets for lists, details and exports."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from kb.db import as_utc, utcnow
from kb.repository import catalogue_repository
from tickets import lifecycle
from tickets.errors import TicketError
from tickets.models import Role, Ticket
from tickets.numbers import normalise
from tickets.phones import mask_phone, normalise_phone
from tickets.repository import (
    TicketFilter,
    find_institutions,
    possible_originals,
    ticket_repository,
)
from tickets.schemas import (
    ClockPublic,
    EventPublic,
    RoutingPublic,
    TicketDetail,
    TicketPage,
    TicketSummary,
)
from tickets.service import Actor, ticket_service
from tickets.sla import read_clock


def _names(session: Session, tickets: Sequence[Ticket]) -> dict[int, str]:
    names: dict[int, str] = {}
    for ticket in tickets:
        if ticket.institution_id is not None and ticket.institution_id not in names:
            found = catalogue_repository.institution(session, ticket.institution_id)
            names[ticket.institution_id] = found.name_zh if found else ""
    return names


def _summary(ticket: Ticket, names: dict[int, str]) -> TicketSummary:
    return TicketSummary(
        number=ticket.number,
        kind=ticket.kind.value,
        state=ticket.state.value,
        category=ticket.category,
        district=ticket.district_code,
        institution=names.get(ticket.institution_id) if ticket.institution_id else None,
        institution_id=ticket.institution_id,
        channel=ticket.channel.value,
        caller_phone=mask_phone(ticket.caller_phone),
        created_at=ticket.created_at,
        version=ticket.version,
    )


def ticket_summaries(session: Session, *, limit: int = 50) -> list[TicketSummary]:
    tickets = ticket_repository.recent(session, limit=limit)
    names = _names(session, tickets)
    return [_summary(t, names) for t in tickets]


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a page starts below; ValueError for a cursor this module did not make."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    if not raw.startswith("t"):
        raise ValueError("bad cursor")
    return int(raw[1:])


def visibility(actor: Actor) -> TicketFilter:
    if actor.role == Role.institution:
        return TicketFilter(only_institution=actor.institution_id)
    if actor.role == Role.agent:
        return TicketFilter(hide_complaints_about=actor.name)
    return TicketFilter()


def ticket_page(
    session: Session, where: TicketFilter, *, cursor: str | None, limit: int
) -> TicketPage:
    after = decode_cursor(cursor) if cursor else None
    tickets = ticket_repository.page(session, where, after_id=after, limit=limit + 1)
    more = len(tickets) > limit
    tickets = tickets[:limit]
    names = _names(session, tickets)
    last_id = tickets[-1].id if tickets else None
    return TicketPage(
        items=[_summary(t, names) for t in tickets],
        next_cursor=encode_cursor(last_id) if more and last_id is not None else None,
    )


def ticket_detail(
    session: Session, ticket: Ticket, *, actor: Actor | None = None, now: datetime | None = None
) -> TicketDetail:
    assert ticket.id is not None
    now = now or utcnow()
    summary = _summary(ticket, _names(session, [ticket]))
    related = (
        ticket_repository.by_id(session, ticket.related_ticket_id)
        if ticket.related_ticket_id
        else None
    )
    duplicate = (
        ticket_repository.by_id(session, ticket.duplicate_of_id) if ticket.duplicate_of_id else None
    )
    record = ticket_repository.latest_routing(session, ticket.id)
    calendar = ticket_service.calendar

    def utc(value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    clocks = [
        read_clock(calendar, name, utc(due), utc(done), now)
        for name, due, done in (
            ("accept", ticket.accept_due_at, ticket.accepted_at),
            ("contact", ticket.contact_due_at, ticket.first_contact_at),
            ("resolve", ticket.resolve_due_at, ticket.resolved_at),
        )
    ]
    return TicketDetail(
        **summary.model_dump(),
        summary=ticket.summary,
        language=ticket.language,
        assignee=ticket.assignee,
        related_ticket=related.number if related else None,
        duplicate_of=duplicate.number if duplicate else None,
        closure=ticket.closure.value if ticket.closure else None,
        escalation_level=ticket.escalation_level,
        reopen_count=ticket.reopen_count,
        revisit_outcome=ticket.revisit_outcome,
        satisfaction=ticket.satisfaction,
        actions=allowed_actions(session, ticket, actor) if actor else [],
        clocks=[ClockPublic(**clock.__dict__) for clock in clocks],
        routing=RoutingPublic.model_validate(record, from_attributes=True) if record else None,
        events=[
            EventPublic.model_validate(e, from_attributes=True)
            for e in ticket_repository.events(session, ticket.id)
        ],
    )


def allowed_actions(session: Session, ticket: Ticket, actor: Actor) -> list[str]:
    """What ``actor`` may do to the ticket now (for the UI to offer)."""
    found = []
    for action in lifecycle.actions_for(ticket.kind):
        if action not in lifecycle.PUBLIC_ACTIONS:
            continue
        try:
            ticket_service.check(session, ticket, action, actor=actor)
        except TicketError:
            continue
        if action == "release" and actor.role == Role.agent and ticket.assignee != actor.name:
            continue  # an agent gives up only their own claim
        found.append(action)
    return found


@dataclass(frozen=True)
class DispatchChoice:
    """An institution the ticket may be sent to: routing's choice and runners-up (with their
    score), or one an agent searched for by name."""

    institution_id: int
    name_zh: str
    name_en: str
    tier: str
    score: float | None = None
    searched: bool = False


def dispatch_choices(session: Session, ticket: Ticket, *, find: str = "") -> list[DispatchChoice]:
    """Routing's current choice first, then its runners-up (those that declined the ticket
    left out), then the active institutions whose name or code contains ``find``."""
    choices: list[DispatchChoice] = []
    seen: set[int] = set()
    decision = ticket_service.suggest(session, ticket)
    if decision is not None:
        ranked = [
            (
                decision.institution_id,
                decision.name_zh,
                decision.name_en,
                decision.tier,
                decision.score,
            ),
            *(
                (c.institution_id, c.name_zh, c.name_en, c.tier, c.score)
                for c in decision.candidates
            ),
        ]
        for institution_id, name_zh, name_en, tier, score in ranked:
            if institution_id in seen:
                continue
            seen.add(institution_id)
            choices.append(DispatchChoice(institution_id, name_zh, name_en, tier, score))
    for found in find_institutions(session, find[:64]):
        if found.id is None or found.id in seen:
            continue
        seen.add(found.id)
        choices.append(
            DispatchChoice(found.id, found.name_zh, found.name_en, found.tier.value, searched=True)
        )
    return choices


def duplicate_choices(session: Session, ticket: Ticket, *, find: str = "") -> Sequence[Ticket]:
    """Tickets the given one may duplicate: the one numbered ``find``, or those from the phone
    number ``find``, or (no search) the other tickets of the same caller."""
    wanted = find.strip()[:64]
    if not wanted:
        return possible_originals(session, ticket)
    number = normalise(wanted)
    if number:
        return possible_originals(session, ticket, number=number)
    phone = normalise_phone(wanted)
    if phone:
        return possible_originals(session, ticket, phone=phone)
    return []
