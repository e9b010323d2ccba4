"""Office hours as a small weekly grammar.

Example: ``mon-fri 09:00-12:00,14:00-17:30; sat 09:00-12:00``.

Groups are separated by ``;``. A group is a day set (``mon-fri``, ``sat``, ``mon,wed,fri``,
``mon-sat``) then one or more ``HH:MM-HH:MM`` intervals separated by commas. Times are local to
the hotline's time zone. ``24h`` as the whole spec means always open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class HoursError(ValueError):
    pass


@dataclass(frozen=True)
class WeeklyHours:
    # One tuple of (start, end) intervals per weekday, Monday first.
    days: tuple[tuple[tuple[time, time], ...], ...]

    def is_open(self, local: datetime) -> bool:
        now = local.time()
        return any(start <= now < end for start, end in self.days[local.weekday()])


def _day_set(text: str) -> set[int]:
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                raise HoursError(f"unknown day range {part!r}")
            lo, hi = DAYS.index(first), DAYS.index(last)
            if lo > hi:
                raise HoursError(f"day range {part!r} runs backwards")
            chosen.update(range(lo, hi + 1))
        elif part in DAYS:
            chosen.add(DAYS.index(part))
        else:
            raise HoursError(f"unknown day {part!r}")
    return chosen


def _clock(hours: str, minutes: str, source: str) -> time:
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time.max
    if h > 23 or m > 59:
        raise HoursError(f"bad time in {source!r}")
    return time(h, m)


def parse_hours(spec: str) -> WeeklyHours:
    spec = spec.strip().lower()
    if not spec:
        raise HoursError("empty office hours")
    if spec == "24h":
        whole_day = ((time.min, time.max),)
        return WeeklyHours(days=tuple(whole_day for _ in DAYS))
    per_day: list[list[tuple[time, time]]] = [[] for _ in DAYS]
    for group in spec.split(";"):
        group = group.strip()
        if not group:
            continue
        day_text, _, intervals_text = group.partition(" ")
        if not intervals_text.strip():
            raise HoursError(f"group {group!r} has no time interval")
        days = _day_set(day_text)
        for interval in intervals_text.replace(" ", "").split(","):
            found = _INTERVAL.match(interval)
            if not found:
                raise HoursError(f"bad interval {interval!r} (want HH:MM-HH:MM)")
            start = _clock(found[1], found[2], interval)
            end = _clock(found[3], found[4], interval)
            if start >= end:
                raise HoursError(f"interval {interval!r} ends before it starts")
            for day in days:
                per_day[day].append((start, end))
    return WeeklyHours(days=tuple(tuple(sorted(intervals)) for intervals in per_day))
