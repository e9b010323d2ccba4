"""The public forms that open cases: signed, time-stamped form tokens, a honeypot, rate limits
per address and phone, and an SMS code through the telephony port before anything is opened."""

from __future__ import annotations

import re
import time

import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.public import verify
from hotline.public.forms import _secret
from hotline.settings import Settings
from tickets.models import Channel, OutboundMessage, Ticket, TicketKind, TicketState
from tickets.service import Actor, ticket_service

PHONE = "13800138000"
E164 = "+8613800138000"


def _token(settings: Settings, purpose: str, age: float = 10) -> str:
    return verify.form_token(_secret(settings), purpose, now=time.time() - age)


def _code(engine: Engine, phone: str = E164) -> str:
    with Session(engine) as session:
        message = session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.purpose == "web_code", OutboundMessage.to_number == phone)
            .order_by(col(OutboundMessage.id).desc())
        ).first()
    assert message is not None
    found = re.search(r"\d{6}", message.body)
    assert found
    return found.group(0)


def _pending(page: str) -> str:
    found = re.search(r'action="/confirm/([\w-]+)', page)
    assert found, page
    return found.group(1)


def _complain(client: TestClient, settings: Settings, **fields: str):  # type: ignore[no-untyped-def]
    data = {"form_token": _token(settings, "complaint"), "phone": PHONE, "text": "机构一直没回电话"}
    data.update(fields)
    return client.post("/complaints/new", data=data)


def test_complaint_confirmed_by_sms_code_links_the_ticket(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    with Session(clean_db, expire_on_commit=False) as session:
        original = ticket_service.open_ticket(
            session, actor=Actor("system:sms"), channel=Channel.sms, caller_phone=E164,
            summary="想申请贷款", language="zh", category="financing",
        )  # fmt: skip
        session.commit()
    form = client.get("/complaints/new")
    assert form.status_code == 200 and 'name="form_token"' in form.text
    page = _complain(client, settings, ticket=original.number.lower())
    assert page.status_code == 200, page.text
    pending = _pending(page.text)
    with Session(clean_db) as session:
        assert session.exec(select(Ticket).where(Ticket.kind == TicketKind.complaint)).all() == []
    wrong = client.post(
        f"/confirm/{pending}", data={"code": "000000" if _code(clean_db) != "000000" else "111111"}
    )
    assert wrong.status_code == 422 and "验证码错误" in wrong.text
    done = client.post(f"/confirm/{pending}", data={"code": _code(clean_db)})
    assert done.status_code == 200 and "监督人员" in done.text
    with Session(clean_db) as session:
        complaint = session.exec(select(Ticket).where(Ticket.kind == TicketKind.complaint)).one()
        assert complaint.channel == Channel.web and complaint.caller_phone == E164
        assert complaint.related_ticket_id == original.id
        assert complaint.number in done.text
    # The code is single use.
    replay = client.post(f"/confirm/{pending}", data={"code": _code(clean_db)})
    assert replay.status_code == 410


def test_form_refusals(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    fresh = _complain(client, settings, form_token=_token(settings, "complaint", age=0))
    assert fresh.status_code == 422 and "提交过快" in fresh.text
    old = _complain(client, settings, form_token=_token(settings, "complaint", age=3 * 3600))
    assert old.status_code == 422 and "表单已过期" in old.text
    forged = _complain(client, settings, form_token=f"{int(time.time()) - 10}.{'0' * 32}")
    assert forged.status_code == 422 and "表单无效" in forged.text
    other_form = _complain(client, settings, form_token=_token(settings, "navigate"))
    assert other_form.status_code == 422
    robot = _complain(client, settings, website="http://spam.example")
    assert robot.status_code == 422
    assert _complain(client, settings, phone="12345").status_code == 422
    assert _complain(client, settings, text="   ").status_code == 422
    unknown = _complain(client, settings, ticket="CQ2611289999-Z")
    assert unknown.status_code == 422 and "未找到该工单号" in unknown.text
    with Session(clean_db) as session:
        assert session.exec(select(OutboundMessage)).all() == []


def test_rate_limit_per_phone(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    for _ in range(verify.PHONE_LIMIT[0]):
        assert _complain(client, settings).status_code == 200
    limited = _complain(client, settings)
    assert limited.status_code == 422 and "过于频繁" in limited.text
    # Another phone from the same address still may, up to the address limit.
    assert _complain(client, settings, phone="13900139000").status_code == 200


def test_wrong_codes_drop_the_request(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    pending = _pending(_complain(client, settings).text)
    right = _code(clean_db)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(verify.CODE_ATTEMPTS - 1):
        assert client.post(f"/confirm/{pending}", data={"code": wrong}).status_code == 422
    assert client.post(f"/confirm/{pending}", data={"code": wrong}).status_code == 410
    assert client.post(f"/confirm/{pending}", data={"code": right}).status_code == 410


def test_navigate_suggests_and_opens_a_dispatched_ticket(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    page = client.get("/navigate", params={"need": "我们想申请一笔贷款，公司在渝北区"})
    assert page.status_code == 200
    assert "投融资服务" in page.text and 'name="institution_id"' in page.text
    ids = re.findall(r'name="institution_id" value="(\d+)"', page.text)
    assert len(ids) == 3  # the suggestion and two alternatives
    chosen = int(ids[1])
    english = client.get("/navigate", params={"need": "need a lawyer for a contract", "lang": "en"})
    assert "Legal services" in english.text
    unclear = client.get("/navigate", params={"need": "嗯嗯嗯"})
    assert "未能识别需求类别" in unclear.text

    opened = client.post(
        "/navigate/open",
        data={
            "form_token": _token(settings, "navigate"),
            "need": "我们想申请一笔贷款，公司在渝北区",
            "category": "financing",
            "district": "yubei",
            "institution_id": str(chosen),
            "phone": PHONE,
        },
    )
    assert opened.status_code == 200, opened.text
    done = client.post(f"/confirm/{_pending(opened.text)}", data={"code": _code(clean_db)})
    assert done.status_code == 200
    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket)).one()
        assert ticket.channel == Channel.web and ticket.category == "financing"
        assert ticket.state == TicketState.dispatched and ticket.institution_id == chosen
        assert ticket.number in done.text


def test_web_subscription_confirmed_by_sms_code(
    client: TestClient, settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    from kb.subscriptions import subscriptions_of

    form = client.get("/subscribe", params={"lang": "en"})
    assert form.status_code == 200 and 'value="financing"' in form.text
    none_chosen = client.post(
        "/subscribe", data={"form_token": _token(settings, "subscribe"), "phone": PHONE}
    )
    assert none_chosen.status_code == 422 and "至少选择一个类别" in none_chosen.text
    page = client.post(
        "/subscribe",
        data={
            "form_token": _token(settings, "subscribe"),
            "phone": PHONE,
            "category": ["financing", "legal", "nonsense"],
            "district": ["yubei"],
        },
    )
    assert page.status_code == 200, page.text
    with Session(clean_db) as session:
        assert subscriptions_of(session, E164) == []
    done = client.post(f"/confirm/{_pending(page.text)}", data={"code": _code(clean_db)})
    assert done.status_code == 200 and "订阅成功" in done.text
    with Session(clean_db) as session:
        rows = {s.category_key: (s.districts, s.channel) for s in subscriptions_of(session, E164)}
    assert rows == {"financing": (["yubei"], "web"), "legal": (["yubei"], "web")}
