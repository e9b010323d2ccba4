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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from ivr_flows.models import DialogueState, WebhookDelivery
from kb.db import as_utc, utcnow

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
    """A fresh state (replacing an expired one under the same key)."""
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
    # Not flushed here: the step usually changes the state again, and the session writes it
    # once, when it next flushes (a query or the commit).
    session.add(row)
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
