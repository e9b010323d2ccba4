from __future__ import annotations

from datetime import datetime

import pytest

from kb.hours import HoursError, parse_hours


def test_split_day_and_saturday_morning() -> None:
    hours = parse_hours("mon-fri 09:00-12:00,14:00-17:30; sat 09:00-12:00")
    assert hours.is_open(datetime(2026, 11, 27, 9, 0))  # a Friday
    assert not hours.is_open(datetime(2026, 11, 27, 12, 30))
    assert hours.is_open(datetime(2026, 11, 27, 17, 29))
    assert not hours.is_open(datetime(2026, 11, 27, 17, 30))
    assert hours.is_open(datetime(2026, 11, 28, 11, 59))  # Saturday
    assert not hours.is_open(datetime(2026, 11, 28, 14, 0))
    assert not hours.is_open(datetime(2026, 11, 29, 10, 0))  # Sunday


def test_day_lists_and_always_open() -> None:
    hours = parse_hours("mon,wed,fri 08:30-11:30")
    assert hours.is_open(datetime(2026, 11, 25, 9, 0))  # Wednesday
    assert not hours.is_open(datetime(2026, 11, 24, 9, 0))  # Tuesday
    assert parse_hours("24h").is_open(datetime(2026, 11, 29, 3, 0))


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "mon-fri",
        "mon-fri 9-5",
        "fri-mon 09:00-10:00",
        "moon 09:00-10:00",
        "mon 10:00-09:00",
        "mon 25:00-26:00",
    ],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(HoursError):
        parse_hours(spec)
