"""Every measure on a small hand-computed example.

Two institutions, seven service tickets dispatched on Wednesday 2 December 2026 at 10:00 (accept
due 15:30 the same day, resolve due Wednesday 9 December 10:00), one ticket outside the period
and two complaints. The expected figures are worked out by hand in the comments."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from kb.models import Institution
from tests.tickets.conftest import AGENT, T0, dispatched, local, open_request, staff_of
from tickets import metrics, service
from tickets.models import Ticket, TicketKind

SINCE, UNTIL = local(2026, 12, 1), local(2027, 1, 1)


def _case(
    session: Session,
    institution: Institution,
    *,
    accepted: datetime | None,
    resolved: datetime | None = None,
    revisit: tuple[str, int | None] | None = None,
    district: str = "yubei",
    created: datetime = T0,
) -> Ticket:
    staff = staff_of(institution)
    ticket = dispatched(session, institution, now=created, district=district)
    if accepted:
        service.accept(session, ticket, actor=staff, now=accepted)
    if resolved:
        service.resolve(session, ticket, actor=staff, now=resolved)
    if revisit:
        outcome, score = revisit
        service.record_revisit(
            session,
            ticket,
            actor=AGENT,
            outcome=outcome,
            satisfaction=score,
            now=(resolved or T0) + timedelta(days=3),
        )
    return ticket


@pytest.fixture
def example(session: Session, bank: Institution, other_bank: Institution) -> None:
    h = timedelta(hours=1)
    # Institution A (bank), district yubei.
    _case(session, bank, accepted=T0 + h, resolved=local(2026, 12, 4, 10), revisit=("met", 5))
    a2 = _case(
        session,
        bank,
        accepted=local(2026, 12, 2, 16),
        resolved=local(2026, 12, 10, 11),
        revisit=("partly", 4),
    )  # late twice, reopened by its revisit
    _case(session, bank, accepted=T0 + 2 * h)  # never resolved
    _case(session, bank, accepted=None)  # never accepted
    _case(
        session,
        bank,
        accepted=T0 + h / 2,
        resolved=local(2026, 12, 3, 10),
        revisit=("unreachable", None),
    )
    _case(session, bank, accepted=None, created=local(2026, 11, 20, 10))  # outside the period
    # Institution B (other_bank), district jiangbei.
    _case(
        session,
        other_bank,
        accepted=T0 + h / 2,
        resolved=local(2026, 12, 4, 10),
        revisit=("met", 3),
        district="jiangbei",
    )
    _case(
        session,
        other_bank,
        accepted=T0 + h,
        resolved=local(2026, 12, 4, 10),
        revisit=("refused", None),
        district="jiangbei",
    )
    # Complaints: one about a2, one about the hotline itself (no ticket), both in yubei.
    open_request(session, kind=TicketKind.complaint, related=a2, now=local(2026, 12, 11, 9))
    open_request(
        session,
        kind=TicketKind.complaint,
        category=None,
        now=local(2026, 12, 11, 9),
        summary="热线一直占线",
    )
    session.commit()


def test_by_institution(
    session: Session, example: None, bank: Institution, other_bank: Institution
) -> None:
    result = metrics.compute(session, SINCE, UNTIL, by="institution")
    assert set(result) == {bank.id, other_bank.id, None}  # None: the hotline complaint
    a = result[bank.id]
    assert a.volume == 5
    # Acceptance fell due for all 5 (4 accepted, 1 overdue); on time: 11:00, 12:00, 10:30.
    assert (a.accepted_on_time, a.acceptance_due) == (3, 5)
    assert a.rates["on_time_acceptance_rate"] == pytest.approx(0.6)
    # Resolution fell due for all 5 (due 9 Dec < 1 Jan); on time: 4 Dec and 3 Dec.
    assert (a.resolved_on_time, a.resolution_due) == (2, 5)
    assert a.rates["on_time_resolution_rate"] == pytest.approx(0.4)
    # 3 resolved; revisits reached 2 (met, partly), unreachable 1.
    assert a.rates["revisit_rate"] == pytest.approx(2 / 3)
    # Answered with a score: 5 and 4, both satisfied.
    assert a.rates["satisfaction_rate"] == pytest.approx(1.0)
    # Need met: 1 of 2 answered.
    assert a.rates["demand_satisfaction_rate"] == pytest.approx(0.5)
    # Reopened: 1 of 3 resolved.
    assert a.rates["reopen_rate"] == pytest.approx(1 / 3)
    assert a.rates["complaint_rate"] == pytest.approx(1 / 5)
    # To accept (from dispatch): 0.5, 1, 2, 6 hours: median 1.5.
    assert a.median_hours_to_accept == pytest.approx(1.5)
    # To resolve (from intake): 24, 48, 193 hours: median 48.
    assert a.median_hours_to_resolve == pytest.approx(48)

    b = result[other_bank.id]
    assert b.volume == 2
    assert b.rates["on_time_acceptance_rate"] == 1.0
    assert b.rates["on_time_resolution_rate"] == 1.0
    assert b.rates["revisit_rate"] == 1.0  # met and refused both reached the client
    assert b.rates["satisfaction_rate"] == 0.0  # one score, a 3: not satisfied
    assert b.rates["demand_satisfaction_rate"] == 1.0  # refused is not an answer
    assert b.rates["reopen_rate"] == 0.0
    assert b.rates["complaint_rate"] == 0.0
    assert b.median_hours_to_accept == pytest.approx(0.75)  # 0.5 and 1: mean of the two
    assert b.median_hours_to_resolve == pytest.approx(48)

    hotline = result[None]
    assert (hotline.volume, hotline.complaints) == (0, 1)
    assert hotline.rates["complaint_rate"] is None  # no volume: not measured, not 0


def test_by_district_and_category(session: Session, example: None) -> None:
    districts = metrics.compute(session, SINCE, UNTIL, by="district")
    assert set(districts) == {"yubei", "jiangbei"}
    assert (districts["yubei"].volume, districts["yubei"].complaints) == (5, 2)
    assert districts["yubei"].rates["complaint_rate"] == pytest.approx(0.4)
    assert districts["jiangbei"].to_dict()["on_time_acceptance_rate"] == 1.0
    categories = metrics.compute(session, SINCE, UNTIL, by="category")
    financing = categories["financing"]
    assert financing.volume == 7 and financing.resolved == 5
    assert financing.rates["revisit_rate"] == pytest.approx(4 / 5)
    assert financing.rates["demand_satisfaction_rate"] == pytest.approx(2 / 3)
    # Accept hours 0.5, 0.5, 1, 1, 2, 6: median (1 + 1) / 2.
    assert financing.median_hours_to_accept == pytest.approx(1.0)


def test_an_empty_period_and_a_bad_grouping(session: Session, example: None) -> None:
    assert metrics.compute(session, local(2025, 1, 1), local(2025, 2, 1)) == {}
    with pytest.raises(ValueError):
        metrics.compute(session, SINCE, UNTIL, by="colour")  # type: ignore[arg-type]


def test_every_formula_is_documented() -> None:
    for formula in (
        metrics.on_time_acceptance_rate,
        metrics.on_time_resolution_rate,
        metrics.revisit_rate,
        metrics.satisfaction_rate,
        metrics.demand_satisfaction_rate,
        metrics.reopen_rate,
        metrics.complaint_rate,
    ):
        assert formula.__doc__ and "/" in formula.__doc__
        assert formula(0, 0) is None and formula(1, 4) == 0.25
