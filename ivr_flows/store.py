"""Dialogue state and webhook deliveries, in the caller's transaction.

A delivery is claimed by inserting its key; a retry of the same webhook (Twilio's
``I-Twilio-Idempotency-Token``, else the call or message and the step) finds the key and gets
the stored reply back, without running the step's side effects again. The claim is one
``INSERT … ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite; a savepoint elsewhere): a concurrent
duplicate waits for the winner's commit, inserts nothing, and reads the winner's reply in the
same transaction. One round trip, where a read, a savepoint and an insert took four: every
voice webhook pays it. Status callbacks, whose reply is always the empty one, leave the
claim's reply empty (no second statement); a call's first request, when its flow's greeting
is static, claims nothing at all (see ``calls.handle_call``).

The usual end of a call, the ``completed`` callback of a conversation that already has its
case, is :func:`end_served_call`: the claim, the state's closing and the log row in one
statement on PostgreSQL (three on SQLite, where a statement costs no round trip).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, event, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from ivr_flows.models import CallLog, DialogueState, WebhookDelivery
from kb.db import GroupedStatement, as_utc, utcnow

CALL_TTL = timedelta(hours=6)
SMS_TTL = timedelta(minutes=30)
DELIVERY_TTL = timedelta(days=2)
# Keys load_state looked up in the current transaction (forgotten at its end).
_READ_KEYS = "dialogue_state_keys_read"


def call_key(call_sid: str) -> str:
    return f"call:{call_sid}"


def sms_key(phone: str) -> str:
    return f"sms:{phone}"


def load_state(session: Session, key: str, *, now: datetime | None = None) -> DialogueState | None:
    """The live state under ``key`` (locked for this transaction on PostgreSQL), or None when
    there is none or it expired."""
    row = session.exec(
        select(DialogueState).where(DialogueState.key == key).with_for_update()
    ).first()
    session.info.setdefault(_READ_KEYS, set()).add(key)
    if row is None:
        return None
    if as_utc(row.expires_at) <= (now or utcnow()):
        return None
    return row


def create_state(
    session: Session,
    key: str,
    *,
    flow: str,
    phone: str,
    language: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> DialogueState:
    """A fresh state (replacing an expired one under the same key), written when the caller
    saves it (:func:`save_state`, or ``session.add``).

    A new row is not added to the session here: the step that made it usually queries before
    it saves (the caller's firm, the routing), and each query's autoflush would write the row
    then, as an INSERT, and the save again, as an UPDATE. Added at the save, it is one INSERT
    with its final values."""
    now = now or utcnow()
    if key in session.info.get(_READ_KEYS, ()):
        # load_state read this key in this transaction (and locked it): an expired row is in
        # the session already, a missing one is missing; no second query.
        row = session.get(DialogueState, key) if _in_session(session, key) else None
    else:
        row = session.get(DialogueState, key)
    if row is None:
        row = DialogueState(key=key, flow=flow, phone=phone, expires_at=now + ttl)
    row.flow, row.phone, row.language = flow, phone, language
    row.data, row.ticket_id, row.finished = {}, None, False
    row.created_at = row.updated_at = now
    row.expires_at = now + ttl
    return row


def _in_session(session: Session, key: str) -> bool:
    return session.identity_key(DialogueState, key) in session.identity_map


def save_state(
    session: Session,
    row: DialogueState,
    *,
    data: dict[str, Any],
    language: str | None = None,
    ttl: timedelta,
    now: datetime | None = None,
) -> None:
    now = now or utcnow()
    # A new dict, so the JSON column is seen as changed (in-place edits are not tracked).
    row.data = dict(data)
    if language is not None:
        row.language = language
    row.updated_at = now
    row.expires_at = now + ttl
    session.add(row)


def end_state(session: Session, key: str) -> None:
    session.execute(delete(DialogueState).where(col(DialogueState.key) == key))


def _fit(key: str) -> str:
    # Keys are built from Twilio's fields; a hash keeps an unexpectedly long one unique.
    return (
        key if len(key) <= 200 else key[:150] + ":" + hashlib.sha256(key.encode()).hexdigest()[:40]
    )


def stored_reply(session: Session, key: str) -> str | None:
    found = session.exec(select(WebhookDelivery).where(WebhookDelivery.key == _fit(key))).first()
    return found.response if found is not None else None


@dataclass(frozen=True)
class Claim:
    """A delivery this transaction claimed: the row's id, to store the reply in."""

    id: int
    key: str


def _deliveries() -> Table:
    return cast(Table, WebhookDelivery.__table__)  # type: ignore[attr-defined]


def claim(session: Session, key: str) -> Claim | None:
    """Claim the delivery ``key``; None when it was delivered before (read the stored reply).

    Core statements on the session's connection, not the ORM: every voice webhook runs this
    and ``answer``, and the unit of work costs more CPU than the two round trips themselves."""
    fitted = _fit(key)
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        values = {"key": fitted, "response": "", "created_at": utcnow()}
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(_deliveries())
            .values(values)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(_deliveries().c.id)
        )
        claimed = connection.execute(statement).scalar()
        return Claim(int(claimed), fitted) if claimed is not None else None
    if stored_reply(session, key) is not None:
        return None
    row = WebhookDelivery(key=fitted)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    assert row.id is not None
    return Claim(row.id, fitted)


def answer(session: Session, claimed: Claim, response: str) -> None:
    table = _deliveries()
    session.connection().execute(
        update(table).where(table.c.id == claimed.id).values(response=response)
    )


# Lines whose end needs nothing once the conversation has its case (calls.END_HANDLERS return at
# once then; a revisit's end records its outcome, so it is not among them).
SERVED_ENDS_NOTHING = ("main", "monitor")


@dataclass(frozen=True)
class ServedCallEnd:
    """What :func:`end_served_call` did with a final call status."""

    # The conversation is not a served call (none, expired, finished, no case yet, or a line
    # whose end does more): nothing was written, the caller takes the general path.
    served: bool = False
    # The delivery was claimed before: nothing was written.
    repeated: bool = False
    flow: str = ""
    ticket_id: int | None = None
    step: str | None = None


# psycopg's placeholders: run through the driver (kb.db.execute_alone), not SQLAlchemy. The
# lines are written into the text (constants of this module), not bound: a list parameter
# costs more to adapt than the rest of the statement's parameters together.
_END_SERVED_CALL_POSTGRESQL = """
    WITH served AS (
        SELECT flow, ticket_id, data ->> 'step' AS step
        FROM dialogue_state
        WHERE key = %(state_key)s AND NOT finished AND expires_at > %(now)s
          AND ticket_id IS NOT NULL AND flow IN ({served_ends_nothing})
    ), claimed AS (
        INSERT INTO webhook_delivery (key, response, created_at)
        SELECT %(key)s, '', %(now)s FROM served
        ON CONFLICT (key) DO NOTHING
        RETURNING id
    ), closed AS (
        UPDATE dialogue_state SET finished = true, updated_at = %(now)s
        WHERE key = %(state_key)s AND EXISTS (SELECT 1 FROM claimed)
    ), logged AS (
        INSERT INTO call_log (call_sid, parent_call_sid, flow, status, direction, from_number,
                              to_number, duration, answered_by, sequence, ticket_id, at)
        SELECT %(call_sid)s, %(parent_call_sid)s, served.flow, %(status)s, %(direction)s,
               %(from_number)s, %(to_number)s, %(duration)s, %(answered_by)s, %(sequence)s,
               served.ticket_id, %(now)s
        FROM served WHERE EXISTS (SELECT 1 FROM claimed)
    )
    SELECT flow, ticket_id, step, EXISTS (SELECT 1 FROM claimed) AS claimed FROM served
""".format(served_ends_nothing=", ".join(f"'{flow}'" for flow in SERVED_ENDS_NOTHING))

# The same for many calls at once (kb.db.GroupedStatement): one element per call in each array.
_END_SERVED_CALLS_POSTGRESQL = """
    WITH ending AS (
        SELECT * FROM unnest(
            %(key)s::text[], %(state_key)s::text[], %(now)s::timestamptz[], %(call_sid)s::text[],
            %(parent_call_sid)s::text[], %(status)s::text[], %(direction)s::text[],
            %(from_number)s::text[], %(to_number)s::text[], %(duration)s::integer[],
            %(answered_by)s::text[], %(sequence)s::integer[]
        ) WITH ORDINALITY AS ending (key, state_key, now, call_sid, parent_call_sid, status,
                                     direction, from_number, to_number, duration, answered_by,
                                     sequence, n)
    ), served AS (
        SELECT ending.*, state.flow, state.ticket_id, state.data ->> 'step' AS step
        FROM ending JOIN dialogue_state AS state ON state.key = ending.state_key
        WHERE NOT state.finished AND state.expires_at > ending.now
          AND state.ticket_id IS NOT NULL AND state.flow IN ({served_ends_nothing})
    ), claimed AS (
        INSERT INTO webhook_delivery (key, response, created_at)
        SELECT key, '', now FROM served
        ON CONFLICT (key) DO NOTHING
        RETURNING key
    ), closed AS (
        UPDATE dialogue_state SET finished = true, updated_at = served.now
        FROM served JOIN claimed USING (key)
        WHERE dialogue_state.key = served.state_key
    ), logged AS (
        INSERT INTO call_log (call_sid, parent_call_sid, flow, status, direction, from_number,
                              to_number, duration, answered_by, sequence, ticket_id, at)
        SELECT call_sid, parent_call_sid, flow, status, direction, from_number, to_number,
               duration, answered_by, sequence, ticket_id, now
        FROM served JOIN claimed USING (key)
    )
    SELECT n, flow, ticket_id, step, key IN (SELECT key FROM claimed) AS claimed FROM served
""".format(served_ends_nothing=", ".join(f"'{flow}'" for flow in SERVED_ENDS_NOTHING))

_SERVED_CALL_ENDS = GroupedStatement(
    name="served call ends",
    alone=_END_SERVED_CALL_POSTGRESQL,
    grouped=_END_SERVED_CALLS_POSTGRESQL,
    columns=(
        "key",
        "state_key",
        "now",
        "call_sid",
        "parent_call_sid",
        "status",
        "direction",
        "from_number",
        "to_number",
        "duration",
        "answered_by",
        "sequence",
    ),
    # One claim per delivery and one update per conversation in a statement.
    conflicts=lambda params: (params["state_key"], params["key"]),
)


def end_served_call(
    session: Session,
    key: str,
    *,
    state_key: str,
    entry: dict[str, Any],
    now: datetime,
) -> ServedCallEnd:
    """The usual end of a call: a final status for a live, unfinished conversation that
    already has its case, on a line whose end then needs nothing more. Claims the delivery
    ``key``, closes the conversation under ``state_key`` and logs ``entry`` (``CallLog``'s
    fields but flow, ticket and time); for any other conversation, writes nothing.

    Every answered call ends with such a callback, so it is written for its cost. On
    PostgreSQL it is one statement, run through the driver as its own transaction (it is the
    whole of the request's work; SQLAlchemy's execution and a session's BEGIN and COMMIT cost
    three times the statement itself), and the ends that arrive together in a process share
    it (see :func:`end_served_call_grouped`). A concurrent duplicate waits on the claim (or,
    in the same process, for the next statement), then does nothing; a concurrent step of the
    same call is waited for by the update. Elsewhere (SQLite, in process) three statements in
    the session's transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return _served_end(
            _SERVED_CALL_ENDS.run(bind.engine, _served_end_params(key, state_key, entry, now))
        )
    connection = session.connection()
    states = cast(Table, DialogueState.__table__)  # type: ignore[attr-defined]
    served = connection.execute(
        select(states.c.flow, states.c.ticket_id, states.c.data).where(
            states.c.key == state_key,
            states.c.finished.is_(False),
            states.c.expires_at > now,
            states.c.ticket_id.is_not(None),
            states.c.flow.in_(SERVED_ENDS_NOTHING),
        )
    ).first()
    if served is None:
        return ServedCallEnd()
    found = ServedCallEnd(
        served=True, flow=served.flow, ticket_id=served.ticket_id, step=served.data.get("step")
    )
    if claim(session, key) is None:
        return dataclasses.replace(found, repeated=True)
    connection.execute(
        update(states).where(states.c.key == state_key).values(finished=True, updated_at=now)
    )
    logs = cast(Table, CallLog.__table__)  # type: ignore[attr-defined]
    connection.execute(
        insert(logs).values(**entry, flow=served.flow, ticket_id=served.ticket_id, at=now)
    )
    return found


def grouped_ends(engine: Engine) -> bool:
    """Whether :func:`end_served_call_grouped` serves this database (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


async def end_served_call_grouped(
    engine: Engine,
    key: str,
    *,
    state_key: str,
    entry: dict[str, Any],
    now: datetime,
) -> ServedCallEnd:
    """:func:`end_served_call` for a request served on the event loop (PostgreSQL only, see
    :func:`grouped_ends`): it waits for the statement its process runs next for every end
    that came meanwhile, holding no thread (kb.db.GroupedStatement)."""
    return _served_end(
        await _SERVED_CALL_ENDS.run_async(engine, _served_end_params(key, state_key, entry, now))
    )


def _served_end_params(
    key: str, state_key: str, entry: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {**entry, "key": _fit(key), "state_key": state_key, "now": now}


def _served_end(row: dict[str, Any] | None) -> ServedCallEnd:
    if row is None:
        return ServedCallEnd()
    return ServedCallEnd(
        served=True,
        repeated=not row["claimed"],
        flow=row["flow"],
        ticket_id=row["ticket_id"],
        step=row["step"],
    )


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Forget expired conversations and old deliveries (run from a periodic job)."""
    now = now or utcnow()
    removed = 0
    for statement in (
        delete(DialogueState).where(col(DialogueState.expires_at) < now),
        delete(WebhookDelivery).where(col(WebhookDelivery.created_at) < now - DELIVERY_TTL),
    ):
        result = cast(CursorResult[Any], session.execute(statement))
        removed += int(result.rowcount or 0)
    return removed


@event.listens_for(Session, "after_transaction_end")
def _forget_read_keys(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_READ_KEYS, None)
