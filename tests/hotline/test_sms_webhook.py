from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from hotline.settings import Settings
from ivr_flows.segments import segments
from kb.models import Institution
from tests.conftest import TwilioSigner, sms_params
from tickets.models import InboundMessage, RoutingRecord, Ticket, TicketEvent, TicketState
from tickets.numbers import normalise


def _message(response_text: str) -> str:
    root = ET.fromstring(response_text)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) == 1
    return messages[0].text or ""


def _tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket)).all())


def test_a_signed_sms_opens_a_routed_ticket_and_answers_with_it(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("我们公司在渝北区，想申请一笔贷款扩大生产", settings=settings)
    response = twilio.post(client, "/twilio/sms", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    reply = _message(response.text)

    tickets = _tickets(clean_db)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.state == TicketState.dispatched
    assert ticket.category == "financing"
    assert ticket.district_code == "yubei"
    assert ticket.caller_phone == "+8613800138000"
    assert normalise(ticket.number) == ticket.number
    with Session(clean_db) as session:
        institution = session.get(Institution, ticket.institution_id)
        assert institution is not None
        assert institution.open_cases == 1
        record = session.exec(select(RoutingRecord)).one()
        assert record.institution_id == institution.id
        assert record.reasons
        actions = [e.action for e in session.exec(select(TicketEvent)).all()]
        assert actions == ["open", "dispatch"]
    assert ticket.number in reply
    assert institution.name_zh.replace("（演示）", "")[:4] in reply
    assert institution.phone in reply
    assert segments(reply) <= 3


def test_english_texts_are_answered_in_english(
    client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    params = sms_params(
        "We need a lawyer for a contract dispute, office in Jiangbei", settings=settings
    )
    reply = _message(twilio.post(client, "/twilio/sms", params).text)
    assert "ticket" in reply.lower()
    assert segments(reply) <= 3


def test_repeated_delivery_returns_the_same_answer_and_one_ticket(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("想参加中小企业培训 沙坪坝", settings=settings)
    first = twilio.post(client, "/twilio/sms", params)
    second = twilio.post(client, "/twilio/sms", params)
    third = twilio.post(client, "/twilio/sms", params)
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.text == second.text == third.text
    assert len(_tickets(clean_db)) == 1


def test_concurrent_deliveries_of_one_message_open_one_ticket(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("公司要做产品检测 九龙坡", sid="SM" + "7" * 32, settings=settings)
    results: list[str] = []

    def deliver() -> None:
        results.append(twilio.post(client, "/twilio/sms", params).text)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1
    assert len(_tickets(clean_db)) == 1
    with Session(clean_db) as session:
        assert session.exec(select(func.count()).select_from(InboundMessage)).one() == 1


def test_unsigned_and_forged_requests_are_refused_and_store_nothing(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("想申请贷款", settings=settings)
    assert client.post("/twilio/sms", data=params).status_code == 403
    forged = dict(params, Body="想申请贷款 and more")
    headers = {"X-Twilio-Signature": twilio.signature("/twilio/sms", params)}
    assert client.post("/twilio/sms", data=forged, headers=headers).status_code == 403
    # Signed for another URL (the host the proxy saw, not the public one): refused too.
    wrong_url = twilio.validator.compute_signature("http://testserver/twilio/sms", params)
    response = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": wrong_url})
    assert response.status_code == 403
    assert _tickets(clean_db) == []
    with Session(clean_db) as session:
        assert session.exec(select(func.count()).select_from(InboundMessage)).one() == 0


def test_signature_uses_public_base_url_behind_a_proxy(
    client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    params = sms_params("法律咨询 渝中", settings=settings)
    response = twilio.post(
        client,
        "/twilio/sms",
        params,
        headers={"X-Forwarded-Host": "internal:8000", "X-Forwarded-Proto": "http"},
    )
    assert response.status_code == 200


def test_missing_fields_are_a_clear_400(client: TestClient, twilio: TwilioSigner) -> None:
    params = {"Body": "hello", "AccountSid": "AC" + "0" * 32}
    response = twilio.post(client, "/twilio/sms", params)
    assert response.status_code == 400
    assert "MessageSid" in response.text


def test_a_complaint_opens_a_complaint_ticket_not_a_dispatch(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("投诉：你们推荐的机构一直没人回电话，服务态度太差", settings=settings)
    reply = _message(twilio.post(client, "/twilio/sms", params).text)
    tickets = _tickets(clean_db)
    assert len(tickets) == 1
    assert tickets[0].kind == "complaint"
    assert tickets[0].institution_id is None
    assert tickets[0].number in reply


def test_hostile_and_empty_bodies_never_fail(
    client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    for index, body in enumerate(["", "<script>alert(1)</script>", "😀" * 500, "\x00\x07" * 50]):
        params = sms_params(body, sid=f"SM{index:032d}", settings=settings)
        response = twilio.post(client, "/twilio/sms", params)
        assert response.status_code == 200, body
        ET.fromstring(response.text)
