"""Two-way SMS: keywords in both languages, the district follow-up, status, opt-out honoured."""

from __future__ import annotations

import itertools

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hotline.settings import Settings
from ivr_flows import jobs
from ivr_flows.models import DialogueState
from ivr_flows.segments import segments
from tests.conftest import TwilioSigner, sms_params, text_hotline
from tickets.models import Firm, OutboundMessage, Ticket, TicketKind, TicketState

ME = "+8613800138000"
SOMEONE_ELSE = "+8613900139000"
_sids = itertools.count(1)


class Texter:
    def __init__(self, client: TestClient, twilio: TwilioSigner, settings: Settings) -> None:
        self.client, self.twilio, self.settings = client, twilio, settings

    def send(self, body: str, sender: str = ME, **extra: str) -> str:
        params = sms_params(
            body, sid=f"SM{next(_sids):032d}", sender=sender, settings=self.settings
        )
        params.update(extra)
        reply = text_hotline(self.client, self.twilio, params)
        assert segments(reply) <= 3, reply
        return reply


@pytest.fixture
def phone(client: TestClient, twilio: TwilioSigner, settings: Settings) -> Texter:
    return Texter(client, twilio, settings)


def tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket).order_by(Ticket.id)).all())  # type: ignore[arg-type]


def firm(engine: Engine, number: str = ME) -> Firm | None:
    with Session(engine) as session:
        return session.exec(select(Firm).where(Firm.phone == number)).first()


def test_a_need_without_a_district_asks_for_it_then_routes(phone: Texter, clean_db: Engine) -> None:
    asked = phone.send("想申请一笔贷款扩大生产")
    [ticket] = tickets(clean_db)
    assert ticket.state == TicketState.new and ticket.category == "financing"
    assert ticket.number in asked and "区县" in asked
    with Session(clean_db) as session:
        state = session.get(DialogueState, f"sms:{ME}")
        assert state is not None and state.data["awaiting"] == "district"
    routed = phone.send("渝北区")
    [ticket] = tickets(clean_db)
    assert ticket.state == TicketState.dispatched and ticket.district_code == "yubei"
    assert ticket.number in routed and "承办" in routed
    assert firm(clean_db).district_code == "yubei"  # type: ignore[union-attr]
    with Session(clean_db) as session:
        assert session.get(DialogueState, f"sms:{ME}") is None
    # Next time the profile knows the district: no question.
    again = phone.send("公司想招聘技术工人")
    assert "承办" in again


def test_english_district_question_and_answer(phone: Texter, clean_db: Engine) -> None:
    asked = phone.send("We need a lawyer for a contract dispute")
    assert "district" in asked.lower()
    routed = phone.send("Jiangbei")
    assert "Served by" in routed
    assert tickets(clean_db)[0].district_code == "jiangbei"


def test_no_district_twice_goes_to_the_municipal_platform(phone: Texter, clean_db: Engine) -> None:
    phone.send("想申请贷款")
    again = phone.send("不知道")
    assert "区县" in again
    routed = phone.send("还是不知道")
    assert "承办" in routed
    [ticket] = tickets(clean_db)
    assert ticket.state == TicketState.dispatched and ticket.district_code is None


def test_a_new_need_instead_of_the_district_is_a_new_case(phone: Texter, clean_db: Engine) -> None:
    phone.send("想申请贷款")
    phone.send("另外我们还要找律师看合同 渝中区")
    found = tickets(clean_db)
    assert [t.category for t in found] == ["financing", "legal"]
    assert found[1].state == TicketState.dispatched


@pytest.mark.parametrize(
    ("keyword", "language"), [("查询", "zh"), ("CX", "zh"), ("STATUS", "en"), ("status", "en")]
)
def test_status_only_to_the_phone_that_opened_it(
    phone: Texter, clean_db: Engine, keyword: str, language: str
) -> None:
    phone.send("想申请贷款 渝北区")
    [ticket] = tickets(clean_db)
    mine = phone.send(f"{keyword} {ticket.number}")
    assert ticket.number in mine
    assert ("已转办" in mine) if language == "zh" else ("sent to the institution" in mine)
    theirs = phone.send(f"{keyword} {ticket.number}", sender=SOMEONE_ELSE)
    assert ticket.number not in theirs
    assert ("未找到" in theirs) if language == "zh" else ("No such ticket" in theirs)


def test_status_without_a_number_is_the_latest_case_and_typos_are_caught(
    phone: Texter, clean_db: Engine
) -> None:
    phone.send("想申请贷款 渝北区")
    [ticket] = tickets(clean_db)
    assert ticket.number in phone.send("查询")
    digits = ticket.number[2:-2]
    typo = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    assert "未找到" in phone.send(f"查询 {typo}{ticket.number[-1]}")


def test_complaint_keyword_opens_a_linked_complaint(phone: Texter, clean_db: Engine) -> None:
    phone.send("想申请贷款 渝北区")
    [service] = tickets(clean_db)
    reply = phone.send(f"投诉 工单{service.number}的机构一直没联系我")
    complaint = tickets(clean_db)[-1]
    assert complaint.kind == TicketKind.complaint and complaint.institution_id is None
    assert complaint.related_ticket_id == service.id
    assert complaint.number in reply and "监督员" in reply


def test_help_in_both_languages(phone: Texter) -> None:
    assert "查询" in phone.send("帮助")
    assert "STATUS" in phone.send("HELP")


@pytest.mark.parametrize("word", ["STOP", "unsubscribe", "退订", "TD", "ＴＤ", "Stop."])
def test_opt_out_keywords_are_recorded(phone: Texter, clean_db: Engine, word: str) -> None:
    reply = phone.send(word)
    assert reply  # a one-time confirmation
    assert firm(clean_db).sms_opted_out is True  # type: ignore[union-attr]


def test_twilio_handled_opt_out_is_recorded_without_a_second_reply(
    phone: Texter, clean_db: Engine
) -> None:
    assert phone.send("STOP", OptOutType="STOP") == ""
    assert firm(clean_db).sms_opted_out is True  # type: ignore[union-attr]
    assert phone.send("START", OptOutType="START") == ""
    assert firm(clean_db).sms_opted_out is False  # type: ignore[union-attr]


def test_a_word_starting_like_a_keyword_is_a_need(phone: Texter, clean_db: Engine) -> None:
    phone.send("TD bank loan for our shop in Yubei")
    assert firm(clean_db).sms_opted_out is False  # type: ignore[union-attr]
    assert len(tickets(clean_db)) == 1


def test_opt_out_is_honoured_by_every_later_message(phone: Texter, clean_db: Engine) -> None:
    phone.send("退订")
    # A need still opens a case, but no reply goes out.
    assert phone.send("想申请贷款 渝北区") == ""
    [ticket] = tickets(clean_db)
    assert ticket.state == TicketState.dispatched
    assert phone.send(f"查询 {ticket.number}") == ""
    # Messages the hotline sends on its own (a call's confirmation) are suppressed too.
    assert jobs.send_ticket_sms(ticket.id or 0, "voice_confirmation") == "suppressed"
    with Session(clean_db) as session:
        sent = session.exec(select(OutboundMessage).order_by(OutboundMessage.id)).all()  # type: ignore[arg-type]
        # Only the confirmation of the opt-out itself went out; the rest was withheld.
        assert [(m.purpose, m.status) for m in sent] == [
            ("sms_reply", "queued"),
            ("voice_confirmation", "suppressed"),
        ]
        assert "退订" in sent[0].body or "订阅" in sent[0].body
    # 订阅 re-subscribes.
    assert "恢复订阅" in phone.send("订阅")
    assert firm(clean_db).sms_opted_out is False  # type: ignore[union-attr]
    assert ticket.number in phone.send(f"查询 {ticket.number}")
