"""The ticket page's operations around the transitions: release a claim, re-classify (routing run
again while no institution accepted), add a note, text the firm (honouring its opt-out), reveal
the caller's number. Each is a named service function writing its event in the caller's
transaction, with the same version check and role rules as claim and dispatch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from kb.models import Institution
from tests.tickets.conftest import (
    ADMIN,
    AGENT,
    OTHER_AGENT,
    SUPERVISOR,
    T0,
    dispatched,
    events_of,
    open_request,
    staff_of,
)
from tickets import lifecycle, service
from tickets.errors import IllegalTransition, InvalidRequest, NotPermitted, StaleTicket
from tickets.models import (
    Firm,
    OutboundMessage,
    OutboxMessage,
    RoutingRecord,
    Ticket,
    TicketKind,
    TicketState,
)
from tickets.views import allowed_actions


def _outbox(session: Session, ticket: Ticket, task: str) -> list[OutboxMessage]:
    return list(
        session.exec(
            select(OutboxMessage).where(
                OutboxMessage.ticket_id == ticket.id, OutboxMessage.task == task
            )
        ).all()
    )


def _records(session: Session, ticket: Ticket) -> list[RoutingRecord]:
    return list(
        session.exec(
            select(RoutingRecord)
            .where(RoutingRecord.ticket_id == ticket.id)
            .order_by(col(RoutingRecord.id))
        ).all()
    )


def _unchanged(session: Session, ticket: Ticket, version: int, events: int) -> None:
    """Nothing half-written: the refused operation left version and timeline as they were."""
    session.rollback()
    fresh = session.get_one(Ticket, ticket.id)
    session.refresh(fresh)
    assert fresh.version == version
    assert len(events_of(session, fresh)) == events


# --- release --------------------------------------------------------------------------------


def test_an_agent_releases_their_claim(session: Session) -> None:
    ticket = open_request(session)
    service.claim(session, ticket, actor=AGENT)
    service.release(session, ticket, actor=AGENT, expected_version=2, note="going off shift")
    assert ticket.assignee is None and ticket.version == 3
    assert ticket.state == TicketState.new
    last = events_of(session, ticket)[-1]
    assert (last.action, last.actor, last.note) == ("release", AGENT.name, "going off shift")
    assert last.data == {"assignee": AGENT.name}


def test_only_the_claimant_or_oversight_releases(session: Session, bank: Institution) -> None:
    ticket = open_request(session)
    with pytest.raises(IllegalTransition, match="nobody has claimed it"):
        service.release(session, ticket, actor=AGENT)
    service.claim(session, ticket, actor=AGENT)
    session.commit()
    with pytest.raises(NotPermitted, match="claimed by user:agent-li"):
        service.release(session, ticket, actor=OTHER_AGENT)
    _unchanged(session, ticket, 2, 2)
    with pytest.raises(NotPermitted):
        service.release(session, ticket, actor=staff_of(bank))
    service.release(session, ticket, actor=SUPERVISOR)
    assert ticket.assignee is None


def test_release_refuses_a_stale_version(session: Session) -> None:
    ticket = open_request(session)
    service.claim(session, ticket, actor=AGENT)
    session.commit()
    with pytest.raises(StaleTicket) as stale:
        service.release(session, ticket, actor=AGENT, expected_version=1)
    assert (stale.value.state, stale.value.version) == ("new", 2)
    _unchanged(session, ticket, 2, 2)


# --- re-classify ----------------------------------------------------------------------------


def test_reclassify_a_new_ticket_records_who_why_and_routes_again(session: Session) -> None:
    ticket = open_request(session, summary="想咨询合同纠纷")
    ticket.classification = {"category": "financing", "confidence": 0.41}
    session.add(ticket)
    service.reclassify(
        session,
        ticket,
        actor=AGENT,
        category_key="legal",
        reason="the firm asks about a contract dispute",
        expected_version=1,
        now=T0,
    )
    assert (ticket.category, ticket.version, ticket.state) == ("legal", 2, TicketState.new)
    assert ticket.classification["confidence"] == 0.41  # the classifier's evidence is kept
    assert ticket.classification["reclassified"] == {
        "from": "financing",
        "to": "legal",
        "by": AGENT.name,
        "reason": "the firm asks about a contract dispute",
        "at": T0.isoformat(),
    }
    last = events_of(session, ticket)[-1]
    assert (last.action, last.actor, last.note) == (
        "reclassify",
        AGENT.name,
        "the firm asks about a contract dispute",
    )
    assert (last.data["from"], last.data["to"]) == ("financing", "legal")
    # Routing ran on the new category and its decision is stored with its reasons; the ticket
    # is not sent anywhere by a re-classification (it was not dispatched).
    (record,) = _records(session, ticket)
    assert record.inputs["category"] == "legal" and record.reasons
    assert last.data["routed_to"] == record.institution_id
    assert ticket.institution_id is None
    session.commit()
    stored = session.get_one(Ticket, ticket.id)
    session.refresh(stored)
    assert stored.category == "legal" and "reclassified" in stored.classification


def test_reclassify_hands_a_waiting_case_to_an_institution_of_the_new_category(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    assert bank.open_cases == 1
    later = T0 + timedelta(hours=1)
    service.reclassify(
        session,
        ticket,
        actor=AGENT,
        category_key="legal",
        reason="it is about a lawsuit",
        now=later,
    )
    assert ticket.state == TicketState.dispatched and ticket.category == "legal"
    new_holder = ticket.institution_id
    assert new_holder is not None and new_holder != bank.id
    session.expire(bank)
    assert session.get_one(Institution, bank.id).open_cases == 0
    assert session.get_one(Institution, new_holder).open_cases == 1
    assert ticket.dispatched_at == later and ticket.accept_due_at is not None
    record = _records(session, ticket)[-1]
    assert (record.institution_id, record.inputs["category"]) == (new_holder, "legal")
    last = events_of(session, ticket)[-1]
    assert last.data["previous_institution_id"] == bank.id
    # New SLA timers for the new clocks (the old ones find their due time changed).
    dues = {
        row.payload["due"]
        for row in _outbox(session, ticket, "sla_check")
        if row.payload["clock"] == "accept"
    }
    assert ticket.accept_due_at.isoformat() in dues and len(dues) == 2


def test_reclassify_an_accepted_case_keeps_its_institution(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    service.accept(session, ticket, actor=staff_of(bank))
    records = len(_records(session, ticket))
    service.reclassify(
        session, ticket, actor=SUPERVISOR, category_key="management", reason="really consulting"
    )
    assert ticket.category == "management" and ticket.institution_id == bank.id
    assert ticket.state == TicketState.accepted
    assert len(_records(session, ticket)) == records
    assert "routed_to" not in events_of(session, ticket)[-1].data


@pytest.mark.parametrize(
    ("category", "reason", "message"),
    [
        ("legal", "  ", "needs a reason"),
        ("astrology", "why not", "no service category 'astrology'; one of"),
        ("financing", "same again", "already in category financing"),
    ],
)
def test_reclassify_refuses_bad_input(
    session: Session, category: str, reason: str, message: str
) -> None:
    ticket = open_request(session)
    session.commit()
    with pytest.raises(InvalidRequest, match=message):
        service.reclassify(session, ticket, actor=AGENT, category_key=category, reason=reason)
    _unchanged(session, ticket, 1, 1)


def test_reclassify_is_for_hotline_staff_and_service_tickets(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    with pytest.raises(NotPermitted):
        service.reclassify(
            session, ticket, actor=staff_of(bank), category_key="legal", reason="not ours"
        )
    complaint = open_request(session, category=None, kind=TicketKind.complaint, related=ticket)
    with pytest.raises(IllegalTransition, match="no such action"):
        service.reclassify(session, complaint, actor=SUPERVISOR, category_key="legal", reason="x")
    with pytest.raises(StaleTicket):
        service.reclassify(
            session, ticket, actor=AGENT, category_key="legal", reason="x", expected_version=1
        )


# --- notes ----------------------------------------------------------------------------------


def test_a_note_is_an_event_and_a_new_version(session: Session, bank: Institution) -> None:
    ticket = dispatched(session, bank)
    service.add_note(session, ticket, actor=AGENT, text="  firm prefers calls after 3pm  ")
    assert ticket.version == 3 and ticket.state == TicketState.dispatched
    last = events_of(session, ticket)[-1]
    assert (last.action, last.note, last.from_state, last.to_state) == (
        "note",
        "firm prefers calls after 3pm",
        "dispatched",
        "dispatched",
    )
    # The institution's progress notes, on its own tickets only.
    service.add_note(session, ticket, actor=staff_of(bank), text="visited the firm")
    assert events_of(session, ticket)[-1].actor_role == "institution"


def test_notes_refused(session: Session, bank: Institution, other_bank: Institution) -> None:
    ticket = dispatched(session, bank)
    session.commit()
    with pytest.raises(InvalidRequest, match="needs some text"):
        service.add_note(session, ticket, actor=AGENT, text=" \n ")
    with pytest.raises(InvalidRequest, match="at most 4000"):
        service.add_note(session, ticket, actor=AGENT, text="x" * 4001)
    with pytest.raises(NotPermitted):
        service.add_note(session, ticket, actor=staff_of(other_bank), text="not ours")
    with pytest.raises(StaleTicket):
        service.add_note(session, ticket, actor=AGENT, text="late", expected_version=1)
    _unchanged(session, ticket, 2, 2)
    complaint = open_request(session, category=None, kind=TicketKind.complaint, related=ticket)
    with pytest.raises(NotPermitted):
        service.add_note(session, complaint, actor=AGENT, text="complaints are supervised")
    service.add_note(session, complaint, actor=SUPERVISOR, text="called the complainant")


# --- SMS to the firm ------------------------------------------------------------------------


def test_an_sms_is_recorded_then_sent_by_its_job(session: Session) -> None:
    ticket = open_request(session)
    service.send_sms(
        session, ticket, actor=AGENT, text="请带营业执照到窗口办理", expected_version=1
    )
    assert ticket.version == 2
    event = events_of(session, ticket)[-1]
    assert (event.action, event.note, event.data) == (
        "sms",
        "请带营业执照到窗口办理",
        {"to": "138****8000"},
    )
    (job,) = _outbox(session, ticket, "sms_firm")
    assert job.payload == {"event_id": event.id}
    assert session.exec(select(OutboundMessage)).all() == []  # nothing leaves before commit
    session.commit()

    outcome = service.ticket_service.deliver_sms(session, dict(job.payload), T0)
    (message,) = session.exec(select(OutboundMessage)).all()
    assert outcome.result == "sms queued" and outcome.details == {"message_id": message.id}
    assert message.to_number == "+8613800138000" and message.purpose == "agent_sms"
    assert message.body == "【中小企业服务热线】请带营业执照到窗口办理"


def test_an_sms_to_a_firm_that_opted_out_is_refused(session: Session) -> None:
    ticket = open_request(session)
    firm = session.get_one(Firm, ticket.firm_id)
    firm.sms_opted_out = True
    session.add(firm)
    session.commit()
    with pytest.raises(InvalidRequest, match="opted out of SMS"):
        service.send_sms(session, ticket, actor=AGENT, text="hello")
    _unchanged(session, ticket, 1, 1)
    assert _outbox(session, ticket, "sms_firm") == []


def test_an_opt_out_arriving_before_the_job_suppresses_the_sms(session: Session) -> None:
    ticket = open_request(session)
    service.send_sms(session, ticket, actor=SUPERVISOR, text="您的申请已受理")
    (job,) = _outbox(session, ticket, "sms_firm")
    firm = session.get_one(Firm, ticket.firm_id)
    firm.sms_opted_out = True  # the firm texted TD meanwhile
    session.add(firm)
    service.ticket_service.deliver_sms(session, dict(job.payload), T0)
    (message,) = session.exec(select(OutboundMessage)).all()
    assert message.status == "suppressed"


def test_sms_refusals(session: Session, bank: Institution) -> None:
    ticket = dispatched(session, bank)
    with pytest.raises(InvalidRequest, match="needs some text"):
        service.send_sms(session, ticket, actor=AGENT, text="")
    with pytest.raises(InvalidRequest, match="at most 200"):
        service.send_sms(session, ticket, actor=AGENT, text="字" * 201)
    for actor in (ADMIN, staff_of(bank)):
        with pytest.raises(NotPermitted):
            service.send_sms(session, ticket, actor=actor, text="hi")
    service.cancel(
        session, open_request(session, phone="+8613900139000"), actor=AGENT, reason="spam"
    )
    spam = session.exec(select(Ticket).where(Ticket.state == TicketState.cancelled)).one()
    with pytest.raises(IllegalTransition):
        service.send_sms(session, spam, actor=AGENT, text="hi")


# --- the phone number reveal ----------------------------------------------------------------


def test_a_reveal_is_an_audit_event_not_a_change(
    session: Session, bank: Institution, other_bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    for actor in (AGENT, SUPERVISOR, staff_of(bank)):
        service.reveal_phone(session, ticket, actor=actor)
    assert ticket.version == 2
    reveals = [
        (e.actor, e.actor_role) for e in events_of(session, ticket) if e.action == "phone_reveal"
    ]
    assert reveals == [
        (AGENT.name, "agent"),
        (SUPERVISOR.name, "supervisor"),
        (staff_of(bank).name, "institution"),
    ]
    with pytest.raises(NotPermitted):
        service.reveal_phone(session, ticket, actor=ADMIN)
    with pytest.raises(NotPermitted, match="may not see"):
        service.reveal_phone(session, ticket, actor=staff_of(other_bank))


def test_the_page_actions_are_offered_by_role(session: Session, bank: Institution) -> None:
    ticket = dispatched(session, bank)
    service.claim(session, open_request(session, phone="+8613900139000"), actor=AGENT)
    assert {"note", "sms", "reclassify"} <= set(allowed_actions(session, ticket, AGENT))
    assert "release" not in allowed_actions(session, ticket, AGENT)  # nobody holds it
    held = session.exec(select(Ticket).where(col(Ticket.assignee).is_not(None))).one()
    assert "release" in allowed_actions(session, held, AGENT)
    assert "release" not in allowed_actions(session, held, OTHER_AGENT)
    assert "release" in allowed_actions(session, held, SUPERVISOR)
    assert (
        set(allowed_actions(session, ticket, staff_of(bank)))
        & {
            "sms",
            "reclassify",
            "release",
        }
        == set()
    )
    assert "note" in allowed_actions(session, ticket, staff_of(bank))
    assert lifecycle.rule_for(TicketKind.service, "phone_reveal") is not None
