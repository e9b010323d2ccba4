"""Read models for the pages: the work queue (sorted by SLA urgency, keyset-paginated), a
ticket's messages and the catalogue's names. Reads only; every change goes through the
services."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from kb.db import as_utc, utcnow
from kb.models import Category, District, Institution
from tickets.models import Channel, InboundMessage, Ticket, TicketKind, TicketState
from tickets.numbers import normalise
from tickets.phones import normalise_phone

S = TicketState
QUEUE_STATES = (
    S.new,
    S.dispatched,
    S.accepted,
    S.in_progress,
    S.reopened,
    S.escalated,
    S.declined,
)


@dataclass(frozen=True)
class QueueFilter:
    state: TicketState | None = None
    category: str | None = None
    district: str | None = None
    channel: Channel | None = None
    assigned: str | None = None  # "mine" or "unassigned"
    overdue: bool = False
    q: str = ""
    kind: TicketKind | None = TicketKind.service
    # Visibility, decided by the caller from the user's role.
    only_institution: int | None = None
    hide_complaints_about: str | None = None


@dataclass(frozen=True)
class QueueRow:
    ticket: Ticket
    due: datetime | None
    overdue: bool


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None


def _urgency() -> Any:
    """The moment by which something must happen: acceptance while not yet accepted, then
    resolution; a ticket with no clock yet (not dispatched) counts from its opening."""
    return func.coalesce(
        case((col(Ticket.accepted_at).is_(None), col(Ticket.accept_due_at)), else_=None),
        col(Ticket.resolve_due_at),
        col(Ticket.created_at),
    )


def encode_cursor(due: datetime, ticket_id: int) -> str:
    raw = f"{as_utc(due).isoformat()}|{ticket_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """ValueError for a cursor this module did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, _, ident = raw.partition("|")
        return as_utc(datetime.fromisoformat(due)), int(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc


def _search(query: Any, q: str) -> Any:
    q = q.strip()
    if not q:
        return query
    number = normalise(q)
    phone = normalise_phone(q) if any(ch.isdigit() for ch in q) else None
    terms = []
    if number:
        terms.append(col(Ticket.number) == number)
    if phone:
        terms.append(col(Ticket.caller_phone) == phone)
    if not terms:
        return query.where(col(Ticket.id) < 0)
    return query.where(or_(*terms))


def queue_page(
    session: Session,
    where: QueueFilter,
    *,
    actor_name: str,
    cursor: str | None = None,
    limit: int = 25,
    now: datetime | None = None,
) -> QueuePage:
    now = now or utcnow()
    urgency = _urgency().label("urgency")
    query = select(Ticket, urgency)
    if where.state is not None:
        query = query.where(col(Ticket.state) == where.state)
    else:
        query = query.where(col(Ticket.state).in_(QUEUE_STATES))
    if where.kind is not None:
        query = query.where(col(Ticket.kind) == where.kind)
    if where.category:
        query = query.where(col(Ticket.category) == where.category)
    if where.district:
        query = query.where(col(Ticket.district_code) == where.district)
    if where.channel is not None:
        query = query.where(col(Ticket.channel) == where.channel)
    if where.assigned == "mine":
        query = query.where(col(Ticket.assignee) == actor_name)
    elif where.assigned == "unassigned":
        query = query.where(col(Ticket.assignee).is_(None))
    if where.overdue:
        query = query.where(_urgency() < now, col(Ticket.accept_due_at).is_not(None))
    if where.only_institution is not None:
        query = query.where(
            col(Ticket.institution_id) == where.only_institution,
            col(Ticket.kind) == TicketKind.service,
        )
    if where.hide_complaints_about is not None:
        agent = where.hide_complaints_about
        complained = aliased(Ticket)
        of_agent = select(col(complained.id)).where(col(complained.assignee) == agent)
        query = query.where(
            or_(
                col(Ticket.kind) == TicketKind.service,
                and_(
                    func.coalesce(Ticket.subject_agent, "") != agent,
                    or_(
                        col(Ticket.related_ticket_id).is_(None),
                        col(Ticket.related_ticket_id).not_in(of_agent),
                    ),
                ),
            )
        )
    query = _search(query, where.q)
    if cursor:
        due, after = decode_cursor(cursor)
        query = query.where(or_(_urgency() > due, and_(_urgency() == due, col(Ticket.id) > after)))
    found = session.exec(query.order_by(_urgency(), col(Ticket.id)).limit(limit + 1)).all()
    rows = []
    for ticket, due_value in found[:limit]:
        due = _as_datetime(due_value)
        clock_set = ticket.accept_due_at is not None
        rows.append(QueueRow(ticket, due if clock_set else None, clock_set and due < now))
    next_cursor = None
    if len(found) > limit and rows:
        last = found[limit - 1]
        assert last[0].id is not None
        next_cursor = encode_cursor(_as_datetime(last[1]), last[0].id)
    return QueuePage(rows, next_cursor)


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value)))


def messages_of(session: Session, ticket_id: int) -> Sequence[InboundMessage]:
    return session.exec(
        select(InboundMessage)
        .where(InboundMessage.ticket_id == ticket_id)
        .order_by(col(InboundMessage.received_at))
    ).all()


@dataclass(frozen=True)
class Names:
    categories: dict[str, Category]
    districts: dict[str, District]

    def category(self, key: str | None, lang: str) -> str:
        found = self.categories.get(key or "")
        return (found.name_zh if lang == "zh" else found.name_en) if found else (key or "")

    def district(self, code: str | None, lang: str) -> str:
        found = self.districts.get(code or "")
        return (found.name_zh if lang == "zh" else found.name_en) if found else (code or "")


def names(session: Session) -> Names:
    return Names(
        {c.key: c for c in session.exec(select(Category)).all()},
        {d.code: d for d in session.exec(select(District)).all()},
    )


def institution_names(session: Session, ids: set[int]) -> dict[int, Institution]:
    if not ids:
        return {}
    found = session.exec(select(Institution).where(col(Institution.id).in_(ids))).all()
    return {i.id: i for i in found if i.id is not None}


def related_numbers(session: Session, tickets: Sequence[Ticket]) -> dict[int, Ticket]:
    """The tickets that complaints are about, by id."""
    ids = {t.related_ticket_id for t in tickets if t.related_ticket_id}
    if not ids:
        return {}
    found = session.exec(select(Ticket).where(col(Ticket.id).in_(ids))).all()
    return {t.id: t for t in found if t.id is not None}


def tickets_between(session: Session, since: datetime, until: datetime) -> Sequence[Ticket]:
    return session.exec(
        select(Ticket)
        .where(col(Ticket.created_at) >= since, col(Ticket.created_at) < until)
        .order_by(col(Ticket.id))
    ).all()
