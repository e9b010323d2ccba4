"""The client revisit with a controlled clock: when calls are placed, the retries on later
days, the SMS survey with its signed one-time link, and what each outcome does."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from kb.db import as_utc
from kb.models import Institution
from tests.tickets.conftest import AGENT, SYSTEM, dispatched, local, staff_of
from tickets import revisit, service, telephony
from tickets.errors import InvalidRequest
from tickets.metrics import quality_inputs
from tickets.models import (
    Closure,
    Firm,
    OutboundCall,
    OutboundMessage,
    OutboxMessage,
    Revisit,
    Ticket,
    TicketState,
)
from tickets.service import ticket_service
from tickets.tasks import run_outbox_job

RESOLVED_AT = local(2026, 12, 2, 15)  # Wednesday 15:00


def _resolved(session: Session, institution: Institution, **kw: object) -> Ticket:
    ticket = dispatched(session, institution, now=RESOLVED_AT - timedelta(hours=5), **kw)  # type: ignore[arg-type]
    staff = staff_of(institution)
    service.accept(session, ticket, actor=staff, now=RESOLVED_AT - timedelta(hours=4))
    service.resolve(session, ticket, actor=staff, note="done", now=RESOLVED_AT)
    session.commit()
    return ticket


def _outbox(session: Session, task: str) -> list[OutboxMessage]:
    session.expire_all()
    rows = list(
        session.exec(
            select(OutboxMessage).where(OutboxMessage.task == task).order_by(col(OutboxMessage.id))
        ).all()
    )
    session.commit()  # end the read: on SQLite the job's session needs the write lock
    return rows


def _run(session: Session, row: OutboxMessage, at: datetime) -> str:
    row_id = row.id or 0
    session.commit()  # end whatever the reads above began
    result = run_outbox_job(row_id, now=at.isoformat())
    session.expire_all()
    return result


def _revisit(session: Session, ticket: Ticket) -> Revisit:
    row = session.exec(select(Revisit).where(Revisit.ticket_id == ticket.id)).one()
    session.commit()
    return row


def test_the_first_call_is_due_24_working_hours_after_resolution(
    session: Session, bank: Institution
) -> None:
    ticket = _resolved(session, bank)
    (call,) = _outbox(session, "revisit_call")
    # Wed 15:00 + 24 working hours (7 a day): 2.5 + 7 + 7 + 7 = 23.5 by Monday, so Tue 09:30.
    assert as_utc(call.run_at) == local(2026, 12, 8, 9, 30)  # type: ignore[arg-type]
    assert _run(session, call, local(2026, 12, 8, 9, 30)) == "called"
    session.refresh(ticket)
    assert ticket.state == TicketState.revisit_pending
    placed = session.exec(select(OutboundCall)).one()
    assert placed.url == f"https://hotline.example.test/twilio/revisit?ticket={ticket.number}"
    assert (placed.to_number, placed.status, placed.purpose) == (
        ticket.caller_phone,
        "queued",
        "revisit",
    )
    session.commit()
    # Delivered twice, it calls once.
    assert _run(session, call, local(2026, 12, 8, 9, 31)).startswith("already done")
    assert len(session.exec(select(OutboundCall)).all()) == 1
    session.commit()


def test_calls_only_inside_the_window(session: Session, bank: Institution) -> None:
    _resolved(session, bank)
    (call,) = _outbox(session, "revisit_call")
    # Delivered late at night (say, after a Redis outage): moved to 09:00 next working day.
    assert _run(session, call, local(2026, 12, 8, 21)).startswith("outside the call window")
    assert session.exec(select(OutboundCall)).all() == []
    moved = _outbox(session, "revisit_call")[-1]
    assert as_utc(moved.run_at) == local(2026, 12, 9, 9)  # type: ignore[arg-type]
    policy = ticket_service.policy.revisit
    calendar = ticket_service.calendar
    assert revisit.may_call(calendar, policy, local(2026, 12, 9, 19, 59))
    assert not revisit.may_call(calendar, policy, local(2026, 12, 9, 20))
    assert not revisit.may_call(calendar, policy, local(2026, 12, 9, 8, 59))
    assert not revisit.may_call(calendar, policy, local(2026, 12, 12, 10))  # a Saturday
    assert revisit.may_call(calendar, policy, local(2026, 10, 10, 10))  # a make-up Saturday


def test_unanswered_calls_are_retried_on_later_days_then_an_sms_survey(
    session: Session, bank: Institution
) -> None:
    ticket = _resolved(session, bank)
    moments = [
        local(2026, 12, 8, 9, 30),  # Tuesday
        local(2026, 12, 9, 9, 40),  # Wednesday
        local(2026, 12, 10, 9, 50),  # Thursday
        local(2026, 12, 11, 19, 50),  # Friday evening
    ]
    for attempt, moment in enumerate(moments, start=1):
        call = _outbox(session, "revisit_call")[-1]
        assert call.payload["attempt"] == attempt
        assert _run(session, call, moment) == "called"
        service.revisit_no_answer(session, ticket, actor=SYSTEM, now=moment + timedelta(minutes=1))
        session.commit()
        # The same unanswered attempt reported again (the timeout job) counts once.
        timeout = _outbox(session, "revisit_answer_timeout")[-1]
        assert _run(session, timeout, moment + timedelta(hours=2)).startswith("obsolete")
        row = _revisit(session, ticket)
        assert (row.attempts, row.unanswered) == (attempt, attempt)
        if attempt < 4:
            retry = _outbox(session, "revisit_call")[-1]
            assert retry.payload["attempt"] == attempt + 1
            # Another day, same time of day.
            assert calendar_day(retry.run_at) > calendar_day(moment)  # type: ignore[arg-type]
    assert len(session.exec(select(OutboundCall)).all()) == 4
    session.commit()
    # 1 call + 3 retries went unanswered: no fifth call, an SMS survey instead.
    assert len(_outbox(session, "revisit_call")) == 4
    (survey,) = _outbox(session, "revisit_survey_sms")
    assert _run(session, survey, moments[-1] + timedelta(minutes=2)).startswith("survey queued")
    message = session.exec(select(OutboundMessage)).one()
    assert message.to_number == ticket.caller_phone and message.purpose == "revisit_survey"
    token = message.body.split("token=")[1]
    session.commit()
    found, row = ticket_service.redeem_survey(session, token, now=moments[-1] + timedelta(days=1))
    assert found.id == ticket.id and row.ticket_id == ticket.id
    session.commit()

    (expiry,) = _outbox(session, "revisit_survey_expired")
    # Valid 3 working days from Friday 19:51: Wednesday 16 December 17:30 at the latest.
    assert local(2026, 12, 16, 9) < as_utc(expiry.run_at) <= local(2026, 12, 16, 17, 30)  # type: ignore[arg-type]
    assert _run(session, expiry, local(2026, 12, 17, 9)) == "closed unreachable"
    session.refresh(ticket)
    assert ticket.state == TicketState.closed
    assert ticket.closure == Closure.revisit_unreachable and ticket.revisit_outcome == "unreachable"
    session.commit()
    with pytest.raises(revisit.InvalidSurveyToken, match="already"):
        ticket_service.redeem_survey(session, token, now=moments[-1] + timedelta(days=1))


def calendar_day(moment: datetime) -> object:
    return ticket_service.calendar.local(as_utc(moment)).date()


def test_a_friday_evening_retry_goes_to_monday_inside_the_window() -> None:
    policy = ticket_service.policy.revisit
    retry = revisit.retry_call_at(ticket_service.calendar, policy, local(2026, 12, 11, 19, 55))
    assert retry == local(2026, 12, 14, 19, 30)
    early = revisit.retry_call_at(ticket_service.calendar, policy, local(2026, 12, 14, 7))
    assert early == local(2026, 12, 15, 9)


def test_an_opted_out_firm_gets_no_survey_and_closes_unreachable(
    session: Session, bank: Institution
) -> None:
    ticket = _resolved(session, bank, phone="+8613700137000")
    firm = session.exec(select(Firm).where(Firm.phone == "+8613700137000")).one()
    firm.sms_opted_out = True
    session.add(firm)
    session.commit()
    row = _revisit(session, ticket)
    row.attempts = row.unanswered = 3
    session.add(row)
    ticket.state = TicketState.revisit_pending
    session.add(ticket)
    session.commit()
    row.attempts = 4
    session.add(row)
    session.commit()
    service.revisit_no_answer(session, ticket, actor=SYSTEM, now=local(2026, 12, 11, 10))
    assert ticket.state == TicketState.closed and ticket.closure == Closure.revisit_unreachable
    assert _outbox(session, "revisit_survey_sms") == []
    # And any SMS to it is recorded, suppressed, not sent.
    sent = telephony.current().sms_firm(session, firm, to=firm.phone, body="x", purpose="test")
    assert sent.status == "suppressed"


@pytest.mark.parametrize(
    ("outcome", "satisfaction", "state", "closure"),
    [
        ("met", 5, TicketState.closed, Closure.revisit_met),
        ("met", 3, TicketState.closed, Closure.revisit_met),
        ("met", 2, TicketState.reopened, None),
        ("partly", 4, TicketState.reopened, None),
        ("not_met", 1, TicketState.reopened, None),
        ("refused", None, TicketState.closed, Closure.revisit_refused),
    ],
)
def test_revisit_outcomes(
    session: Session,
    bank: Institution,
    outcome: str,
    satisfaction: int | None,
    state: TicketState,
    closure: Closure | None,
) -> None:
    ticket = _resolved(session, bank)
    service.record_revisit(
        session,
        ticket,
        actor=AGENT,
        outcome=outcome,
        satisfaction=satisfaction,
        comment="银行只打了一次电话就没下文了",
        recording_url="https://example.test/rec/1.mp3",
        now=local(2026, 12, 8, 10),
    )
    assert ticket.state == state and ticket.closure == closure
    assert ticket.revisit_outcome == outcome and ticket.satisfaction == satisfaction
    row = _revisit(session, ticket)
    assert row.outcome == outcome and row.completed_by == AGENT.name
    assert row.recording_url == "https://example.test/rec/1.mp3"
    notices = _outbox(session, "notify_institution")
    if state == TicketState.reopened:
        assert ticket.reopen_count == 1
        (notice,) = notices
        window = session.get_one(Institution, notice.payload["institution_id"])
        assert window.tier.value == "district_window"
        assert "银行只打了一次电话就没下文了" in notice.payload["text"]
    else:
        assert notices == []


def test_bad_outcomes_are_refused(session: Session, bank: Institution) -> None:
    ticket = _resolved(session, bank)
    with pytest.raises(InvalidRequest, match="unknown revisit outcome"):
        service.record_revisit(session, ticket, actor=AGENT, outcome="happy")
    with pytest.raises(InvalidRequest, match="1 to 5"):
        service.record_revisit(session, ticket, actor=AGENT, outcome="met", satisfaction=6)
    assert ticket.state == TicketState.resolved


def test_survey_tokens_are_signed_and_expire() -> None:
    secret = revisit.derive_secret("settings secret")
    expires = local(2026, 12, 16, 17)
    token = revisit.make_survey_token(secret, ticket_id=7, revisit_id=3, expires_at=expires)
    claim = revisit.verify_survey_token(secret, token, now=expires - timedelta(seconds=1))
    assert (claim.ticket_id, claim.revisit_id) == (7, 3)
    forged = token.replace("7.3.", "8.3.", 1)
    with pytest.raises(revisit.InvalidSurveyToken, match="signature"):
        revisit.verify_survey_token(secret, forged, now=expires - timedelta(days=1))
    with pytest.raises(revisit.InvalidSurveyToken, match="expired"):
        revisit.verify_survey_token(secret, token, now=expires)
    with pytest.raises(revisit.InvalidSurveyToken, match="signature"):
        revisit.verify_survey_token(revisit.derive_secret("other"), token, now=expires)
    with pytest.raises(revisit.InvalidSurveyToken, match="malformed"):
        revisit.verify_survey_token(secret, "nonsense", now=expires)


def test_quality_inputs_for_routing(
    session: Session, bank: Institution, other_bank: Institution
) -> None:
    for institution, outcome, score in [
        (bank, "met", 5),
        (bank, "partly", 3),
        (bank, "refused", None),
        (other_bank, "not_met", 1),
    ]:
        ticket = _resolved(session, institution)
        service.record_revisit(
            session,
            ticket,
            actor=AGENT,
            outcome=outcome,
            satisfaction=score,
            now=local(2026, 12, 8, 10),
        )
    unreachable = _resolved(session, other_bank)
    service.record_revisit(session, unreachable, actor=AGENT, outcome="unreachable")
    session.commit()
    assert quality_inputs(session) == {bank.id: (4.0, 2), other_bank.id: (1.0, 1)}
