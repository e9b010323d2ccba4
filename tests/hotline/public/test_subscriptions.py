"""Targeted information subscriptions: the SMS keywords (订阅 融资 / SUB financing, 退订 融资 /
UNSUB financing) through the real SMS webhook, and who a notice reaches."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hotline.settings import Settings
from kb.subscriptions import (
    Audience,
    SubscriptionError,
    audience_phones,
    parse_audience,
    subscribe,
    subscriptions_of,
    unsubscribe,
)
from tests.conftest import TwilioSigner, replies_sent, sms_params, text_hotline
from tickets.models import Ticket

PHONE = "+8613800138000"


def _sms(client: TestClient, twilio: TwilioSigner, settings: Settings, body: str, n: int) -> str:
    """The reply the hotline sends to the text (empty: none)."""
    return text_hotline(client, twilio, sms_params(body, sid=f"SM{n:032d}", settings=settings))


def _replies_sent(engine: Engine) -> list[tuple[str, str]]:
    """The replies sent (not withheld) to PHONE, oldest first: (body, status)."""
    return [(m.body, m.status) for m in replies_sent(engine, to=PHONE)]


def _subs(engine: Engine, phone: str = PHONE) -> dict[str, list[str]]:
    with Session(engine) as session:
        return {s.category_key: s.districts for s in subscriptions_of(session, phone)}


@pytest.mark.parametrize(
    ("text", "categories", "districts"),
    [
        ("融资", ("financing",), ()),
        ("融资 渝北", ("financing",), ("yubei",)),
        ("融资渝北区", ("financing",), ("yubei",)),
        ("法律和培训", ("legal", "talent"), ()),
        ("financing, Yubei District", ("financing",), ("yubei",)),
        ("Legal jiangbei wanzhou", ("legal",), ("jiangbei", "wanzhou")),
        ("投融资服务", ("financing",), ()),
    ],
)
def test_parse_audience(
    session: Session, text: str, categories: tuple[str, ...], districts: tuple[str, ...]
) -> None:
    assert parse_audience(session, text) == Audience(categories, districts)


def test_parse_audience_refuses_unknown_words(session: Session) -> None:
    with pytest.raises(SubscriptionError, match="plumbing"):
        parse_audience(session, "financing plumbing")


def test_sms_subscribe_and_unsubscribe_by_category(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    reply = _sms(client, twilio, settings, "订阅 融资 渝北", 1)
    assert "已订阅" in reply and "投融资服务" in reply and "渝北区" in reply
    assert _subs(clean_db) == {"financing": ["yubei"]}
    reply = _sms(client, twilio, settings, "SUB legal", 2)
    assert "Subscribed" in reply and "legal services" in reply
    assert _subs(clean_db) == {"financing": ["yubei"], "legal": []}
    # Widening to the whole city.
    _sms(client, twilio, settings, "订阅融资", 3)
    assert _subs(clean_db)["financing"] == []
    reply = _sms(client, twilio, settings, "退订 融资", 4)
    assert "已取消订阅" in reply
    assert _subs(clean_db) == {"legal": []}
    reply = _sms(client, twilio, settings, "UNSUB legal", 5)
    assert "Unsubscribed" in reply and _subs(clean_db) == {}
    # Unknown words get the list of categories, not a ticket.
    reply = _sms(client, twilio, settings, "SUB plumbing", 6)
    assert "Unknown word" in reply and "financing" in reply
    with Session(clean_db) as session:
        assert session.exec(select(Ticket)).all() == []
    # Every text was answered by one SMS, in order.
    assert len(_replies_sent(clean_db)) == 6
    assert _replies_sent(clean_db)[-1] == (reply, "queued")


def test_bare_keywords_and_needs_are_not_taken_as_subscriptions(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    _sms(client, twilio, settings, "订阅 融资", 1)
    # A bare 退订 is STOP: everything stops, the subscription stays for after START.
    _sms(client, twilio, settings, "退订", 2)
    assert _subs(clean_db) == {"financing": []}
    sent = _replies_sent(clean_db)
    # Opted out: the subscription is changed but no reply is sent.
    assert _sms(client, twilio, settings, "订阅 法律", 3) == ""
    assert set(_subs(clean_db)) == {"financing", "legal"}
    assert _replies_sent(clean_db) == sent
    _sms(client, twilio, settings, "START", 4)
    # A long text that starts with 订阅 and names nothing is a need: it opens a ticket.
    _sms(client, twilio, settings, "订阅号的推广合同出了纠纷想找律师帮忙 江北区", 5)
    with Session(clean_db) as session:
        assert len(session.exec(select(Ticket)).all()) == 1


def test_audience_by_category_and_district(session: Session) -> None:
    subscribe(session, "+8613900000001", ["financing"])  # whole city
    subscribe(session, "+8613900000002", ["financing"], ["yubei"])
    subscribe(session, "+8613900000003", ["financing"], ["wanzhou"])
    subscribe(session, "+8613900000004", ["legal"])
    city = audience_phones(session, Audience(("financing",), ()))
    assert city == ["+8613900000001", "+8613900000002", "+8613900000003"]
    yubei = audience_phones(session, Audience(("financing",), ("yubei",)))
    assert yubei == ["+8613900000001", "+8613900000002"]
    both = audience_phones(session, Audience(("financing", "legal"), ("wanzhou",)))
    assert both == ["+8613900000001", "+8613900000003", "+8613900000004"]
    assert unsubscribe(session, "+8613900000001") == 1
    assert audience_phones(session, Audience(("financing",), ("yubei",))) == ["+8613900000002"]
