from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.settings import Settings
from ivr_flows.segments import segments
from ivr_flows.sms import ANSWER_TASK
from kb.models import Institution
from tests.conftest import (
    TwilioSigner,
    answer_texts,
    count_rows,
    replies_sent,
    sms_params,
    text_hotline,
)
from tickets.models import (
    InboundMessage,
    OutboundMessage,
    OutboxMessage,
    RoutingRecord,
    Ticket,
    TicketEvent,
    TicketState,
)
from tickets.numbers import normalise
from tickets.tasks import run_outbox_job

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
SENDER = "+8613800138000"


def _tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket).order_by(col(Ticket.id))).all())


def _messages(engine: Engine) -> list[InboundMessage]:
    with Session(engine) as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all())


def _answer_jobs(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.task == ANSWER_TASK)
                .order_by(col(OutboxMessage.id))
            ).all()
        )


def test_a_signed_sms_opens_a_routed_ticket_and_answers_with_it(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("我们公司在渝北区，想申请一笔贷款扩大生产", settings=settings)
    reply = text_hotline(client, twilio, params)

    tickets = _tickets(clean_db)
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.state == TicketState.dispatched
    assert ticket.category == "financing"
    assert ticket.district_code == "yubei"
    assert ticket.caller_phone == SENDER
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
        message = session.exec(select(InboundMessage)).one()
        assert message.ticket_id == ticket.id
    assert ticket.number in reply
    assert institution.name_zh.replace("（演示）", "")[:4] in reply
    assert institution.phone in reply
    assert segments(reply) <= 3


def test_the_webhook_only_stores_the_text_and_a_worker_sends_the_reply(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    texted = "+862396360000"  # not the adapter's own number: the reply must come from this one
    assert texted != settings.main_number
    params = {**sms_params("法律咨询 合同纠纷 渝中区", settings=settings), "To": texted}
    response = twilio.post(client, "/twilio/sms", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text == EMPTY_TWIML
    assert ET.fromstring(response.text).findall("Message") == []
    # Stored with the job that answers it; nothing opened, nothing answered, nothing sent yet.
    assert count_rows(clean_db, Ticket) == 0
    assert count_rows(clean_db, OutboundMessage) == 0
    [message] = _messages(clean_db)
    assert message.answered_at is None and message.reply == "" and message.ticket_id is None
    assert (message.from_number, message.to_number) == (SENDER, texted)
    [job] = _answer_jobs(clean_db)
    assert job.queue == "high" and job.payload["message_id"] == message.id
    assert job.done_at is None

    assert answer_texts(clean_db) == ["answered"]
    [ticket] = _tickets(clean_db)
    assert ticket.state == TicketState.dispatched and ticket.category == "legal"
    [message] = _messages(clean_db)
    assert message.answered_at is not None and message.ticket_id == ticket.id
    assert ticket.number in message.reply
    [sent] = replies_sent(clean_db)
    assert (sent.to_number, sent.from_number) == (SENDER, texted)
    assert sent.body == message.reply
    assert sent.status == "queued" and sent.ticket_id == ticket.id
    [job] = _answer_jobs(clean_db)
    assert job.done_at is not None and job.result == "answered"
    # Nothing is left to answer: a second round changes nothing.
    assert answer_texts(clean_db) == []
    assert len(replies_sent(clean_db)) == 1


def test_english_texts_are_answered_in_english(
    client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    params = sms_params(
        "We need a lawyer for a contract dispute, office in Jiangbei", settings=settings
    )
    reply = text_hotline(client, twilio, params)
    assert "ticket" in reply.lower()
    assert segments(reply) <= 3


def test_repeated_delivery_stores_once_and_is_answered_once(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("想参加中小企业培训 沙坪坝", settings=settings)
    deliveries = [twilio.post(client, "/twilio/sms", params) for _ in range(3)]
    assert [(r.status_code, r.text) for r in deliveries] == [(200, EMPTY_TWIML)] * 3
    assert len(_messages(clean_db)) == 1
    assert len(_answer_jobs(clean_db)) == 1
    assert answer_texts(clean_db) == ["answered"]
    # Delivered again after it was answered: still nothing new.
    late = twilio.post(client, "/twilio/sms", params)
    assert (late.status_code, late.text) == (200, EMPTY_TWIML)
    assert answer_texts(clean_db) == []
    assert len(_messages(clean_db)) == 1
    assert len(_tickets(clean_db)) == 1
    [sent] = replies_sent(clean_db)
    assert sent.to_number == SENDER and _tickets(clean_db)[0].number in sent.body


def test_concurrent_deliveries_of_one_message_open_one_ticket(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("公司要做产品检测 九龙坡", sid="SM" + "7" * 32, settings=settings)
    results: list[tuple[int, str]] = []

    def deliver() -> None:
        response = twilio.post(client, "/twilio/sms", params)
        results.append((response.status_code, response.text))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(200, EMPTY_TWIML)] * 8
    assert len(_messages(clean_db)) == 1
    assert len(_answer_jobs(clean_db)) == 1
    assert answer_texts(clean_db) == ["answered"]
    assert len(_tickets(clean_db)) == 1
    assert len(replies_sent(clean_db)) == 1


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
    assert count_rows(clean_db, InboundMessage) == 0
    assert count_rows(clean_db, OutboxMessage) == 0


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


@pytest.mark.parametrize(
    ("field", "limit"),
    [("From", 32), ("To", 32), ("MessageSid", 64), ("AccountSid", 64), ("OptOutType", 16)],
)
def test_an_over_long_field_is_a_400_naming_it_and_stores_nothing(
    field: str,
    limit: int,
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
) -> None:
    params = sms_params("想申请贷款 渝北区", settings=settings)

    def sent_with(value: str) -> tuple[int, str, str]:
        fields = {**params, field: value}
        if field == "MessageSid":
            fields["SmsSid"] = value
        response = twilio.post(client, "/twilio/sms", fields)
        return response.status_code, response.headers["content-type"], response.text

    # Longer than the table holds: not from Twilio; refused, naming the field, nothing stored.
    status, content_type, body = sent_with(
        ("+" + "9" * limit) if field in ("From", "To") else "T" * (limit + 1)
    )
    assert status == 400
    assert content_type.startswith("text/plain")
    assert body == f"{field} longer than {limit} characters"
    assert count_rows(clean_db, InboundMessage) == 0
    assert count_rows(clean_db, OutboxMessage) == 0
    # Exactly as long as it holds: stored, with the job that answers it (a From as long is
    # a number written out with spaces, which files as the firm's phone).
    at_limit = {"From": "+86 (138) 0013-8000".ljust(limit), "To": "+" + "8" * (limit - 1)}
    status, _, body = sent_with(at_limit.get(field, "S" * limit))
    assert (status, body) == (200, EMPTY_TWIML)
    [message] = _messages(clean_db)
    assert [job.payload["message_id"] for job in _answer_jobs(clean_db)] == [message.id]


@pytest.mark.parametrize("field", ["From", "To", "AccountSid", "OptOutType"])
def test_a_nul_in_a_stored_field_is_a_400_naming_it(
    field: str, client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = {**sms_params("想申请贷款 渝北区", settings=settings), field: "+86138\x00001"}
    response = twilio.post(client, "/twilio/sms", params)
    assert (response.status_code, response.text) == (400, f"{field} contains a NUL character")
    assert count_rows(clean_db, InboundMessage) == 0


def test_a_sender_that_is_not_a_phone_number_is_a_400_and_stores_nothing(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    """Within the table's 32 characters, but no phone number: it could not be filed as the
    firm's phone, so its job would fail every time and hold up the sender's later texts."""
    params = sms_params("想申请贷款 渝北区", sender="+86138001380000000000000", settings=settings)
    response = twilio.post(client, "/twilio/sms", params)
    assert response.status_code == 400 and response.text.startswith("From is not a phone number")
    assert count_rows(clean_db, InboundMessage) == 0
    # A number as Twilio writes a WhatsApp sender files as the phone it is: taken.
    whatsapp = sms_params("想申请贷款 渝北区", sender="whatsapp:+8613800138000", settings=settings)
    assert text_hotline(client, twilio, whatsapp) != ""
    [ticket] = _tickets(clean_db)
    assert ticket.caller_phone == "+8613800138000"


def test_a_senders_texts_are_answered_in_arrival_order_whichever_job_runs_first(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    """Both texts are stored before any job runs; the job of the later one runs first (two
    workers, the first one slower): it answers the earlier text first, so the district it
    names answers the question the earlier text's reply asked."""
    need = sms_params("想申请一笔贷款扩大生产", sid="SM" + "1" * 32, settings=settings)
    district = sms_params("渝北区", sid="SM" + "2" * 32, settings=settings)
    for params in (need, district):
        response = twilio.post(client, "/twilio/sms", params)
        assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    first_job, second_job = _answer_jobs(clean_db)
    assert [first_job.payload["message_id"], second_job.payload["message_id"]] == [
        m.id for m in _messages(clean_db)
    ]

    assert run_outbox_job(second_job.id or 0) == "answered"
    first, second = _messages(clean_db)
    assert first.answered_at is not None and second.answered_at is not None
    assert first.answered_at <= second.answered_at
    [ticket] = _tickets(clean_db)
    assert first.ticket_id == second.ticket_id == ticket.id
    # The first text opened the case and asked for the district; the second was the answer.
    assert ticket.number in first.reply and "区县" in first.reply
    assert ticket.number in second.reply and "承办" in second.reply
    assert ticket.state == TicketState.dispatched and ticket.district_code == "yubei"
    assert ticket.category == "financing"
    assert [m.body for m in replies_sent(clean_db)] == [first.reply, second.reply]

    # The earlier text's own job finds it answered and changes nothing.
    assert run_outbox_job(first_job.id or 0) == "already answered"
    assert run_outbox_job(second_job.id or 0) == "already done: answered"
    assert len(replies_sent(clean_db)) == 2
    assert len(_tickets(clean_db)) == 1
    assert answer_texts(clean_db) == []


def test_a_complaint_opens_a_complaint_ticket_not_a_dispatch(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("投诉：你们推荐的机构一直没人回电话，服务态度太差", settings=settings)
    reply = text_hotline(client, twilio, params)
    tickets = _tickets(clean_db)
    assert len(tickets) == 1
    assert tickets[0].kind == "complaint"
    assert tickets[0].institution_id is None
    assert tickets[0].number in reply


def test_hostile_and_empty_bodies_never_fail(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    bodies = ["", "<script>alert(1)</script>", "😀" * 500, "\x00\x07" * 50]
    for index, body in enumerate(bodies):
        params = sms_params(body, sid=f"SM{index:032d}", settings=settings)
        response = twilio.post(client, "/twilio/sms", params)
        assert (response.status_code, response.text) == (200, EMPTY_TWIML), body
    assert answer_texts(clean_db) == ["answered"] * len(bodies)
    messages = _messages(clean_db)
    assert len(messages) == len(bodies)
    for message in messages:
        assert message.answered_at is not None
        assert message.reply and segments(message.reply) <= 3, message.body
        assert "\x00" not in message.body
    assert [m.body for m in replies_sent(clean_db)] == [m.reply for m in messages]


def _refuse_to_answer(engine: Engine, body: str) -> None:
    """A text whose answer the database refuses (as it would a value it cannot store): a
    trigger failing the update that marks the text answered."""
    from sqlalchemy import text

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_answer() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_answer BEFORE UPDATE ON inbound_message FOR EACH ROW "
                    f"WHEN (NEW.body = '{body}') EXECUTE FUNCTION refuse_answer()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_answer BEFORE UPDATE ON inbound_message "
                    f"WHEN NEW.body = '{body}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


def _allow_answers(engine: Engine) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER IF EXISTS refuse_answer ON inbound_message"))
            conn.execute(text("DROP FUNCTION IF EXISTS refuse_answer()"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS refuse_answer"))


def test_a_text_that_cannot_be_answered_does_not_hold_up_the_senders_later_ones(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    broken = sms_params("帮助", sid="SM" + "1" * 32, settings=settings)
    later = sms_params("想申请贷款 渝北区", sid="SM" + "2" * 32, settings=settings)
    _refuse_to_answer(clean_db, "帮助")
    try:
        for params in (broken, later):
            assert twilio.post(client, "/twilio/sms", params).status_code == 200
        broken_job, later_job = _answer_jobs(clean_db)
        # The broken text's own job fails (RQ retries it, then keeps it as failed)...
        with pytest.raises(Exception, match="refused"):
            run_outbox_job(broken_job.id or 0)
        # ...and the later text's job, which tries it first again, still answers its own.
        assert run_outbox_job(later_job.id or 0) == "answered"
    finally:
        _allow_answers(clean_db)
    first, second = _messages(clean_db)
    assert first.answered_at is None and first.reply == ""
    assert second.answered_at is not None
    [ticket] = _tickets(clean_db)
    assert ticket.number in second.reply
    assert [m.body for m in replies_sent(clean_db)] == [second.reply]
    # Once the fault is gone, the broken text's retry answers it.
    assert run_outbox_job(broken_job.id or 0) == "answered"
    assert _messages(clean_db)[0].answered_at is not None
