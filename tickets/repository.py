"""Every ticket query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from tickets.models import Firm, InboundMessage, Ticket, TicketCounter, TicketEvent, TicketState


class TicketRepository:
    def next_sequence(self, session: Session, day: str) -> int:
        """The next number of the day. The UPDATE takes a row lock (PostgreSQL) or the write lock
        (SQLite), so concurrent openings never share a number."""
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

    def by_id(self, session: Session, ticket_id: int) -> Ticket | None:
        return session.get(Ticket, ticket_id)

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

    def firm_by_phone(self, session: Session, phone: str) -> Firm | None:
        return session.exec(select(Firm).where(Firm.phone == phone)).first()

    def inbound_message(self, session: Session, message_sid: str) -> InboundMessage | None:
        return session.exec(
            select(InboundMessage).where(InboundMessage.message_sid == message_sid)
        ).first()


ticket_repository = TicketRepository()
