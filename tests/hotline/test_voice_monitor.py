"""The monitoring line (监督电话): complaint tickets for supervisors, linked to a checked ticket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hotline.settings import Settings
from ivr_flows.speech import KEYPAD
from tests.conftest import TwilioSigner
from tests.hotline.test_voice_main import at, events, sms_jobs, tickets
from tests.ivr_flows.phone import OFFICE_HOURS, PhoneCall
from tickets.models import Channel, Ticket, TicketKind
from tickets.service import Actor, ticket_service


@pytest.fixture(autouse=True)
def _empty_queues(redis_conn: redis.Redis) -> Iterator[None]:
    redis_conn.flushdb()
    yield


@pytest.fixture
def line(app: FastAPI, client: TestClient, twilio: TwilioSigner, settings: Settings) -> PhoneCall:
    at(app, OFFICE_HOURS)
    return PhoneCall(client, twilio, settings, path="/twilio/monitor", to=settings.monitor_number)


@pytest.fixture
def earlier(clean_db: Engine) -> Ticket:
    """A service ticket opened earlier, which the caller complains about."""
    with Session(clean_db, expire_on_commit=False) as session:
        ticket = ticket_service.open_ticket(
            session,
            actor=Actor("system:test"),
            channel=Channel.sms,
            caller_phone="+8613800138000",
            summary="想申请贷款",
            language="zh",
            category="financing",
            district_code="yubei",
            now=OFFICE_HOURS,
        )
        session.commit()
        return ticket


def keyed(number: str) -> str:
    """A ticket number as keyed: its digits, then the key carrying its check letter."""
    digits, letter = number[2:-2], number[-1]
    key = next(k for k, letters in KEYPAD.items() if letter in letters)
    return digits + key + "#"


def test_keyed_ticket_number_and_recorded_complaint(
    line: PhoneCall, earlier: Ticket, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    welcome = line.start()
    assert "监督电话" in welcome.spoken
    ask = line.silence()
    assert ask.step == "ask_ticket"
    gather = ask.first("Gather")
    assert gather.attrib["finishOnKey"] == "#" and gather.attrib["input"] == "dtmf speech"
    record = line.press(keyed(earlier.number))
    assert record.step == "record_complaint"
    assert " ".join(earlier.number[2:8]) in record.spoken
    noted = line.record("https://api.twilio.com/rec/RE-complaint", duration="40")
    assert noted.verbs[-1] == "Hangup"
    complaint = next(t for t in tickets(clean_db) if t.id != earlier.id)
    assert complaint.kind == TicketKind.complaint and complaint.channel == Channel.monitor
    assert complaint.related_ticket_id == earlier.id
    assert complaint.institution_id is None
    assert " ".join(complaint.number[2:8]) in noted.spoken
    recording = [e for e in events(clean_db, complaint.id or 0) if e.action == "voicemail"]
    assert recording[0].data["recording_url"] == "https://api.twilio.com/rec/RE-complaint"
    assert sms_jobs(clean_db, redis_conn) == [
        {"ticket_id": complaint.id, "purpose": "complaint_ack"}
    ]


def test_a_misheard_digit_is_caught_and_asked_again(
    line: PhoneCall, earlier: Ticket, clean_db: Engine
) -> None:
    line.start()
    line.silence()
    keys = keyed(earlier.number)
    wrong = keys[:3] + str((int(keys[3]) + 1) % 10) + keys[4:]
    again = line.press(wrong)
    assert again.step == "ask_ticket" and "核对不上" in again.spoken
    said = line.say(f"我的工单号是 {earlier.number}")
    assert said.step == "record_complaint"


def test_spoken_number_in_chinese_digits(line: PhoneCall, earlier: Ticket) -> None:
    words = "零一二三四五六七八九"
    spoken = "".join(words[int(d)] for d in earlier.number[2:-2]) + " " + earlier.number[-1]
    line.start()
    line.press("9")
    twiml = line.say(spoken)
    assert twiml.step == "record_complaint"


def test_without_a_number_the_complaint_is_not_linked(line: PhoneCall, clean_db: Engine) -> None:
    line.start()
    line.press("9")  # English
    ask = line.post(line.last.action if line.last else "", Digits="")
    assert ask.step == "record_complaint"
    assert "complaint" in ask.spoken.lower()
    line.record()
    [complaint] = tickets(clean_db)
    assert complaint.related_ticket_id is None and complaint.language == "en"


def test_two_bad_numbers_then_the_complaint_goes_on_unlinked(
    line: PhoneCall, clean_db: Engine
) -> None:
    line.start()
    line.silence()
    line.press("12345678901#")
    skipped = line.press("12345678901#")
    assert skipped.step == "record_complaint"
    assert "不关联工单" in skipped.spoken


def test_hanging_up_before_recording_leaves_a_supervisor_callback(
    line: PhoneCall, clean_db: Engine
) -> None:
    line.start()
    line.silence()
    line.status("completed")
    [ticket] = tickets(clean_db)
    assert ticket.kind == TicketKind.complaint and ticket.channel == Channel.monitor
    assert ticket.classification["callback"] is True


def test_an_empty_recording_is_asked_once_more(line: PhoneCall, clean_db: Engine) -> None:
    line.start()
    line.silence()
    line.post(line.last.action if line.last else "", Digits="")
    again = line.silence()  # nothing recorded
    assert again.step == "record_complaint" and "没有录到" in again.spoken
    bye = line.silence()
    assert bye.verbs[-1] == "Hangup"
    assert tickets(clean_db) == []
