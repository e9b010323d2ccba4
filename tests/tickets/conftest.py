"""Helpers for the case lifecycle tests: actors of every role, tickets in a chosen state, and a
fixed clock (times are passed as ``now``; nothing sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from kb.models import Institution, InstitutionCategory, Tier
from tickets.models import Channel, Role, Ticket, TicketEvent, TicketKind
from tickets.service import Actor, ticket_service

SHANGHAI = ZoneInfo("Asia/Shanghai")
AGENT = Actor("user:agent-li", Role.agent)
OTHER_AGENT = Actor("user:agent-wang", Role.agent)
SUPERVISOR = Actor("user:sup-zhao", Role.supervisor)
ADMIN = Actor("user:admin", Role.admin)
SYSTEM = Actor("system:test", Role.system)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time, as the UTC instant the services take."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# Wednesday 2 December 2026, 10:00 in Chongqing: an ordinary working morning.
T0 = local(2026, 12, 2, 10)


def service_institutions(
    session: Session, category: str, district: str | None = None
) -> list[Institution]:
    query = (
        select(Institution)
        .join(InstitutionCategory, col(InstitutionCategory.institution_id) == col(Institution.id))
        .where(
            InstitutionCategory.category_key == category,
            Institution.tier == Tier.institution,
            col(Institution.active).is_(True),
        )
        .order_by(col(Institution.id))
    )
    if district is not None:
        query = query.where(Institution.district_code == district)
    return list(session.exec(query).all())


def staff_of(institution: Institution) -> Actor:
    return Actor(f"user:staff-{institution.code}", Role.institution, institution.id)


def open_request(
    session: Session,
    *,
    summary: str = "我们公司在渝北区，想申请一笔贷款扩大生产",
    category: str | None = "financing",
    district: str | None = "yubei",
    phone: str = "+8613800138000",
    now: datetime = T0,
    kind: TicketKind = TicketKind.service,
    related: Ticket | None = None,
    subject_agent: str | None = None,
) -> Ticket:
    firm = ticket_service.find_or_create_firm(session, phone, language="zh")
    return ticket_service.open_ticket(
        session,
        actor=AGENT,
        channel=Channel.sms,
        caller_phone=phone,
        summary=summary,
        language="zh",
        kind=kind,
        category=category,
        district_code=district,
        firm=firm,
        related_ticket=related,
        subject_agent=subject_agent,
        now=now,
    )


def dispatched(
    session: Session, institution: Institution, *, now: datetime = T0, **kw: object
) -> Ticket:
    ticket = open_request(session, now=now, **kw)  # type: ignore[arg-type]
    ticket_service.dispatch(session, ticket, actor=AGENT, institution_id=institution.id, now=now)
    return ticket


@pytest.fixture
def bank(session: Session) -> Institution:
    """A financing institution in Yubei."""
    return service_institutions(session, "financing")[0]


@pytest.fixture
def other_bank(session: Session) -> Institution:
    return service_institutions(session, "financing")[1]


def events_of(session: Session, ticket: Ticket) -> list[TicketEvent]:
    """The ticket's timeline, oldest first."""
    return list(
        session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(col(TicketEvent.id))
        ).all()
    )
