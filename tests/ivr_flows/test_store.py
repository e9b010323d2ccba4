from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from ivr_flows import store
from ivr_flows.models import CallLog, DialogueState, WebhookDelivery
from tickets.models import Channel
from tickets.service import Actor, ticket_service

NOW = datetime(2026, 11, 30, 2, tzinfo=UTC)


def test_state_expires_and_is_purged_with_old_deliveries(session: Session) -> None:
    row = store.create_state(
        session,
        "sms:+8613800138000",
        flow="sms",
        phone="+8613800138000",
        language="zh",
        ttl=store.SMS_TTL,
        now=NOW,
    )
    store.save_state(session, row, data={"awaiting": "district"}, ttl=store.SMS_TTL, now=NOW)
    assert store.load_state(session, row.key, now=NOW + timedelta(minutes=29)) is not None
    assert store.load_state(session, row.key, now=NOW + timedelta(minutes=31)) is None

    claim = store.claim(session, "voice:main:CA1:start:")
    assert claim is not None
    store.answer(session, claim, "<Response/>")
    assert store.claim(session, "voice:main:CA1:start:") is None
    assert store.stored_reply(session, "voice:main:CA1:start:") == "<Response/>"
    session.execute(
        update(WebhookDelivery).where(col(WebhookDelivery.id) == claim.id).values(created_at=NOW)
    )

    assert store.purge_expired(session, now=NOW + store.DELIVERY_TTL + timedelta(hours=1)) == 2
    assert session.get(DialogueState, row.key) is None
    assert session.get(WebhookDelivery, claim.id) is None


def test_long_keys_stay_unique(session: Session) -> None:
    first = store.claim(session, "x" * 300)
    second = store.claim(session, "x" * 299 + "y")
    assert first is not None and second is not None
    assert store.claim(session, "x" * 300) is None


# --- the usual end of a call ------------------------------------------------------------------


ENTRY = {
    "call_sid": "CA1",
    "parent_call_sid": "",
    "status": "completed",
    "direction": "inbound",
    "from_number": "+8613800138000",
    "to_number": "+862312345",
    "duration": 42,
    "answered_by": "",
    "sequence": 3,
}


def _conversation(
    engine: Engine,
    key: str,
    *,
    flow: str = "main",
    with_case: bool = True,
    expires: timedelta = store.CALL_TTL,
) -> int | None:
    with Session(engine) as session:
        ticket_id = None
        if with_case:
            ticket = ticket_service.open_ticket(
                session,
                actor=Actor("test"),
                channel=Channel.voice,
                caller_phone="+8613800138000",
                summary="想申请贷款",
                language="zh",
                now=NOW,
            )
            ticket_id = ticket.id
        row = store.create_state(
            session, key, flow=flow, phone="+8613800138000", language="zh", ttl=expires, now=NOW
        )
        data = {"step": "transfer", "ticket_id": ticket_id} if with_case else {"step": "ask"}
        store.save_state(session, row, data=data, ttl=expires, now=NOW)
        row.ticket_id = ticket_id
        session.commit()
    return ticket_id


def _end(
    engine: Engine, key: str, state_key: str = "call:CA1", entry: dict[str, Any] | None = None
) -> store.ServedCallEnd:
    with Session(engine) as session:
        ended = store.end_served_call(
            session,
            key,
            state_key=state_key,
            entry=entry or ENTRY,
            now=NOW + timedelta(minutes=2),
        )
        session.commit()
    return ended


def _written(engine: Engine) -> tuple[list[tuple[str, int | None]], int, bool]:
    with Session(engine) as session:
        logs = [(log.flow, log.ticket_id) for log in session.exec(select(CallLog)).all()]
        deliveries = len(session.exec(select(WebhookDelivery)).all())
        state = session.get(DialogueState, "call:CA1")
        return logs, deliveries, bool(state and state.finished)


def test_a_served_call_is_closed_and_logged_once(clean_db: Engine) -> None:
    ticket_id = _conversation(clean_db, "call:CA1")
    ended = _end(clean_db, "status:CA1:completed:3")
    assert ended == store.ServedCallEnd(
        served=True, flow="main", ticket_id=ticket_id, step="transfer"
    )
    assert _written(clean_db) == ([("main", ticket_id)], 1, True)
    # The same delivery again, and another final status: the conversation is finished, so
    # neither is a served call's end any more (the general path claims and logs them).
    assert _end(clean_db, "status:CA1:completed:3") == store.ServedCallEnd()
    assert _end(clean_db, "status:CA1:failed:4") == store.ServedCallEnd()
    assert _written(clean_db) == ([("main", ticket_id)], 1, True)


def test_a_served_call_without_duration_or_sequence_is_logged(clean_db: Engine) -> None:
    ticket_id = _conversation(clean_db, "call:CA1")
    bare = {**ENTRY, "duration": None, "sequence": None, "answered_by": ""}
    assert _end(clean_db, "status:CA1:completed:", entry=bare).ticket_id == ticket_id
    with Session(clean_db) as session:
        [log] = session.exec(select(CallLog)).all()
    assert (log.duration, log.sequence, log.ticket_id) == (None, None, ticket_id)


@pytest.mark.parametrize(
    ("flow", "with_case", "expires"),
    [
        ("main", False, store.CALL_TTL),  # no case yet: its end opens one
        ("revisit", True, store.CALL_TTL),  # a revisit's end records its outcome
        ("main", True, timedelta(minutes=1)),  # expired: the general path starts afresh
    ],
)
def test_other_conversations_are_left_to_the_general_path_untouched(
    clean_db: Engine, flow: str, with_case: bool, expires: timedelta
) -> None:
    _conversation(clean_db, "call:CA1", flow=flow, with_case=with_case, expires=expires)
    assert _end(clean_db, "status:CA1:completed:3") == store.ServedCallEnd()
    assert _end(clean_db, "status:CA2:completed:3", state_key="call:CA2") == store.ServedCallEnd()
    assert _written(clean_db) == ([], 0, False)


def test_concurrent_deliveries_of_the_end_close_and_log_once(clean_db: Engine) -> None:
    ticket_id = _conversation(clean_db, "call:CA1")
    with ThreadPoolExecutor(8) as pool:
        ends = list(pool.map(lambda _: _end(clean_db, "status:CA1:completed:3"), range(16)))
    first = [end for end in ends if end.served and not end.repeated]
    repeats = [end for end in ends if end.repeated]
    # Each is the winner, a repeat (it saw the conversation open and lost the claim), or,
    # arriving after the winner's commit, left to the general path (which finds the claim).
    assert len(first) == 1 and first[0].ticket_id == ticket_id
    assert len(first) + len(repeats) + ends.count(store.ServedCallEnd()) == 16
    assert _written(clean_db) == ([("main", ticket_id)], 1, True)


def test_ends_that_arrive_together_share_one_statement_and_each_gets_its_own_case(
    clean_db: Engine,
) -> None:
    """On PostgreSQL the ends that come while one is being written go out in the next
    statement (kb.db.GroupedStatement); each still gets its own conversation's case, and a
    second delivery of one of them waits for a later statement and writes nothing."""
    if clean_db.dialect.name != "postgresql":
        pytest.skip("grouped ends are PostgreSQL's: SQLite writes in process")
    calls = [f"CA{n}" for n in range(1, 9)]
    tickets = {call: _conversation(clean_db, f"call:{call}") for call in calls}
    ended: dict[tuple[str, int], store.ServedCallEnd] = {}

    def end(call: str, delivery: int) -> None:
        ended[(call, delivery)] = _end(
            clean_db,
            f"status:{call}:completed:3",
            state_key=f"call:{call}",
            entry={**ENTRY, "call_sid": call},
        )

    with clean_db.connect() as holder:
        # The first end's update waits for this lock while the others queue behind it.
        holder.execute(
            update(DialogueState)
            .where(col(DialogueState.key) == "call:CA1")
            .values(phone="+8613800138000")
        )
        first = threading.Thread(target=end, args=("CA1", 1))
        first.start()
        _until(lambda: _lock_waiters(clean_db) == 1)
        queued = [threading.Thread(target=end, args=(call, 1)) for call in calls[1:]]
        queued.append(threading.Thread(target=end, args=("CA5", 2)))
        for thread in queued:
            thread.start()
        _until(lambda: store._SERVED_CALL_ENDS._queue.qsize() == len(queued))
        holder.commit()
    for thread in [first, *queued]:
        thread.join(timeout=30)

    for call in calls:
        assert ended[(call, 1)] == store.ServedCallEnd(
            served=True, flow="main", ticket_id=tickets[call], step="transfer"
        )
    # The second delivery of CA5 went out after the first had closed the conversation.
    assert ended[("CA5", 2)] == store.ServedCallEnd()
    with clean_db.connect() as connection:
        logs = connection.execute(
            text("SELECT call_sid, ticket_id, xmin::text FROM call_log ORDER BY call_sid")
        ).all()
        finished = connection.execute(
            text("SELECT count(*) FROM dialogue_state WHERE finished")
        ).scalar_one()
    assert [(log.call_sid, log.ticket_id) for log in logs] == [
        (call, tickets[call]) for call in calls
    ]
    assert finished == len(calls)
    # The seven that waited were written by one transaction, not the first's.
    statements = {log.call_sid: log.xmin for log in logs}
    assert len({statements[call] for call in calls[1:]}) == 1
    assert statements["CA1"] != statements["CA2"]


def _lock_waiters(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one()
        )


def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
