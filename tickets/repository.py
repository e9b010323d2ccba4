"""Every ticket query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from kb.db import execute_alone
from kb.models import Institution, Tier
from tickets.models import (
    Firm,
    InboundMessage,
    OutboundCall,
    OutboundMessage,
    Revisit,
    RoutingRecord,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketKind,
    TicketState,
)

ENDED_STATES = (TicketState.closed, TicketState.cancelled)


@dataclass(frozen=True)
class TicketFilter:
    """What a list may be narrowed to, and what the reader may see at all."""

    state: TicketState | None = None
    category: str | None = None
    district: str | None = None
    phone: str | None = None
    kind: TicketKind | None = None
    # Visibility: institution staff see only their institution's service tickets; an agent does
    # not see complaints about themselves.
    only_institution: int | None = None
    hide_complaints_about: str | None = None


class TicketRepository:
    def next_sequence(self, session: Session, day: str) -> int:
        """The next number of the day; concurrent openings never share a number.

        On PostgreSQL the number is taken in a transaction of its own, one statement long
        (:func:`kb.db.execute_alone`: autocommit, on connections of its own, so a request
        holding one of the pool's never waits for another to take a number): taken
        inside the ticket's transaction, the day's counter row would stay locked until that
        transaction commits, and every ticket opening in the city would wait for the one before
        it. The price is a gap in the day's numbers when an opening then fails, which numbers
        that only need to be unique and easy to read out can pay. SQLite has one writer at a time
        anyway (and a second connection would wait for this transaction's own write lock), so
        there the counter is updated in the ticket's transaction."""
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            taken = execute_alone(bind.engine, _TAKE_NUMBER, {"day": day})
            return int(taken["last"])
        result = session.execute(
            update(TicketCounter)
            .where(col(TicketCounter.day) == day)
            .values(last=TicketCounter.last + 1)
            .returning(col(TicketCounter.last))
        ).first()
        if result is not None:
            return int(result[0])
        nested = session.begin_nested()
        try:
            session.add(TicketCounter(day=day, last=1))
            session.flush()
            nested.commit()
            return 1
        except IntegrityError:
            # Another transaction created the day's row first: take the next number from it.
            nested.rollback()
            return self.next_sequence(session, day)

    def by_number(self, session: Session, number: str) -> Ticket | None:
        return session.exec(select(Ticket).where(Ticket.number == number)).first()

    def by_id(self, session: Session, ticket_id: int, *, for_update: bool = False) -> Ticket | None:
        return session.get(Ticket, ticket_id, with_for_update=for_update or None)

    def current_version(self, session: Session, ticket_id: int) -> tuple[TicketState, int]:
        """State and version as committed now, bypassing the session's copy of the ticket."""
        row = session.execute(
            select(Ticket.state, Ticket.version).where(Ticket.id == ticket_id)
        ).one()
        return TicketState(row[0]), int(row[1])

    def events(self, session: Session, ticket_id: int) -> Sequence[TicketEvent]:
        return session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(col(TicketEvent.at), col(TicketEvent.id))
        ).all()

    def recent(
        self, session: Session, *, limit: int = 50, state: TicketState | None = None
    ) -> Sequence[Ticket]:
        query = select(Ticket)
        if state is not None:
            query = query.where(Ticket.state == state)
        return session.exec(
            query.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc()).limit(limit)
        ).all()

    def page(
        self, session: Session, where: TicketFilter, *, after_id: int | None, limit: int
    ) -> Sequence[Ticket]:
        """Newest first, keyset-paginated on the id (ids grow with creation): the next page
        starts below the last id seen, so pages stay stable while new tickets arrive."""
        query = select(Ticket)
        if where.state is not None:
            query = query.where(Ticket.state == where.state)
        if where.category is not None:
            query = query.where(Ticket.category == where.category)
        if where.district is not None:
            query = query.where(Ticket.district_code == where.district)
        if where.phone is not None:
            query = query.where(Ticket.caller_phone == where.phone)
        if where.kind is not None:
            query = query.where(Ticket.kind == where.kind)
        if where.only_institution is not None:
            query = query.where(
                Ticket.institution_id == where.only_institution,
                Ticket.kind == TicketKind.service,
            )
        if where.hide_complaints_about is not None:
            agent = where.hide_complaints_about
            complained = aliased(Ticket)
            # NOT EXISTS on the primary key rather than NOT IN (all the agent's tickets): a
            # lookup per complaint, not a scan of the table for the agent's tickets.
            about_agent = exists().where(
                col(complained.id) == col(Ticket.related_ticket_id),
                col(complained.assignee) == agent,
            )
            not_about_agent = and_(func.coalesce(Ticket.subject_agent, "") != agent, ~about_agent)
            query = query.where(or_(col(Ticket.kind) == TicketKind.service, not_about_agent))
        if after_id is not None:
            query = query.where(col(Ticket.id) < after_id)
        return session.exec(query.order_by(col(Ticket.id).desc()).limit(limit)).all()

    def firm_by_phone(self, session: Session, phone: str) -> Firm | None:
        return session.exec(select(Firm).where(Firm.phone == phone)).first()

    def firm(self, session: Session, firm_id: int | None) -> Firm | None:
        return session.get(Firm, firm_id) if firm_id is not None else None

    def inbound_message(self, session: Session, message_sid: str) -> InboundMessage | None:
        return session.exec(
            select(InboundMessage).where(InboundMessage.message_sid == message_sid)
        ).first()

    def open_requests_of_firm(
        self, session: Session, firm_id: int, category: str, since: datetime
    ) -> Sequence[Ticket]:
        """The firm's recent service tickets of a category that have not ended, newest first."""
        return session.exec(
            select(Ticket)
            .where(
                Ticket.firm_id == firm_id,
                Ticket.kind == TicketKind.service,
                Ticket.category == category,
                col(Ticket.state).not_in(ENDED_STATES),
                col(Ticket.created_at) >= since,
            )
            .order_by(col(Ticket.id).desc())
        ).all()

    def declined_by(self, session: Session, ticket_id: int) -> list[int]:
        """Institutions that declined the ticket, in order; re-routing excludes them."""
        events = session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.action == "decline")
            .order_by(col(TicketEvent.id))
        ).all()
        return [int(e.data["institution_id"]) for e in events if e.data.get("institution_id")]

    def latest_routing(self, session: Session, ticket_id: int) -> RoutingRecord | None:
        return session.exec(
            select(RoutingRecord)
            .where(RoutingRecord.ticket_id == ticket_id)
            .order_by(col(RoutingRecord.id).desc())
        ).first()

    def open_revisit(self, session: Session, ticket_id: int) -> Revisit | None:
        return session.exec(
            select(Revisit)
            .where(Revisit.ticket_id == ticket_id, col(Revisit.completed_at).is_(None))
            .order_by(col(Revisit.id).desc())
        ).first()

    def revisit(self, session: Session, revisit_id: int) -> Revisit | None:
        return session.get(Revisit, revisit_id)

    def supervising_platform(
        self, session: Session, district_code: str | None, *, municipal: bool = False
    ) -> Institution | None:
        """The district's window platform (or, asked for or lacking one, the municipal one)."""
        if not municipal and district_code is not None:
            window = session.exec(
                select(Institution)
                .where(
                    Institution.tier == Tier.district_window,
                    Institution.district_code == district_code,
                    col(Institution.active).is_(True),
                )
                .order_by(col(Institution.id))
            ).first()
            if window is not None:
                return window
        return session.exec(
            select(Institution)
            .where(Institution.tier == Tier.municipal, col(Institution.active).is_(True))
            .order_by(col(Institution.id))
        ).first()

    def outbound_calls(self, session: Session, ticket_id: int) -> Sequence[OutboundCall]:
        return session.exec(
            select(OutboundCall)
            .where(OutboundCall.ticket_id == ticket_id)
            .order_by(col(OutboundCall.id))
        ).all()

    def outbound_messages(self, session: Session, ticket_id: int) -> Sequence[OutboundMessage]:
        return session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.ticket_id == ticket_id)
            .order_by(col(OutboundMessage.id))
        ).all()


ticket_repository = TicketRepository()


# One statement, its own transaction (see next_sequence). Run a second time after a lost
# connection it can only leave a gap, which the numbers may have.
_TAKE_NUMBER = (
    "INSERT INTO ticket_counter (day, last) VALUES (%(day)s, 1) "
    "ON CONFLICT (day) DO UPDATE SET last = ticket_counter.last + 1 RETURNING last"
)


# --- lookups for the ticket page's actions (re-route search, the original of a duplicate) ---


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find_institutions(session: Session, text: str, *, limit: int = 20) -> Sequence[Institution]:
    """Active institutions and platforms whose name (either language) or code contains
    ``text``: what an agent finds when routing's candidates are not the one they want."""
    wanted = text.strip()
    if not wanted:
        return []
    pattern = _like(wanted.casefold())
    return session.exec(
        select(Institution)
        .where(
            col(Institution.active).is_(True),
            or_(
                func.lower(Institution.name_zh).like(pattern, escape="\\"),
                func.lower(Institution.name_en).like(pattern, escape="\\"),
                func.lower(Institution.code).like(pattern, escape="\\"),
            ),
        )
        .order_by(col(Institution.tier), col(Institution.id))
        .limit(limit)
    ).all()


def possible_originals(
    session: Session,
    ticket: Ticket,
    *,
    number: str | None = None,
    phone: str | None = None,
    limit: int = 10,
) -> Sequence[Ticket]:
    """Service tickets the given one may duplicate: the one numbered ``number``, those from
    ``phone``, or (with neither) the other tickets of the same caller, newest first. Never the
    ticket itself, nor a cancelled one."""
    query = select(Ticket).where(
        Ticket.kind == TicketKind.service,
        Ticket.state != TicketState.cancelled,
        col(Ticket.id) != ticket.id,
    )
    if number:
        query = query.where(Ticket.number == number)
    elif phone:
        query = query.where(Ticket.caller_phone == phone)
    elif ticket.firm_id is not None:
        query = query.where(
            or_(
                col(Ticket.firm_id) == ticket.firm_id,
                col(Ticket.caller_phone) == ticket.caller_phone,
            )
        )
    elif ticket.caller_phone:
        query = query.where(Ticket.caller_phone == ticket.caller_phone)
    else:
        return []
    return session.exec(query.order_by(col(Ticket.id).desc()).limit(limit)).all()
