from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col

from ivr_flows import store
from ivr_flows.models import DialogueState, WebhookDelivery

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
