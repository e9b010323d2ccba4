"""SLA clocks on the working calendar of Chongqing: weekends, public holidays and the weekend
make-up working days (调休) of the State Council's schedule."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from kb.models import Institution
from tests.tickets.conftest import AGENT, local, open_request
from tickets import service
from tickets.calendar import CalendarError, WorkingCalendar, load_year
from tickets.service import ticket_service
from tickets.sla import PolicyError, SlaPolicy, WorkingDuration, read_clock

H = timedelta(hours=1)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar.load()


def test_the_shipped_2026_schedule(calendar: WorkingCalendar) -> None:
    schedule = calendar.years[2026]
    assert not schedule.provisional and "2025-11-04" in schedule.source
    holidays = sorted(schedule.holidays)
    assert len(holidays) == 3 + 9 + 3 + 5 + 3 + 3 + 7
    assert sorted(schedule.makeup_workdays) == [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ]
    assert calendar.holiday_name(date(2026, 2, 17)) == "春节"
    assert not calendar.is_working_day(date(2026, 10, 8 - 1))
    assert calendar.is_working_day(date(2026, 10, 10))  # a Saturday worked for 国庆
    assert not calendar.is_working_day(date(2026, 10, 11))  # an ordinary Sunday


def test_the_2027_file_is_provisional_with_the_lunar_dates(calendar: WorkingCalendar) -> None:
    schedule = calendar.years[2027]
    assert schedule.provisional and not schedule.makeup_workdays
    assert {date(2027, 2, 5), date(2027, 2, 8), date(2027, 6, 9), date(2027, 9, 15)} <= set(
        schedule.holidays
    )
    assert date(2027, 2, 9) not in schedule.holidays


def test_an_ordinary_day_skips_the_lunch_break(calendar: WorkingCalendar) -> None:
    start = local(2026, 12, 2, 10)  # Wednesday
    assert calendar.add(start, 4 * H) == local(2026, 12, 2, 15, 30)
    assert calendar.add(start, 2 * H) == local(2026, 12, 2, 12)  # ends exactly at noon
    assert calendar.add(local(2026, 12, 2, 12, 30), H) == local(2026, 12, 2, 14, 30)
    assert calendar.between(start, local(2026, 12, 2, 15, 30)) == 4 * H
    assert calendar.day_length == 7 * H


def test_across_a_weekend(calendar: WorkingCalendar) -> None:
    friday = local(2026, 12, 4, 16)
    assert calendar.add(friday, 4 * H) == local(2026, 12, 7, 11, 30)
    assert calendar.add(local(2026, 12, 5, 10), 4 * H) == local(2026, 12, 7, 14, 30)  # from Sat
    assert calendar.between(friday, local(2026, 12, 7, 11, 30)) == 4 * H


def test_across_a_public_holiday(calendar: WorkingCalendar) -> None:
    # Wednesday 30 September, then 国庆 1-7 October: the clock resumes on Thursday 8 October.
    assert calendar.add(local(2026, 9, 30, 16), 4 * H) == local(2026, 10, 8, 11, 30)
    # 春节 with its make-up Saturdays: Fri 13 Feb 15:00 + 5 working days.
    assert calendar.add(local(2026, 2, 13, 15), 35 * H) == local(2026, 2, 27, 15)


def test_on_a_make_up_working_day(calendar: WorkingCalendar) -> None:
    # Friday 9 October 16:00 + 4h: Saturday 10 October is worked (调休).
    assert calendar.add(local(2026, 10, 9, 16), 4 * H) == local(2026, 10, 10, 11, 30)
    # Sunday 20 September is worked too: Friday 17:00 + 1 working day ends on it.
    assert calendar.add(local(2026, 9, 18, 17), 7 * H) == local(2026, 9, 20, 17)
    # And Sunday 4 January, after 元旦.
    assert calendar.add(local(2025, 12, 31, 17), H) == local(2026, 1, 4, 9, 30)


def test_a_provisional_or_missing_year_is_logged(
    calendar: WorkingCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = WorkingCalendar.load()
    with caplog.at_level(logging.WARNING, logger="tickets.calendar"):
        # Thu 4 Feb 2027 17:00 + 1h: 春节 5-8 Feb (statutory), so Tuesday 9 Feb.
        assert fresh.add(local(2027, 2, 4, 17), H) == local(2027, 2, 9, 9, 30)
        fresh.is_working_day(date(2031, 3, 3))
        fresh.is_working_day(date(2031, 3, 4))
    messages = [r.getMessage() for r in caplog.records]
    assert any("2027" in m and "provisional" in m for m in messages)
    assert sum("2031" in m for m in messages) == 1  # once per year, not per question
    assert fresh.is_working_day(date(2031, 3, 3))  # missing year: Monday-Friday


def test_due_times_of_a_dispatch_across_a_weekend(session: Session, bank: Institution) -> None:
    friday = local(2026, 12, 4, 16)
    ticket = open_request(session, now=friday)
    service.dispatch(session, ticket, actor=AGENT, institution_id=bank.id, now=friday)
    assert ticket.accept_due_at == local(2026, 12, 7, 11, 30)
    assert ticket.contact_due_at == local(2026, 12, 7, 16)
    assert ticket.resolve_due_at == local(2026, 12, 11, 16)
    reading = read_clock(
        ticket_service.calendar, "accept", ticket.accept_due_at, None, local(2026, 12, 7, 10)
    )
    assert (reading.status, reading.working_seconds_left) == ("running", 5400)
    late = read_clock(
        ticket_service.calendar, "accept", ticket.accept_due_at, local(2026, 12, 7, 12), friday
    )
    assert late.status == "missed"


def test_per_category_policy_and_bad_data() -> None:
    policy = SlaPolicy.from_mapping(
        {
            "defaults": {"accept": "4h", "contact": "1d", "resolve": "5d"},
            "categories": {"legal": {"resolve": "10d"}},
        }
    )
    calendar = WorkingCalendar.load()
    start = local(2026, 12, 2, 10)
    assert policy.due_times(calendar, "legal", start).resolve == local(2026, 12, 16, 10)
    assert policy.due_times(calendar, "financing", start).resolve == local(2026, 12, 9, 10)
    assert WorkingDuration.parse("30m").on(calendar) == timedelta(minutes=30)
    with pytest.raises(PolicyError):
        SlaPolicy.from_mapping(
            {"defaults": {"accept": "4 hours", "contact": "1d", "resolve": "5d"}}
        )
    with pytest.raises(PolicyError):
        SlaPolicy.from_mapping({"defaults": {"accept": "4h", "contact": "1d"}})
    shipped = SlaPolicy.load()
    assert shipped.for_category("legal").accept == WorkingDuration(minutes=240)
    assert shipped.revisit.retries == 3


def test_a_malformed_calendar_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "2026.yaml"
    bad.write_text("year: 2026\nholidays: []\nmakeup_workdays: [2026-12-02]\n")
    with pytest.raises(CalendarError, match="not a weekend day"):
        load_year(bad)
    bad.write_text("year: 2026\nholidays: [{name: x, from: 2026-05-05, to: 2026-05-01}]\n")
    with pytest.raises(CalendarError, match="bad range"):
        load_year(bad)
