"""Two people acting on one ticket at the same moment, in real concurrent sessions (threads) on
the configured database (SQLite file, or PostgreSQL): exactly one wins, the other is told the
ticket changed and what it is now."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from kb.models import Institution
from tests.tickets.conftest import SUPERVISOR, dispatched, open_request, staff_of
from tickets import service
from tickets.errors import StaleTicket, TicketConflict
from tickets.models import Ticket, TicketEvent, TicketState


def _race(engine: Engine, number: str, actions: list[Any]) -> list[object]:
    """Each action runs in its own thread and session; all have read the ticket before any
    acts, as two agents with the same page open would."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(index: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
            seen_version = ticket.version
            session.commit()  # the read is over, as between a GET and a POST
            barrier.wait(timeout=30)
            try:
                actions[index](session, ticket, seen_version)
                session.commit()
                results[index] = "ok"
            except TicketConflict as exc:
                session.rollback()
                results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.parametrize("round_", range(4))
def test_two_acceptances_at_once_exactly_one_wins(
    session: Session, clean_db: Engine, bank: Institution, round_: int
) -> None:
    ticket = dispatched(session, bank)
    session.commit()
    staff = staff_of(bank)
    results = _race(
        clean_db,
        ticket.number,
        [
            lambda s, t, v: service.accept(s, t, actor=staff, expected_version=v),
            lambda s, t, v: service.accept(s, t, actor=SUPERVISOR, expected_version=v),
        ],
    )
    assert sorted(r == "ok" for r in results) == [False, True]
    loser = next(r for r in results if r != "ok")
    assert isinstance(loser, StaleTicket)
    assert (loser.state, loser.version) == ("accepted", 3)
    assert "reload" in str(loser)
    with Session(clean_db) as check:
        stored = check.get_one(Ticket, ticket.id)
        assert (stored.state, stored.version) == (TicketState.accepted, 3)
        accepts = check.exec(
            select(func.count()).where(
                col(TicketEvent.ticket_id) == ticket.id, TicketEvent.action == "accept"
            )
        ).one()
        assert accepts == 1


def test_accept_racing_decline_leaves_one_consistent_outcome(
    session: Session, clean_db: Engine, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    session.commit()
    staff = staff_of(bank)
    results = _race(
        clean_db,
        ticket.number,
        [
            lambda s, t, v: service.accept(s, t, actor=staff, expected_version=v),
            lambda s, t, v: service.decline(
                s, t, actor=SUPERVISOR, note="wrong district", reroute=False, expected_version=v
            ),
        ],
    )
    assert sorted(r == "ok" for r in results) == [False, True]
    with Session(clean_db) as check:
        stored = check.get_one(Ticket, ticket.id)
        assert stored.version == 3
        assert stored.state in (TicketState.accepted, TicketState.declined)
        # The capacity count follows the winner: held if accepted, released if declined.
        held = check.get_one(Institution, bank.id).open_cases
        assert held == (1 if stored.state == TicketState.accepted else 0)
        events = check.exec(
            select(TicketEvent.action).where(col(TicketEvent.ticket_id) == ticket.id)
        ).all()
        assert list(events) == ["open", "dispatch", "accept" if held else "decline"]


def test_an_opening_does_not_hold_the_days_counter_until_it_commits(clean_db: Engine) -> None:
    """On PostgreSQL a ticket's number is taken in a transaction of its own, so openings run
    side by side; with the counter in the ticket's transaction the second opening would wait
    for the first to commit (here: fail on the lock timeout)."""
    if clean_db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: its openings are serial by design")
    with Session(clean_db) as first:
        slow = open_request(first, phone="+8613800138001")  # still open, not committed
        with Session(clean_db) as second:
            second.execute(text("SET LOCAL lock_timeout = '2s'"))
            quick = open_request(second, phone="+8613800138002")
            second.commit()
            quick_number = quick.number
        first.commit()
        slow_number = slow.number
    assert slow_number != quick_number
    assert int(quick_number[8:12]) == int(slow_number[8:12]) + 1
