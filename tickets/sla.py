"""Service levels: the per-category policy (``tickets/data/sla.yaml``) and the due times it gives.

The defaults, documented in the data file: accept within 4 working hours, first contact within
1 working day, resolve within 5 working days, all counted from the dispatch on the working
calendar (:mod:`tickets.calendar`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tickets.calendar import DEFAULT_PERIODS, CalendarError, WorkingCalendar, parse_period

CLOCKS = ("accept", "contact", "resolve")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")


class PolicyError(ValueError):
    """The SLA data file is malformed; the message names the entry."""


@dataclass(frozen=True)
class WorkingDuration:
    """A duration in working time: hours and minutes as such, days as working days."""

    days: float = 0.0
    minutes: float = 0.0

    @classmethod
    def parse(cls, text: str, where: str = "duration") -> WorkingDuration:
        found = _DURATION.match(str(text))
        if not found:
            raise PolicyError(f"{where}: {text!r} is not a duration like 4h, 1d or 30m")
        amount, unit = float(found[1]), found[2]
        if unit == "d":
            return cls(days=amount)
        return cls(minutes=amount * 60 if unit == "h" else amount)

    def on(self, calendar: WorkingCalendar) -> timedelta:
        return calendar.day_length * self.days + timedelta(minutes=self.minutes)


@dataclass(frozen=True)
class ClockPolicy:
    accept: WorkingDuration
    contact: WorkingDuration
    resolve: WorkingDuration


@dataclass(frozen=True)
class RevisitPolicy:
    delay: WorkingDuration = WorkingDuration(minutes=24 * 60)
    call_window: tuple[time, time] = (time(9), time(20))
    working_days_only: bool = True
    retries: int = 3
    answer_timeout: timedelta = timedelta(minutes=120)
    survey_valid: WorkingDuration = WorkingDuration(days=3)


@dataclass(frozen=True)
class DueTimes:
    accept: datetime
    contact: datetime
    resolve: datetime


@dataclass(frozen=True)
class SlaPolicy:
    defaults: ClockPolicy
    categories: dict[str, ClockPolicy] = field(default_factory=dict)
    periods: tuple[str, ...] = DEFAULT_PERIODS
    municipal_after: WorkingDuration = WorkingDuration(days=1)
    revisit: RevisitPolicy = RevisitPolicy()

    def for_category(self, category: str | None) -> ClockPolicy:
        return self.categories.get(category or "", self.defaults)

    def due_times(
        self, calendar: WorkingCalendar, category: str | None, start: datetime
    ) -> DueTimes:
        clocks = self.for_category(category)
        return DueTimes(
            accept=calendar.add(start, clocks.accept.on(calendar)),
            contact=calendar.add(start, clocks.contact.on(calendar)),
            resolve=calendar.add(start, clocks.resolve.on(calendar)),
        )

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> SlaPolicy:
        periods = tuple((raw.get("working_day") or {}).get("periods") or DEFAULT_PERIODS)
        try:
            for period in periods:
                parse_period(period)
        except CalendarError as exc:
            raise PolicyError(f"working_day.periods: {exc}") from None
        default_raw = raw.get("defaults") or {}
        missing = [clock for clock in CLOCKS if clock not in default_raw]
        if missing:
            raise PolicyError(f"defaults: missing {', '.join(missing)}")
        defaults = ClockPolicy(
            **{c: WorkingDuration.parse(default_raw[c], f"defaults.{c}") for c in CLOCKS}
        )
        categories: dict[str, ClockPolicy] = {}
        for key, overrides in (raw.get("categories") or {}).items():
            overrides = overrides or {}
            unknown = set(overrides) - set(CLOCKS)
            if unknown:
                raise PolicyError(f"categories.{key}: unknown clock {', '.join(sorted(unknown))}")
            categories[str(key)] = replace(
                defaults,
                **{
                    c: WorkingDuration.parse(v, f"categories.{key}.{c}")
                    for c, v in overrides.items()
                },
            )
        escalation = raw.get("escalation") or {}
        revisit_raw = raw.get("revisit") or {}
        revisit = RevisitPolicy()
        if revisit_raw:
            window_text = str(revisit_raw.get("call_window", "09:00-20:00"))
            try:
                window = parse_period(window_text)
            except CalendarError as exc:
                raise PolicyError(f"revisit.call_window: {exc}") from None
            call_on = str(revisit_raw.get("call_on", "working_days"))
            if call_on not in ("working_days", "any_day"):
                raise PolicyError("revisit.call_on: expected working_days or any_day")
            revisit = RevisitPolicy(
                delay=WorkingDuration.parse(revisit_raw.get("delay", "24h"), "revisit.delay"),
                call_window=window,
                working_days_only=call_on == "working_days",
                retries=int(revisit_raw.get("retries", 3)),
                answer_timeout=timedelta(
                    minutes=int(revisit_raw.get("answer_timeout_minutes", 120))
                ),
                survey_valid=WorkingDuration.parse(
                    revisit_raw.get("survey_valid", "3d"), "revisit.survey_valid"
                ),
            )
        return cls(
            defaults=defaults,
            categories=categories,
            periods=periods,
            municipal_after=WorkingDuration.parse(
                escalation.get("municipal_after", "1d"), "escalation.municipal_after"
            ),
            revisit=revisit,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> SlaPolicy:
        source = path or Path(str(files("tickets") / "data" / "sla.yaml"))
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise PolicyError(f"{source.name}: expected a mapping")
        return cls.from_mapping(raw)


@dataclass(frozen=True)
class ClockReading:
    """One SLA clock of a ticket, as shown to people: due, done, and how it stands."""

    name: str
    due_at: datetime | None
    done_at: datetime | None
    status: str  # "not_started", "running", "overdue", "met", "missed"
    working_seconds_left: int | None


def read_clock(
    calendar: WorkingCalendar,
    name: str,
    due_at: datetime | None,
    done_at: datetime | None,
    now: datetime,
) -> ClockReading:
    if due_at is None:
        return ClockReading(name, None, done_at, "not_started", None)
    if done_at is not None:
        return ClockReading(name, due_at, done_at, "met" if done_at <= due_at else "missed", None)
    left = calendar.between(now, due_at)
    status = "running" if now <= due_at else "overdue"
    return ClockReading(name, due_at, None, status, int(left.total_seconds()))
