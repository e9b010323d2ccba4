"""One firm, one identity: repeat callers are recognised and a close repeat of an open request
is linked to it as a follow-up instead of opening a duplicate."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from kb.models import Institution
from tests.tickets.conftest import AGENT, SUPERVISOR, T0, dispatched, open_request, staff_of
from tickets import service
from tickets.models import Channel, Firm, Ticket, TicketEvent, TicketKind, TicketState
from tickets.phones import normalise_phone
from tickets.service import IntakeResult, similarity

PHONE = normalise_phone("138 0013 8000") or ""


def _intake(
    session: Session,
    summary: str,
    *,
    category: str | None = "financing",
    phone: str = PHONE,
    now: datetime = T0,
    kind: TicketKind = TicketKind.service,
) -> IntakeResult:
    return service.intake(
        session,
        actor=AGENT,
        channel=Channel.sms,
        caller_phone=phone,
        summary=summary,
        language="zh",
        kind=kind,
        category=category,
        district_code="yubei",
        now=now,
    )


def test_phone_numbers_identify_one_firm() -> None:
    assert PHONE == "+8613800138000"
    assert normalise_phone("+86 138-0013-8000") == PHONE
    assert normalise_phone("008613800138000") == PHONE


def test_a_close_repeat_within_seven_days_is_a_follow_up(session: Session) -> None:
    first = _intake(session, "我们公司在渝北区，想申请一笔贷款扩大生产")
    assert not first.follow_up and first.ticket.state == TicketState.new
    again = _intake(
        session, "我们公司在渝北，想申请贷款扩大生产。", now=T0 + timedelta(days=6, hours=23)
    )
    assert again.follow_up and again.ticket.id == first.ticket.id
    assert again.similarity is not None and again.similarity >= 80
    assert len(session.exec(select(Ticket)).all()) == 1
    assert len(session.exec(select(Firm)).all()) == 1
    event = session.exec(select(TicketEvent).where(TicketEvent.action == "follow_up")).one()
    assert event.ticket_id == first.ticket.id and "扩大生产" in event.note
    assert event.from_state == event.to_state == "new"


def test_what_is_not_a_repeat_opens_a_new_ticket(session: Session, bank: Institution) -> None:
    first = _intake(session, "我们公司在渝北区，想申请一笔贷款扩大生产")
    # Another category, even in similar words.
    assert not _intake(
        session, "我们公司在渝北区，想申请一笔贷款扩大生产", category="talent"
    ).follow_up
    # Another need in the same category.
    assert not _intake(session, "想了解企业信用评级怎么做，需要什么材料").follow_up
    # Another firm.
    assert not _intake(
        session, "我们公司在渝北区，想申请一笔贷款扩大生产", phone="+8613900139000"
    ).follow_up
    # The original has ended (cancelled); the repeat opens a new ticket.
    service.cancel(session, first.ticket, actor=AGENT, reason="withdrawn")
    assert not _intake(
        session, "我们公司在渝北区，想申请一笔贷款扩大生产", now=T0 + timedelta(days=1)
    ).follow_up
    # More than seven days after that new ticket.
    assert not _intake(
        session, "我们公司在渝北区，想申请一笔贷款扩大生产", now=T0 + timedelta(days=8, minutes=1)
    ).follow_up


def test_a_follow_up_goes_to_the_newest_open_match(session: Session, bank: Institution) -> None:
    older = dispatched(session, bank, summary="想申请贷款 扩大生产 渝北", phone=PHONE)
    service.accept(session, older, actor=staff_of(bank))
    result = _intake(session, "想申请贷款，扩大生产，在渝北", now=T0 + timedelta(hours=5))
    assert result.follow_up and result.ticket.id == older.id
    assert result.ticket.state == TicketState.accepted  # untouched: only an event is added


def test_complaints_are_never_merged_and_link_the_ticket_they_quote(
    session: Session, bank: Institution
) -> None:
    served = dispatched(session, bank)
    complaint = _intake(
        session,
        f"投诉：工单{served.number}的银行三天没回电话",
        kind=TicketKind.complaint,
        category=None,
    )
    assert not complaint.follow_up
    assert complaint.ticket.kind == TicketKind.complaint
    assert complaint.ticket.related_ticket_id == served.id
    again = _intake(
        session,
        f"投诉：工单{served.number}的银行三天没回电话",
        kind=TicketKind.complaint,
        category=None,
    )
    assert not again.follow_up and again.ticket.id != complaint.ticket.id
    service.claim(session, complaint.ticket, actor=SUPERVISOR)


def test_similarity_is_about_the_words_not_punctuation_or_spacing() -> None:
    assert similarity("想申请贷款！", "想 申请 贷款") == 100
    assert similarity("想申请贷款", "想参加培训") < 80
    assert similarity("We need a lawyer for a contract", "we need a lawyer, for a contract") >= 95


def test_open_request_helper_recognises_the_repeat_caller(session: Session) -> None:
    one = open_request(session)
    two = open_request(session, summary="完全不同的需求", category="legal")
    assert one.firm_id == two.firm_id
    assert session.exec(select(col(Firm.phone))).all() == ["+8613800138000"]
