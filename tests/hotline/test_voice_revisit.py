"""The revisit call (客户回访): placed by the tickets service, answered through the flow,
recorded with tickets' record_revisit / revisit_no_answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.settings import Settings
from kb.models import Institution, InstitutionCategory, Tier
from tests.conftest import TwilioSigner
from tests.hotline.test_voice_main import at
from tests.ivr_flows.phone import OFFICE_HOURS, PhoneCall
from tickets.models import Channel, OutboundCall, Revisit, Role, Ticket, TicketState
from tickets.repository import ticket_repository
from tickets.service import Actor, ticket_service

FIRM = "+8613800138000"
AGENT = Actor("user:agent-li", Role.agent)
RESOLVED = OFFICE_HOURS - timedelta(days=3)


@pytest.fixture(autouse=True)
def _empty_queues(redis_conn: redis.Redis) -> Iterator[None]:
    redis_conn.flushdb()
    yield


def resolved_and_called(engine: Engine, language: str = "zh") -> tuple[Ticket, str]:
    """A case served and resolved, whose revisit call the tickets service has just placed."""
    with Session(engine, expire_on_commit=False) as session:
        institution = session.exec(
            select(Institution)
            .join(InstitutionCategory, col(InstitutionCategory.institution_id) == Institution.id)
            .where(InstitutionCategory.category_key == "financing")
            .where(Institution.tier == Tier.institution)
            .order_by(col(Institution.id))
        ).first()
        assert institution is not None
        staff = Actor(f"user:staff-{institution.code}", Role.institution, institution.id)
        firm = ticket_service.find_or_create_firm(session, FIRM, language=language)
        ticket = ticket_service.open_ticket(
            session,
            actor=AGENT,
            channel=Channel.voice,
            caller_phone=FIRM,
            summary="想申请贷款",
            language=language,
            category="financing",
            district_code="yubei",
            firm=firm,
            now=RESOLVED,
        )
        ticket_service.dispatch(
            session, ticket, actor=AGENT, institution_id=institution.id, now=RESOLVED
        )
        ticket_service.accept(session, ticket, actor=staff, now=RESOLVED)
        ticket_service.resolve(session, ticket, actor=staff, now=RESOLVED)
        assert ticket.id is not None
        row = ticket_repository.open_revisit(session, ticket.id)
        assert row is not None
        outcome = ticket_service.place_revisit_call(session, row, attempt=1, now=OFFICE_HOURS)
        assert outcome.result == "called", outcome
        call = session.exec(select(OutboundCall).where(OutboundCall.ticket_id == ticket.id)).one()
        session.commit()
        return ticket, call.url


def reload(engine: Engine, ticket: Ticket) -> tuple[Ticket, Revisit]:
    with Session(engine) as session:
        fresh = session.get(Ticket, ticket.id)
        row = session.exec(select(Revisit).where(Revisit.ticket_id == ticket.id)).one()
        assert fresh is not None
        return fresh, row


@pytest.fixture
def phone(app: FastAPI, client: TestClient, twilio: TwilioSigner, settings: Settings):  # type: ignore[no-untyped-def]
    at(app, OFFICE_HOURS)

    def dial(url: str) -> PhoneCall:
        call = PhoneCall(client, twilio, settings, path=url, direction="outbound-api")
        return call

    return dial


def test_need_met_and_satisfied_closes_the_case(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db)
    assert url.endswith(f"/twilio/revisit?ticket={ticket.number}")
    call: PhoneCall = phone(url)
    intro = call.start(AnsweredBy="human")
    assert intro.step == "intro"
    assert "回访" in intro.spoken and " ".join(ticket.number[2:8]) in intro.spoken
    assert "投融资服务" in intro.spoken
    assert f"ticket={ticket.number}" in intro.action  # the ticket rides along every step
    assert call.press("1").step == "ask_satisfaction"
    comment = call.press("5")
    assert comment.step == "ask_comment" and comment.verbs[-2:] == ["Record", "Redirect"]
    thanks = call.record("https://api.twilio.com/rec/RE-comment")
    assert thanks.verbs[-1] == "Hangup" and "感谢" in thanks.spoken
    fresh, row = reload(clean_db, ticket)
    assert fresh.state == TicketState.closed
    assert fresh.revisit_outcome == "met" and fresh.satisfaction == 5
    assert row.recording_url == "https://api.twilio.com/rec/RE-comment"
    # The end of the call changes nothing more.
    call.status("completed")
    assert reload(clean_db, ticket)[0].state == TicketState.closed


def test_need_not_met_reopens_the_case(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db)
    call: PhoneCall = phone(url)
    call.start(AnsweredBy="human")
    call.say("没有解决")
    call.say("两分")
    call.silence()  # no comment: Twilio goes on to the Redirect
    fresh, row = reload(clean_db, ticket)
    assert fresh.state == TicketState.reopened
    assert fresh.revisit_outcome == "not_met" and fresh.satisfaction == 2
    assert row.recording_url is None


def test_english_revisit(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db, language="en")
    call: PhoneCall = phone(url)
    intro = call.start(AnsweredBy="human")
    assert "Was your need met?" in intro.spoken
    assert intro.first("Gather").attrib["language"] == "en-US"
    call.say("partly")
    call.press("4")
    call.silence()
    fresh, _ = reload(clean_db, ticket)
    assert fresh.revisit_outcome == "partly" and fresh.satisfaction == 4


def test_answering_machine_is_no_answer(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db)
    call: PhoneCall = phone(url)
    twiml = call.start(AnsweredBy="machine_start")
    assert twiml.verbs == ["Hangup"]
    fresh, row = reload(clean_db, ticket)
    assert fresh.state == TicketState.revisit_pending
    assert row.unanswered == 1 and row.next_attempt_at is not None
    call.status("completed")
    assert reload(clean_db, ticket)[1].unanswered == 1


def test_silence_twice_is_no_answer(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db)
    call: PhoneCall = phone(url)
    call.start(AnsweredBy="human")
    again = call.silence()
    assert again.step == "intro" and "没有听清" in again.spoken
    bye = call.silence()
    assert bye.verbs == ["Hangup"]
    _, row = reload(clean_db, ticket)
    assert row.unanswered == 1 and row.outcome is None


def test_hanging_up_after_the_first_answer_keeps_it(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    ticket, url = resolved_and_called(clean_db)
    call: PhoneCall = phone(url)
    call.start(AnsweredBy="human")
    call.press("1")
    call.status("completed")
    fresh, _ = reload(clean_db, ticket)
    assert fresh.state == TicketState.closed and fresh.revisit_outcome == "met"
    assert fresh.satisfaction is None


def test_an_unanswered_call_reported_by_status_is_no_answer(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    ticket, _ = resolved_and_called(clean_db)
    call = PhoneCall(client, twilio, settings, direction="outbound-api")
    body = {**call.base(), "CallStatus": "no-answer", "SequenceNumber": "1"}
    response = twilio.post(client, f"/twilio/call-status?ticket={ticket.number}", body)
    assert response.status_code == 200
    _, row = reload(clean_db, ticket)
    assert row.unanswered == 1


def test_an_unknown_ticket_apologises_and_hangs_up(phone, clean_db: Engine) -> None:  # type: ignore[no-untyped-def]
    call: PhoneCall = phone("/twilio/revisit?ticket=CQ2611300001-X")
    twiml = call.start(AnsweredBy="human")
    assert twiml.verbs == ["Say", "Hangup"]
