"""Read models for the pages: the work queue (sorted by SLA urgency, keyset-paginated), a
ticket's messages and the catalogue's names. Reads only; every change goes through the
services."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, and_, bindparam, exists, func, literal, or_, tuple_
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, col, select

from kb.db import as_utc, utcnow
from kb.models import Category, District, Institution
from tickets.models import (
    QUEUE_STATES,
    Channel,
    InboundMessage,
    Ticket,
    TicketKind,
    TicketState,
    queue_urgency,
)
from tickets.numbers import normalise
from tickets.phones import normalise_phone


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
    """The sort key, exactly the expression the queue's indexes hold (see the model)."""
    return queue_urgency()


def _in_queue_states() -> Any:
    """The default view's states, inlined in the SQL (not bound): the partial index
    ``ix_ticket_queue_open`` is defined with this list, and PostgreSQL uses a partial index only
    when it can prove the query's condition implies the index's, which it cannot with
    parameters once a prepared statement switches to a generic plan."""
    states: BindParameter[list[str]] = bindparam(
        "queue_states", [s.value for s in QUEUE_STATES], expanding=True, literal_execute=True
    )
    return col(Ticket.state).in_(states)


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
        query = query.where(_in_queue_states())
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
        # NOT EXISTS on the primary key, not NOT IN (every ticket of the agent): one lookup per
        # complaint instead of a scan of the whole table for the agent's tickets.
        about_agent = exists().where(
            col(complained.id) == col(Ticket.related_ticket_id),
            col(complained.assignee) == agent,
        )
        query = query.where(
            or_(
                col(Ticket.kind) == TicketKind.service,
                and_(func.coalesce(Ticket.subject_agent, "") != agent, ~about_agent),
            )
        )
    query = _search(query, where.q)
    if cursor:
        due, after = decode_cursor(cursor)
        # A row comparison, which the index range starts from (an OR of the two cases would be
        # read from the first row of the index on and filtered: deeper pages, slower pages).
        query = query.where(
            tuple_(_urgency(), col(Ticket.id))
            > tuple_(literal(due, DateTime(timezone=True)), after)
        )
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
