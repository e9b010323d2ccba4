"""The main hotline end to end: signed requests through the real app, TwiML parsed, the
database and the queued jobs checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hotline.app import create_app
from hotline.queue import queue
from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings
from ivr_flows.jobs import TICKET_SMS_TASK
from ivr_flows.models import DialogueState
from kb.models import Institution
from tests.conftest import TwilioSigner
from tests.ivr_flows.phone import AFTER_HOURS, CALLER, OFFICE_HOURS, PhoneCall, Twiml
from tickets.models import (
    Firm,
    OutboundMessage,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketState,
)
from tickets.numbers import normalise
from tickets.outbox import job_id, relay_outbox, session_factory_for
from tickets.tasks import run_outbox_job


@pytest.fixture(autouse=True)
def _empty_queues(redis_conn: redis.Redis) -> Iterator[None]:
    redis_conn.flushdb()
    yield


def at(app: FastAPI, moment: datetime) -> None:
    app.state.clock = lambda: moment


def sms_job_rows(engine: Engine, connection: redis.Redis) -> list[OutboxMessage]:
    """The ticket SMS the calls wrote into the outbox, each checked to be in RQ (relayed after
    the response that committed it)."""
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.task == TICKET_SMS_TASK)
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            ).all()
        )
    for row in rows:
        assert row.relayed_at is not None
        assert Job.exists(job_id(row.id or 0), connection=connection)
    return rows


def sms_jobs(engine: Engine, connection: redis.Redis) -> list[dict[str, object]]:
    return [
        {"ticket_id": row.payload["ticket_id"], "purpose": row.payload["purpose"]}
        for row in sms_job_rows(engine, connection)
    ]


def tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket).order_by(Ticket.id)).all())  # type: ignore[arg-type]


def events(engine: Engine, ticket_id: int) -> list[TicketEvent]:
    with Session(engine) as session:
        return list(session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def call(app: FastAPI, client: TestClient, twilio: TwilioSigner, settings: Settings) -> PhoneCall:
    at(app, OFFICE_HOURS)
    return PhoneCall(client, twilio, settings)


def test_greeting_offers_english_and_gathers_one_key(call: PhoneCall, settings: Settings) -> None:
    twiml = call.start()
    assert twiml.verbs == ["Gather", "Redirect"]
    gather = twiml.first("Gather")
    assert gather.attrib["input"] == "dtmf" and gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"].startswith(settings.public_base_url + "/twilio/voice?")
    assert query(gather.attrib["action"])["step"] == "welcome"
    assert twiml.redirect == gather.attrib["action"]
    says = gather.findall("Say")
    assert says[0].attrib["language"] == "cmn-CN" and "热线" in (says[0].text or "")
    assert says[1].attrib["language"] == "en-US" and "press 9" in (says[1].text or "")


def test_mandarin_speech_to_transfer_in_office_hours(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis, settings: Settings
) -> None:
    call.start()
    need = call.silence()  # no key at the greeting: Mandarin
    gather = need.first("Gather")
    assert gather.attrib["input"] == "dtmf speech"
    assert gather.attrib["language"] == "cmn-Hans-CN"
    assert "贷款" in gather.attrib["hints"].split(",")
    assert "律师" in gather.attrib["hints"].split(",")

    confirm = call.say("嗯 我们公司在渝北区 想申请一笔贷款扩大生产")
    assert confirm.step == "confirm_category"
    assert "投融资服务" in confirm.spoken and "按1" in confirm.spoken

    announced = call.press("1")
    assert announced.step == "announce_open"
    [ticket] = tickets(clean_db)
    assert ticket.category == "financing" and ticket.district_code == "yubei"
    assert ticket.channel == "voice" and ticket.state == TicketState.dispatched
    assert ticket.caller_phone == CALLER
    assert normalise(ticket.number) == ticket.number
    digits = ticket.number[2:8]
    assert " ".join(digits) in announced.spoken  # read digit by digit
    with Session(clean_db) as session:
        institution = session.get(Institution, ticket.institution_id)
        assert institution is not None
    assert institution.name_zh in announced.spoken
    assert sms_jobs(clean_db, redis_conn) == [
        {"ticket_id": ticket.id, "purpose": "voice_confirmation"}
    ]

    dial = call.press("1")
    assert dial.step == "transfer"
    dial_el = dial.first("Dial")
    assert dial_el.attrib["timeout"] == "20"
    assert dial_el.attrib["callerId"] == settings.main_number
    assert dial_el.find("Number") is not None
    assert (dial_el.find("Number").text or "") == institution.phone  # type: ignore[union-attr]

    done = call.dial_result("completed")
    assert done.verbs == ["Hangup"]
    actions = [e.action for e in events(clean_db, ticket.id or 0)]
    assert actions[:2] == ["open", "dispatch"] and "transfer" in actions


def test_english_call_uses_english_voice_recogniser_and_texts(
    call: PhoneCall, clean_db: Engine
) -> None:
    call.start()
    need = call.press("9")
    gather = need.first("Gather")
    assert gather.attrib["language"] == "en-US"
    assert "loan" in gather.attrib["hints"].split(",")
    assert all(s.attrib["language"] == "en-US" for s in gather.findall("Say"))

    confirm = call.say("we need a lawyer for a contract dispute")
    assert "legal" in confirm.spoken.lower() and "Press 1" in confirm.spoken
    place = call.press("1")
    assert place.step == "ask_place"
    assert place.first("Gather").attrib["input"] == "speech"
    assert "Jiangbei District" in place.first("Gather").attrib["hints"]
    announced = call.say("we are in Jiangbei")
    assert announced.step == "announce_open"
    [ticket] = tickets(clean_db)
    assert ticket.language == "en" and ticket.district_code == "jiangbei"
    assert ticket.category == "legal"
    assert "ticket number is" in announced.spoken
    assert ", ".join(["C Q", " ".join(ticket.number[2:8])]) in announced.spoken


def test_known_firm_district_is_not_asked_again(call: PhoneCall, clean_db: Engine) -> None:
    with Session(clean_db) as session:
        session.add(Firm(phone=CALLER, district_code="fuling"))
        session.commit()
    call.start()
    call.silence()
    call.say("想找培训机构给员工做技能培训")
    announced = call.press("1")
    assert announced.step == "announce_open"
    [ticket] = tickets(clean_db)
    assert ticket.district_code == "fuling" and ticket.category == "talent"


def test_speech_misrecognised_twice_falls_back_to_the_keypad_menu(
    call: PhoneCall, clean_db: Engine
) -> None:
    call.start()
    call.silence()
    again = call.say("呃呃呃")
    assert again.step == "ask_need"
    assert again.says[0].startswith("抱歉，没有听清")
    menu = call.silence()
    assert menu.step == "menu"
    gather = menu.first("Gather")
    assert gather.attrib["input"] == "dtmf" and gather.attrib["numDigits"] == "1"
    for name, key in (("信息服务", "1"), ("投融资服务", "2"), ("法律服务", "8")):
        assert f"{name}请按{key}" in menu.spoken
    place = call.press("5")
    assert place.step == "ask_place"
    announced = call.say("我们在九龙坡区")
    assert announced.step == "announce_open"
    [ticket] = tickets(clean_db)
    assert ticket.category == "technology" and ticket.district_code == "jiulongpo"
    assert ticket.classification["source"] == "keypad"


def test_pressing_a_key_at_the_need_prompt_opens_the_menu(call: PhoneCall) -> None:
    call.start()
    call.silence()
    assert call.press("3").step == "menu"


def test_unsure_classifier_goes_to_the_menu_and_choose_from_list(call: PhoneCall) -> None:
    call.start()
    call.silence()
    confirm = call.say("想申请贷款")
    assert confirm.step == "confirm_category"
    menu = call.press("2")
    assert menu.step == "menu"


def test_invalid_keys_reprompt_then_give_up_to_an_agent(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    call.press("1")  # to the menu
    first = call.press("*")
    assert first.step == "menu" and first.says[0].startswith("抱歉，您的按键无效")
    second = call.silence()
    assert second.step == "menu"
    queued = call.press("#")  # third failure: attempts used up, an agent takes it
    assert queued.step == "agent_queue"
    [ticket] = tickets(clean_db)
    assert ticket.category is None and ticket.state == TicketState.new
    enqueue = queued.first("Enqueue")
    assert enqueue.attrib["workflowSid"].startswith("WW")
    task = json.loads(enqueue.find("Task").text or "{}")  # type: ignore[union-attr]
    assert task["ticket"] == ticket.number and task["channel"] == "voice"
    assert "工单号" in queued.spoken


def test_menu_nine_repeats_and_zero_asks_for_an_agent(call: PhoneCall, clean_db: Engine) -> None:
    call.start()
    call.silence()
    call.press("1")
    repeated = call.press("9")
    assert repeated.step == "menu" and not repeated.says[0].startswith("抱歉")
    agent = call.press("0")
    assert agent.step == "agent_queue"
    assert tickets(clean_db)[0].category is None


def test_unanswered_transfer_goes_to_the_agent_queue_then_voicemail(
    call: PhoneCall, clean_db: Engine
) -> None:
    call.start()
    call.silence()
    call.say("公司要做产品检测 九龙坡")
    call.press("1")
    call.press("1")
    queued = call.dial_result("no-answer")
    assert queued.step == "agent_queue"
    assert "无人接听" in queued.spoken
    voicemail = call.queue_result("queue-full")
    assert voicemail.step == "voicemail"
    record = voicemail.first("Record")
    assert record.attrib["maxLength"] == "120" and record.attrib["finishOnKey"] == "#"
    assert record.attrib["recordingStatusCallback"].startswith(
        "https://hotline.example.test/twilio/recording-status?"
    )
    saved = call.record("https://api.twilio.com/rec/RE-voicemail")
    assert saved.verbs == ["Say", "Say", "Hangup"]
    [ticket] = tickets(clean_db)
    voicemails = [e for e in events(clean_db, ticket.id or 0) if e.action == "voicemail"]
    assert voicemails[0].data["recording_url"] == "https://api.twilio.com/rec/RE-voicemail"
    transfer = [e for e in events(clean_db, ticket.id or 0) if e.action == "transfer"]
    assert transfer[0].data["status"] == "no-answer"


def test_after_hours_goes_straight_to_voicemail(
    app: FastAPI, call: PhoneCall, clean_db: Engine, twilio: TwilioSigner, client: TestClient
) -> None:
    at(app, AFTER_HOURS)
    call.start()
    call.silence()
    call.say("想找律师 合同纠纷 江北区")
    voicemail = call.press("1")
    assert voicemail.step == "voicemail"
    assert "不在办公时间" in voicemail.spoken
    assert voicemail.verbs == ["Say", "Say", "Say", "Record", "Redirect"]
    empty = call.silence()  # nothing recorded: Twilio goes on to the Redirect
    assert empty.verbs == ["Say", "Hangup"]
    [ticket] = tickets(clean_db)
    with Session(clean_db) as session:
        institution = session.get(Institution, ticket.institution_id)
    # Nobody is open at night: the nearest qualified institution still gets the case (for the
    # morning), not the municipal platform.
    assert institution is not None and institution.tier != "municipal"
    # The recording status callback attaches the final recording to the ticket.
    response = twilio.post(
        client,
        "/twilio/recording-status?flow=main&step=voicemail",
        {
            "CallSid": call.sid,
            "AccountSid": "AC" + "0" * 32,
            "RecordingSid": "RE" + "9" * 32,
            "RecordingUrl": "https://api.twilio.com/rec/RE9",
            "RecordingStatus": "completed",
            "RecordingDuration": "9",
        },
    )
    assert response.status_code == 200
    recordings = [e for e in events(clean_db, ticket.id or 0) if e.action == "recording"]
    assert recordings and recordings[0].data["recording_url"] == "https://api.twilio.com/rec/RE9"


def test_silence_after_the_ticket_is_announced_says_goodbye(call: PhoneCall) -> None:
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    bye = call.silence()
    assert bye.verbs == ["Say", "Hangup"]


def test_a_complaint_on_the_main_line_opens_a_complaint(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    noted = call.say("我要投诉，你们推荐的机构一直没人回电话")
    assert noted.verbs[-1] == "Hangup"
    [ticket] = tickets(clean_db)
    assert ticket.kind == TicketKind.complaint and ticket.institution_id is None
    assert sms_jobs(clean_db, redis_conn) == [{"ticket_id": ticket.id, "purpose": "complaint_ack"}]


def test_the_confirmation_sms_job_sends_the_five_publics_in_short(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    [ticket] = tickets(clean_db)
    [row] = sms_job_rows(clean_db, redis_conn)
    assert run_outbox_job(row.id or 0) == "queued"
    assert run_outbox_job(row.id or 0) == "already done: queued"
    with Session(clean_db) as session:
        [message] = session.exec(select(OutboundMessage)).all()
        institution = session.get(Institution, ticket.institution_id)
    assert institution is not None
    assert message.to_number == CALLER and message.ticket_id == ticket.id
    assert ticket.number in message.body and institution.phone in message.body
    for label in ("服务：", "流程：", "标准：", "收费：", "时间："):
        assert label in message.body


def test_opted_out_caller_gets_no_confirmation_sms(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    with Session(clean_db) as session:
        session.add(Firm(phone=CALLER, sms_opted_out=True))
        session.commit()
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    [row] = sms_job_rows(clean_db, redis_conn)
    assert run_outbox_job(row.id or 0) == "suppressed"


def test_call_state_is_kept_per_call_sid(call: PhoneCall, clean_db: Engine) -> None:
    call.start()
    call.silence()
    with Session(clean_db) as session:
        state = session.get(DialogueState, f"call:{call.sid}")
        assert state is not None
        assert state.flow == "main" and state.data["step"] == "ask_need"
        assert state.phone == CALLER


def test_twiml_is_parsed_with_only_known_verbs(call: PhoneCall) -> None:
    twiml: Twiml = call.start()
    allowed = {"Gather", "Say", "Redirect", "Record", "Dial", "Enqueue", "Hangup", "Pause"}
    assert set(twiml.verbs) <= allowed


def test_the_worker_runs_the_confirmation_job(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    worker = SimpleWorker(
        [queue(redis_conn, "default")], connection=redis_conn, serializer=JSONSerializer
    )
    worker.work(burst=True)
    with Session(clean_db) as session:
        purposes = [m.purpose for m in session.exec(select(OutboundMessage)).all()]
    assert "voice_confirmation" in purposes


def test_a_redis_outage_when_the_ticket_opens_loses_no_confirmation_sms(
    settings: Settings, clean_db: Engine, twilio: TwilioSigner, tmp_path: Path
) -> None:
    """The confirmation is written with the ticket, in its transaction: Redis being down at
    that moment delays the text until Redis is back, and it is then sent exactly once."""
    own_redis = EmbeddedRedis(tmp_path / "redis")
    own_redis.start()
    try:
        local_settings = settings.model_copy(update={"redis_url": own_redis.url})
        app = create_app(local_settings)
        at(app, OFFICE_HOURS)
        own_redis.stop()
        with TestClient(app) as client:
            call = PhoneCall(client, twilio, settings)
            call.start()
            call.silence()
            call.say("想申请贷款 渝北")
            announced = call.press("1")
        assert announced.step == "announce_open"  # the caller heard the number regardless
        [ticket] = tickets(clean_db)
        with Session(clean_db) as session:
            [row] = session.exec(
                select(OutboxMessage).where(OutboxMessage.task == TICKET_SMS_TASK)
            ).all()
            assert session.exec(select(OutboundMessage)).all() == []
        assert row.ticket_id == ticket.id and row.relayed_at is None
        assert row.payload["purpose"] == "voice_confirmation"

        own_redis.start()
        connection = redis.Redis.from_url(own_redis.url)
        factory = session_factory_for(clean_db)
        assert relay_outbox(factory, connection) >= 1
        worker = SimpleWorker(
            [queue(connection, "default")], connection=connection, serializer=JSONSerializer
        )
        worker.work(burst=True)
        assert relay_outbox(factory, connection) == 0
        with Session(clean_db) as session:
            sent = session.exec(
                select(OutboundMessage).where(OutboundMessage.to_number == CALLER)
            ).all()
            done = session.get(OutboxMessage, row.id)
        assert [(m.ticket_id, m.purpose, m.to_number) for m in sent] == [
            (ticket.id, "voice_confirmation", CALLER)
        ]
        assert done is not None and done.done_at is not None and done.result == "queued"
        connection.close()
    finally:
        own_redis.stop()
