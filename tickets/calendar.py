"""The working calendar: which days are worked, which hours of them, and arithmetic on working time.

Days come from one data file per year (``tickets/data/calendar/YYYY.yaml``): public holidays and
the weekend make-up working days (调休) of the State Council's schedule. A file marked
``provisional: true`` holds only the statutory holidays; a year with no file falls back to
Monday-Friday. Both are logged as warnings (once per year and calendar), because due times
computed from them may be wrong.

Working hours are a list of periods of the day in local time (e.g. 09:00-12:00 and 13:30-17:30);
a duration in "working days" is that many times the length of the working day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

log = logging.getLogger(__name__)

DEFAULT_PERIODS = ("09:00-12:00", "13:30-17:30")
# No schedule has runs of non-working days anywhere near this long: a guard against bad data.
MAX_SCAN_DAYS = 3 * 366


class CalendarError(ValueError):
    """A calendar data file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class YearSchedule:
    year: int
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    provisional: bool
    source: str = ""
    names: dict[date, str] = field(default_factory=dict)


def parse_period(text: str) -> tuple[time, time]:
    try:
        start_text, end_text = (part.strip() for part in text.split("-"))
        start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    except ValueError:
        raise CalendarError(f"bad working period {text!r}: expected HH:MM-HH:MM") from None
    if end <= start:
        raise CalendarError(f"bad working period {text!r}: ends before it starts")
    return start, end


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CalendarError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def load_year(path: Path) -> YearSchedule:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "year" not in raw:
        raise CalendarError(f"{path.name}: expected a mapping with 'year'")
    year = int(raw["year"])
    holidays: set[date] = set()
    names: dict[date, str] = {}
    for index, entry in enumerate(raw.get("holidays") or []):
        where = f"{path.name}: holidays[{index}]"
        first = _as_date(entry.get("from"), where)
        last = _as_date(entry.get("to", entry.get("from")), where)
        if last < first or (last - first).days > 31:
            raise CalendarError(f"{where}: bad range {first}..{last}")
        day = first
        while day <= last:
            holidays.add(day)
            names[day] = str(entry.get("name", ""))
            day += timedelta(days=1)
    makeup = {
        _as_date(value, f"{path.name}: makeup_workdays")
        for value in raw.get("makeup_workdays") or []
    }
    for day in makeup:
        if day.weekday() < 5:
            raise CalendarError(f"{path.name}: make-up working day {day} is not a weekend day")
    for day in holidays | makeup:
        # A holiday on 31 Dec or 1 Jan of a neighbouring year is possible; only warn-free years.
        if abs(day.year - year) > 1:
            raise CalendarError(f"{path.name}: {day} is far outside {year}")
    if holidays & makeup:
        raise CalendarError(f"{path.name}: {sorted(holidays & makeup)} both holiday and workday")
    return YearSchedule(
        year=year,
        holidays=frozenset(holidays),
        makeup_workdays=frozenset(makeup),
        provisional=bool(raw.get("provisional", False)),
        source=str(raw.get("source", "")),
        names=names,
    )


def default_calendar_dir() -> Path:
    return Path(str(files("tickets") / "data" / "calendar"))


class WorkingCalendar:
    def __init__(
        self,
        years: Iterable[YearSchedule],
        *,
        periods: Sequence[str] = DEFAULT_PERIODS,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.years = {schedule.year: schedule for schedule in years}
        self.periods = sorted(parse_period(p) for p in periods)
        for (_, end), (start, _) in zip(self.periods, self.periods[1:], strict=False):
            if start < end:
                raise CalendarError("working periods overlap")
        self.zone = ZoneInfo(timezone)
        self._warned: set[int] = set()
        # Holidays are keyed by their own date, so a schedule may list a day of the next year.
        self._holidays: set[date] = set()
        self._makeup: set[date] = set()
        for schedule in self.years.values():
            self._holidays |= schedule.holidays
            self._makeup |= schedule.makeup_workdays

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        periods: Sequence[str] = DEFAULT_PERIODS,
        timezone: str = "Asia/Shanghai",
    ) -> WorkingCalendar:
        folder = directory or default_calendar_dir()
        years = [load_year(path) for path in sorted(folder.glob("*.yaml"))]
        return cls(years, periods=periods, timezone=timezone)

    @property
    def day_length(self) -> timedelta:
        """The working time of one working day."""
        return sum((_span(start, end) for start, end in self.periods), timedelta())

    def _check_year(self, year: int) -> None:
        if year in self._warned:
            return
        schedule = self.years.get(year)
        if schedule is None:
            self._warned.add(year)
            log.warning(
                "no holiday schedule for %s: counting Monday-Friday as working days; add "
                "tickets/data/calendar/%s.yaml from the State Council's notice",
                year,
                year,
            )
        elif schedule.provisional:
            self._warned.add(year)
            log.warning(
                "the %s holiday schedule is provisional (statutory holidays only, no 调休): "
                "replace tickets/data/calendar/%s.yaml when the State Council publishes it",
                year,
                year,
            )

    def is_working_day(self, day: date) -> bool:
        self._check_year(day.year)
        if day in self._makeup:
            return True
        if day in self._holidays:
            return False
        return day.weekday() < 5

    def holiday_name(self, day: date) -> str | None:
        for schedule in self.years.values():
            if day in schedule.names:
                return schedule.names[day]
        return None

    def local(self, moment: datetime) -> datetime:
        return _aware(moment).astimezone(self.zone)

    def _periods_of(self, day: date) -> list[tuple[datetime, datetime]]:
        return [
            (
                datetime.combine(day, start, tzinfo=self.zone),
                datetime.combine(day, end, tzinfo=self.zone),
            )
            for start, end in self.periods
        ]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment when ``duration`` of working time has passed since ``start`` (UTC).

        Time outside working periods does not count; a start outside them counts from the next
        period's start. A zero duration returns ``start`` itself.
        """
        if duration < timedelta(0):
            raise ValueError("working durations are not negative")
        if duration == timedelta(0):
            return _aware(start).astimezone(UTC)
        cursor = self.local(start)
        remaining = duration
        day = cursor.date()
        for _ in range(MAX_SCAN_DAYS):
            if self.is_working_day(day):
                for period_start, period_end in self._periods_of(day):
                    if cursor >= period_end:
                        continue
                    begin = max(cursor, period_start)
                    available = period_end - begin
                    if remaining <= available:
                        return (begin + remaining).astimezone(UTC)
                    remaining -= available
                    cursor = period_end
            day += timedelta(days=1)
        raise CalendarError(f"no working time within {MAX_SCAN_DAYS} days of {start}")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        a, b = self.local(start), self.local(end)
        if b < a:
            return -self.between(end, start)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                for period_start, period_end in self._periods_of(day):
                    begin, finish = max(a, period_start), min(b, period_end)
                    if finish > begin:
                        total += finish - begin
            day += timedelta(days=1)
        return total

    def is_working_time(self, moment: datetime) -> bool:
        local = self.local(moment)
        if not self.is_working_day(local.date()):
            return False
        return any(start <= local < end for start, end in self._periods_of(local.date()))


def _span(start: time, end: time) -> timedelta:
    day = date(2000, 1, 1)
    return datetime.combine(day, end) - datetime.combine(day, start)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
