"""What the dialogues do to cases, over ``tickets`` and ``routing``: open, route, note, link."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

import routing
from kb.hours import HoursError, parse_hours
from kb.models import Institution
from kb.repository import catalogue_repository
from tickets.models import Channel, Firm, Ticket, TicketEvent, TicketKind
from tickets.service import Actor, ticket_service

VOICE_ACTOR = Actor("system:voice")
MONITOR_ACTOR = Actor("system:monitor")
REVISIT_ACTOR = Actor("system:revisit")


def firm_for(session: Session, phone: str, language: str) -> Firm:
    return ticket_service.find_or_create_firm(session, phone, language=language)


def open_case(
    session: Session,
    *,
    actor: Actor,
    channel: Channel,
    phone: str,
    language: str,
    summary: str,
    now: datetime,
    kind: TicketKind = TicketKind.service,
    category: str | None = None,
    district_code: str | None = None,
    cluster_code: str | None = None,
    classification: dict[str, Any] | None = None,
    related_ticket_id: int | None = None,
) -> tuple[Ticket, bool]:
    """Open a case, or find the open one it repeats (tickets' intake links follow-ups).
    Returns the ticket and whether it is an earlier, open one."""
    firm = firm_for(session, phone, language) if phone else None
    if firm is not None and district_code and firm.district_code != district_code:
        # What the caller just told us is newer than the profile.
        firm.district_code = district_code
        session.add(firm)
    related = session.get(Ticket, related_ticket_id) if related_ticket_id else None
    if related is not None or not category:
        # A complaint about a named ticket, or a case with nothing to compare yet (no
        # category): a new ticket, as intake could not link it anyway.
        ticket = ticket_service.open_ticket(
            session,
            actor=actor,
            channel=channel,
            caller_phone=phone,
            summary=summary[:2000],
            language=language,
            kind=kind,
            category=category,
            district_code=district_code,
            cluster_code=cluster_code,
            classification=classification or {},
            firm=firm,
            related_ticket=related,
            now=now,
        )
        return ticket, False
    intake = ticket_service.intake(
        session,
        actor=actor,
        channel=channel,
        caller_phone=phone,
        summary=summary[:2000],
        language=language,
        kind=kind,
        category=category,
        district_code=district_code,
        cluster_code=cluster_code,
        classification=classification or {},
        firm=firm,
        now=now,
    )
    return intake.ticket, intake.follow_up


def route_case(
    session: Session,
    ticket: Ticket,
    *,
    actor: Actor,
    category: str,
    district_code: str | None,
    cluster_code: str | None,
    now: datetime,
) -> Institution:
    """Dispatch to whoever routing chooses among those open ``now``, so that the caller can be
    put through; when nobody near is open (at night), to the nearest institution regardless
    of hours, which serves the case next morning, rather than everything to the municipal
    platform, the last resort."""
    decision = routing.match(
        session, category=category, place=district_code, cluster=cluster_code, at=now
    )
    if decision.tier == "municipal":
        untimed = routing.match(
            session, category=category, place=district_code, cluster=cluster_code
        )
        if untimed.tier != "municipal":
            decision = untimed
    ticket_service.dispatch(session, ticket, actor=actor, decision=decision, now=now)
    institution = catalogue_repository.institution(session, decision.institution_id)
    assert institution is not None
    return institution


def note(
    session: Session,
    ticket_id: int,
    *,
    actor: Actor,
    action: str,
    data: dict[str, Any],
    text: str = "",
) -> None:
    """An event on the ticket's timeline that changes no state (a voicemail, a transfer)."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return
    session.add(
        TicketEvent(
            ticket_id=ticket_id,
            actor=actor.name,
            action=action,
            from_state=ticket.state.value,
            to_state=ticket.state.value,
            note=text,
            data=data,
        )
    )
    session.flush()


def is_open(institution: Institution, now: datetime, zone: Any) -> bool:
    try:
        return parse_hours(institution.hours).is_open(now.astimezone(zone))
    except HoursError:
        return False


def names(institution: Institution) -> dict[str, str]:
    return {"zh": institution.name_zh, "en": institution.name_en}
