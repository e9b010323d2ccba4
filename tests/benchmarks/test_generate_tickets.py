"""The benchmark's bulk generator writes rows the app accepts: valid, unique ticket numbers that
the app's own numbering continues after, lives consistent with their events, capacity counters
that match, sequences that continue (COPY on PostgreSQL, inserts on SQLite)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from hotline.web import queries
from kb.db import as_utc
from kb.models import Institution
from tickets.models import (
    Channel,
    InboundMessage,
    Revisit,
    Role,
    RoutingRecord,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketKind,
    TicketState,
)
from tickets.numbers import normalise
from tickets.service import Actor, ticket_service

NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generate_tickets.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_tickets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_tickets"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_tickets_are_valid_and_consistent(
    generator: ModuleType, clean_db: Engine
) -> None:
    written = generator.generate(clean_db, 400, now=NOW, days=40, seed=7, chunk=150)
    assert written["ticket"] == 400
    with Session(clean_db) as session:
        tickets = session.exec(select(Ticket)).all()
        assert len(tickets) == 400
        numbers = [t.number for t in tickets]
        assert len(set(numbers)) == 400
        assert all(normalise(n) == n for n in numbers)
        # The daily counters are at least the highest sequence used that day.
        counters = {c.day: c.last for c in session.exec(select(TicketCounter))}
        for number in numbers:
            assert counters[number[2:8]] >= int(number[8:-2])

        events: dict[int, list[TicketEvent]] = {}
        for event in session.exec(select(TicketEvent).order_by(col(TicketEvent.id))):
            events.setdefault(event.ticket_id, []).append(event)
        routed = {r.ticket_id for r in session.exec(select(RoutingRecord))}
        for ticket in tickets:
            timeline = events[ticket.id]  # type: ignore[index]
            assert timeline[0].action == "open"
            assert timeline[-1].to_state == ticket.state.value
            assert ticket.version == len(timeline)
            assert all(as_utc(e.at) <= NOW for e in timeline)
            if ticket.dispatched_at is not None:
                assert ticket.institution_id is not None
                assert ticket.accept_due_at is not None
                assert ticket.id in routed
            if ticket.state in (TicketState.closed, TicketState.cancelled):
                assert ticket.closure is not None
                assert not ticket.counts_as_open
        states = Counter(t.state for t in tickets)
        # Lives cut at "now": most tickets of the 40 days ended, some are still being worked.
        assert states[TicketState.closed] > 200
        assert sum(states[s] for s in queries.QUEUE_STATES) > 0
        assert {t.kind for t in tickets} == {TicketKind.service, TicketKind.complaint}
        assert {t.channel for t in tickets} >= {Channel.sms, Channel.voice}

        sms = session.exec(select(func.count()).select_from(InboundMessage)).one()
        assert sms == sum(1 for t in tickets if t.channel == Channel.sms)
        resolved = sum(1 for t in tickets if t.resolved_at is not None)
        assert session.exec(select(func.count()).select_from(Revisit)).one() >= resolved

        # Each institution's capacity counter holds exactly its tickets that count as open.
        held = Counter(t.institution_id for t in tickets if t.counts_as_open)
        for institution in session.exec(select(Institution)):
            assert institution.open_cases == held.get(institution.id, 0), institution.code


def test_generating_again_grows_and_the_app_numbers_after_it(
    generator: ModuleType, clean_db: Engine
) -> None:
    generator.generate(clean_db, 120, now=NOW, days=3, seed=1)
    generator.generate(clean_db, 80, now=NOW, days=3, seed=1)
    with Session(clean_db) as session:
        numbers = session.exec(select(Ticket.number)).all()
        assert len(numbers) == len(set(numbers)) == 200
        # The app opens a ticket on a day the generator filled: the next number, a new id.
        last_day = max(n[2:8] for n in numbers)
        moment = datetime.strptime(last_day, "%y%m%d").replace(hour=3, tzinfo=UTC)
        firm = ticket_service.find_or_create_firm(session, "+8613800138000", language="zh")
        opened = ticket_service.open_ticket(
            session,
            actor=Actor("user:agent", Role.agent),
            channel=Channel.sms,
            caller_phone=firm.phone,
            summary="想申请贷款",
            language="zh",
            category="financing",
            district_code="yubei",
            firm=firm,
            now=moment,
        )
        session.commit()
        assert opened.number not in numbers
        assert int(opened.number[8:-2]) == 1 + max(
            int(n[8:-2]) for n in numbers if n[2:8] == last_day
        )
        assert opened.id == 1 + max(session.exec(select(Ticket.id).where(Ticket.id != opened.id)))
        # The queue shows the generated tickets, most urgent first.
        page = queries.queue_page(session, queries.QueueFilter(), actor_name="user:agent", now=NOW)
        assert page.rows, "the default queue is empty"
        dues = [row.due for row in page.rows if row.due is not None]
        assert dues == sorted(dues)
