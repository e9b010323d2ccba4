"""Every transition of the case lifecycle, allowed and refused, with its event and side effects."""

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
    SYSTEM,
    T0,
    dispatched,
    events_of,
    open_request,
    service_institutions,
    staff_of,
)
from tickets import service
from tickets.errors import IllegalTransition, InvalidRequest, NotPermitted, StaleTicket
from tickets.models import (
    Closure,
    OutboxMessage,
    Revisit,
    RoutingRecord,
    Ticket,
    TicketKind,
    TicketState,
)


def _open_cases(session: Session, institution: Institution) -> int:
    session.expire(institution)
    return session.get_one(Institution, institution.id).open_cases


def _force_state(session: Session, ticket: Ticket, state: TicketState, **fields: object) -> None:
    """Put a ticket in a state directly, to test what may leave it."""
    ticket.state = state
    for key, value in fields.items():
        setattr(ticket, key, value)
    session.add(ticket)
    session.flush()


def test_the_whole_happy_path_writes_one_event_per_step(
    session: Session, bank: Institution
) -> None:
    staff = staff_of(bank)
    ticket = open_request(session)
    assert (ticket.state, ticket.version) == (TicketState.new, 1)

    service.dispatch(session, ticket, actor=AGENT, institution_id=bank.id, now=T0)
    assert ticket.state == TicketState.dispatched and ticket.version == 2
    assert ticket.institution_id == bank.id and ticket.counts_as_open
    assert _open_cases(session, bank) == 1
    service.accept(session, ticket, actor=staff, now=T0 + timedelta(hours=1))
    service.start(session, ticket, actor=staff, note="called the firm", now=T0 + timedelta(hours=2))
    service.resolve(session, ticket, actor=staff, note="loan approved", now=T0 + timedelta(days=2))
    assert ticket.state == TicketState.resolved and ticket.version == 5
    assert _open_cases(session, bank) == 0  # a resolved case no longer holds capacity
    assert ticket.first_contact_at == T0 + timedelta(hours=2)

    session.commit()
    stored = session.get_one(Ticket, ticket.id)
    session.refresh(stored)
    assert stored.version == 5 and stored.state == TicketState.resolved
    steps = [(e.action, e.from_state, e.to_state, e.actor) for e in events_of(session, ticket)]
    assert steps == [
        ("open", None, "new", AGENT.name),
        ("dispatch", "new", "dispatched", AGENT.name),
        ("accept", "dispatched", "accepted", staff.name),
        ("start", "accepted", "in_progress", staff.name),
        ("resolve", "in_progress", "resolved", staff.name),
    ]
    assert [e.actor_role for e in events_of(session, ticket)][2:] == ["institution"] * 3
    assert session.exec(select(RoutingRecord)).one().institution_id == bank.id
    assert session.exec(select(Revisit)).one().ticket_id == ticket.id


# (state the ticket is in, action, allowed?) — the lifecycle as the issue describes it.
CASES = [
    (TicketState.new, "dispatch", True),
    (TicketState.new, "accept", False),
    (TicketState.new, "resolve", False),
    (TicketState.dispatched, "accept", True),
    (TicketState.dispatched, "start", False),
    (TicketState.dispatched, "dispatch", False),
    (TicketState.dispatched, "decline", True),
    (TicketState.accepted, "accept", False),
    (TicketState.accepted, "start", True),
    (TicketState.accepted, "decline", False),
    (TicketState.in_progress, "resolve", True),
    (TicketState.in_progress, "cancel", False),
    (TicketState.resolved, "reopen", True),
    (TicketState.resolved, "resolve", False),
    (TicketState.closed, "reopen", True),
    (TicketState.closed, "dispatch", False),
    (TicketState.closed, "escalate", False),
    (TicketState.cancelled, "reopen", False),
    (TicketState.cancelled, "dispatch", False),
    (TicketState.reopened, "dispatch", True),
    (TicketState.reopened, "accept", False),
    (TicketState.escalated, "dispatch", True),
    (TicketState.escalated, "escalate", False),
    (TicketState.declined, "dispatch", True),
]


def _do(session: Session, ticket: Ticket, action: str, bank: Institution) -> None:
    staff = staff_of(bank)
    now = T0 + timedelta(hours=3)
    if action == "dispatch":
        service.dispatch(session, ticket, actor=AGENT, institution_id=bank.id, now=now)
    elif action == "accept":
        service.accept(session, ticket, actor=staff, now=now)
    elif action == "start":
        service.start(session, ticket, actor=staff, now=now)
    elif action == "resolve":
        service.resolve(session, ticket, actor=staff, now=now)
    elif action == "decline":
        service.decline(session, ticket, actor=staff, note="not our field", reroute=False)
    elif action == "reopen":
        service.reopen(session, ticket, actor=SUPERVISOR, note="firm called again", now=now)
    elif action == "escalate":
        service.escalate(session, ticket, actor=SUPERVISOR, now=now)
    elif action == "cancel":
        service.cancel(session, ticket, actor=AGENT, reason="spam", now=now)
    else:  # pragma: no cover
        raise AssertionError(action)


@pytest.mark.parametrize(("state", "action", "allowed"), CASES)
def test_transition_table(
    session: Session, bank: Institution, state: TicketState, action: str, allowed: bool
) -> None:
    ticket = open_request(session)
    accepted = T0 if state in (TicketState.accepted, TicketState.in_progress) else None
    _force_state(session, ticket, state, institution_id=bank.id, accepted_at=accepted)
    session.commit()
    version = ticket.version
    events_before = len(events_of(session, ticket))
    if allowed:
        _do(session, ticket, action, bank)
        assert ticket.version == version + 1
        assert len(events_of(session, ticket)) > events_before
        return
    with pytest.raises(IllegalTransition) as refused:
        _do(session, ticket, action, bank)
    assert refused.value.state == state.value
    assert state.value in str(refused.value) and action in str(refused.value)
    session.rollback()
    # Nothing half-written: same state, same version, no event.
    fresh = session.get_one(Ticket, ticket.id)
    session.refresh(fresh)
    assert (fresh.state, fresh.version) == (state, version)
    assert len(events_of(session, fresh)) == events_before


def test_roles_are_enforced(session: Session, bank: Institution, other_bank: Institution) -> None:
    ticket = dispatched(session, bank)
    with pytest.raises(NotPermitted):
        service.accept(session, ticket, actor=AGENT)  # agents do not accept for institutions
    with pytest.raises(NotPermitted, match="may not see"):
        service.accept(session, ticket, actor=staff_of(other_bank))
    with pytest.raises(NotPermitted):
        service.cancel(session, ticket, actor=staff_of(bank), reason="spam")
    with pytest.raises(NotPermitted):
        service.dispatch(session, open_request(session), actor=staff_of(bank), institution_id=1)
    service.accept(session, ticket, actor=staff_of(bank))
    service.start(session, ticket, actor=staff_of(bank))
    service.resolve(session, ticket, actor=staff_of(bank))
    with pytest.raises(NotPermitted):
        service.reopen(session, ticket, actor=AGENT)  # only supervisors reopen
    with pytest.raises(NotPermitted):
        service.reopen(session, ticket, actor=staff_of(bank))
    service.reopen(session, ticket, actor=SUPERVISOR, note="firm says nothing happened")
    assert ticket.state == TicketState.reopened and ticket.reopen_count == 1


def test_a_stale_version_is_refused_with_the_current_state(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    session.commit()
    with pytest.raises(StaleTicket) as stale:
        service.accept(session, ticket, actor=staff_of(bank), expected_version=1)
    assert (stale.value.state, stale.value.version) == ("dispatched", 2)
    service.accept(session, ticket, actor=staff_of(bank), expected_version=2)
    assert ticket.version == 3


def test_decline_reroutes_to_the_next_best_excluding_every_decliner(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    service.decline(session, ticket, actor=staff_of(bank), note="we only serve Wanzhou")
    assert ticket.state == TicketState.dispatched
    second = ticket.institution_id
    assert second is not None and second != bank.id
    assert _open_cases(session, bank) == 0
    assert session.get_one(Institution, second).open_cases == 1
    second_staff = staff_of(session.get_one(Institution, second))
    service.decline(session, ticket, actor=second_staff, note="too busy")
    assert ticket.institution_id not in (bank.id, second)
    actions = [(e.action, e.actor) for e in events_of(session, ticket)]
    assert actions[-4:] == [
        ("decline", staff_of(bank).name),
        ("dispatch", "system:reroute"),
        ("decline", second_staff.name),
        ("dispatch", "system:reroute"),
    ]
    records = session.exec(select(RoutingRecord).order_by(col(RoutingRecord.id))).all()
    assert records[-1].inputs["exclude"] == sorted([bank.id, second])


def test_decline_needs_a_reason(session: Session, bank: Institution) -> None:
    ticket = dispatched(session, bank)
    with pytest.raises(InvalidRequest):
        service.decline(session, ticket, actor=staff_of(bank), note="  ")
    assert ticket.state == TicketState.dispatched


def test_cancel_as_duplicate_names_the_original_and_frees_capacity(
    session: Session, bank: Institution
) -> None:
    original = open_request(session)
    copy = dispatched(session, bank, phone="+8613900139000")
    with pytest.raises(InvalidRequest):
        service.cancel(session, copy, actor=AGENT, reason="duplicate")
    with pytest.raises(InvalidRequest):
        service.cancel(session, copy, actor=AGENT, reason="bored")
    service.cancel(session, copy, actor=AGENT, reason="duplicate", duplicate_of=original)
    assert copy.state == TicketState.cancelled
    assert copy.duplicate_of_id == original.id and copy.closure == Closure.duplicate
    assert _open_cases(session, bank) == 0
    assert events_of(session, copy)[-1].data == {
        "reason": "duplicate",
        "duplicate_of": original.number,
    }


def test_claim_assigns_the_agent_without_changing_state(session: Session) -> None:
    ticket = open_request(session, category=None)
    service.claim(session, ticket, actor=AGENT)
    assert ticket.assignee == AGENT.name and ticket.state == TicketState.new
    with pytest.raises(InvalidRequest, match="no category"):
        service.dispatch(session, ticket, actor=AGENT)


def test_manual_escalation_notifies_the_district_window(
    session: Session, bank: Institution
) -> None:
    ticket = dispatched(session, bank)
    service.escalate(session, ticket, actor=AGENT, reason="firm angry", note="called 3 times")
    assert ticket.state == TicketState.escalated and ticket.escalation_level == 1
    tasks = [r.task for r in session.exec(select(OutboxMessage)).all()]
    assert "notify_institution" in tasks and "escalation_follow_up" in tasks
    notice = next(
        r for r in session.exec(select(OutboxMessage)).all() if r.task == "notify_institution"
    )
    window = session.get_one(Institution, notice.payload["institution_id"])
    assert window.code == "win-yubei"
    assert "called 3 times" in notice.payload["text"]
    # The institution may still take it late, from escalated.
    service.accept(session, ticket, actor=staff_of(bank))
    assert ticket.state == TicketState.accepted


def test_complaints_are_for_supervisors_and_hidden_from_the_institution(
    session: Session, bank: Institution
) -> None:
    served = dispatched(session, bank)
    service.claim(session, open_request(session, category=None), actor=AGENT)
    served.assignee = AGENT.name
    session.add(served)
    complaint = open_request(
        session, summary="银行一直没有回电话", kind=TicketKind.complaint, related=served
    )
    with pytest.raises(NotPermitted):
        service.claim(session, complaint, actor=staff_of(bank))  # never sees it
    with pytest.raises(NotPermitted):
        service.claim(session, complaint, actor=AGENT)  # it is about their own case
    with pytest.raises(NotPermitted):
        service.uphold(session, complaint, actor=OTHER_AGENT)  # supervisors decide
    with pytest.raises(IllegalTransition):
        service.accept(session, complaint, actor=SUPERVISOR)  # no such step for complaints
    service.claim(session, complaint, actor=SUPERVISOR)
    assert complaint.state == TicketState.in_progress
    service.uphold(session, complaint, actor=SUPERVISOR, note="no call in 3 days")
    assert complaint.state == TicketState.closed
    assert complaint.closure == Closure.complaint_upheld
    # The complained-about case, still open, is escalated.
    assert served.state == TicketState.escalated
    assert "投诉" in events_of(session, served)[-2].note


def test_an_upheld_complaint_reopens_a_closed_case(session: Session, bank: Institution) -> None:
    served = dispatched(session, bank)
    staff = staff_of(bank)
    service.accept(session, served, actor=staff)
    service.resolve(session, served, actor=staff)
    complaint = open_request(session, kind=TicketKind.complaint, related=served)
    service.uphold(session, complaint, actor=ADMIN, note="fee overcharged")
    assert served.state == TicketState.reopened and served.reopen_count == 1
    dismissed = open_request(session, kind=TicketKind.complaint, related=served)
    service.dismiss(session, dismissed, actor=SUPERVISOR, note="fees were as published")
    assert dismissed.closure == Closure.complaint_dismissed
    assert served.state == TicketState.reopened


def test_events_are_append_only(session: Session) -> None:
    ticket = open_request(session)
    session.commit()
    event = events_of(session, ticket)[0]
    event.note = "rewritten"
    session.add(event)
    with pytest.raises(RuntimeError, match="append-only"):
        session.flush()
    session.rollback()
    session.delete(events_of(session, ticket)[0])
    with pytest.raises(RuntimeError, match="append-only"):
        session.flush()


def test_system_actor_may_dispatch_but_not_accept(session: Session, bank: Institution) -> None:
    ticket = open_request(session)
    service.dispatch(session, ticket, actor=SYSTEM, institution_id=bank.id)
    with pytest.raises(NotPermitted):
        service.accept(session, ticket, actor=SYSTEM)
    assert service_institutions(session, "financing")
