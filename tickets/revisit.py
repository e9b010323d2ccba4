"""The client revisit (客户回访): when to call, and the signed one-time link of the SMS survey.

Rules (tickets/data/sla.yaml, ``revisit``): the first call is due a working-time delay after the
resolution (default 24 working hours); calls are placed only inside the call window (default
09:00-20:00 local time, on working days); an unanswered call is retried on later days, up to
``retries`` times (default 3), then an SMS survey with a signed link is sent; if that gets no
answer within ``survey_valid``, the case closes as ``revisit_unreachable``.

Outcome codes are data (tickets/data/revisit_outcomes.yaml).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from tickets.calendar import WorkingCalendar
from tickets.sla import RevisitPolicy

TOKEN_CONTEXT = b"sme-hotline revisit survey v1"


@dataclass(frozen=True)
class OutcomeCode:
    code: str
    zh: str
    en: str
    answered: bool
    reached: bool


@cache
def outcome_codes() -> dict[str, OutcomeCode]:
    raw: Any = yaml.safe_load(
        (files("tickets") / "data" / "revisit_outcomes.yaml").read_text(encoding="utf-8")
    )
    return {
        str(code): OutcomeCode(
            code=str(code),
            zh=str(entry["zh"]),
            en=str(entry["en"]),
            answered=bool(entry["answered"]),
            reached=bool(entry["reached"]),
        )
        for code, entry in raw.items()
    }


def answered_codes() -> list[str]:
    return sorted(code for code, o in outcome_codes().items() if o.answered)


def reached_codes() -> list[str]:
    return sorted(code for code, o in outcome_codes().items() if o.reached)


def _calling_day(calendar: WorkingCalendar, policy: RevisitPolicy, day: date) -> bool:
    return calendar.is_working_day(day) if policy.working_days_only else True


def first_call_at(
    calendar: WorkingCalendar, policy: RevisitPolicy, resolved_at: datetime
) -> datetime:
    """When the first revisit call is placed: the delay later, moved into the call window."""
    due = calendar.add(resolved_at, policy.delay.on(calendar))
    return next_call_moment(calendar, policy, due)


def next_call_moment(
    calendar: WorkingCalendar, policy: RevisitPolicy, moment: datetime
) -> datetime:
    """``moment`` if a call may be placed then, else the start of the next call window."""
    local = calendar.local(moment)
    opens, closes = policy.call_window
    day = local.date()
    for _ in range(400):
        if _calling_day(calendar, policy, day):
            window_start = datetime.combine(day, opens, tzinfo=calendar.zone)
            window_end = datetime.combine(day, closes, tzinfo=calendar.zone)
            if local < window_end:
                return max(local, window_start).astimezone(UTC)
        day += timedelta(days=1)
        local = datetime.combine(day, opens, tzinfo=calendar.zone)
    raise ValueError("no calling day within 400 days")


def retry_call_at(
    calendar: WorkingCalendar, policy: RevisitPolicy, failed_at: datetime
) -> datetime:
    """A retry on a later calling day, at the same time of day as the failed attempt (within
    the window): people who were out at 10:00 on Monday may be in at 10:00 on Tuesday, and a
    retry on the same day would not count as another try."""
    local = calendar.local(failed_at)
    opens, closes = policy.call_window
    latest = (datetime.combine(local.date(), closes) - timedelta(minutes=30)).time()
    clock = min(max(local.time().replace(tzinfo=None), opens), latest)
    day = local.date() + timedelta(days=1)
    while not _calling_day(calendar, policy, day):
        day += timedelta(days=1)
    return datetime.combine(day, clock, tzinfo=calendar.zone).astimezone(UTC)


def may_call(calendar: WorkingCalendar, policy: RevisitPolicy, moment: datetime) -> bool:
    return next_call_moment(calendar, policy, moment) == moment.astimezone(UTC)


# --- The SMS survey's signed one-time link -------------------------------------------------


class InvalidSurveyToken(ValueError):
    """The survey link is malformed, forged, expired or already used."""


@dataclass(frozen=True)
class SurveyClaim:
    ticket_id: int
    revisit_id: int
    expires_at: datetime


def derive_secret(master: str) -> bytes:
    """A key for survey links only, derived from a settings secret (so the master secret itself
    never signs anything a firm can see)."""
    return hmac.new(master.encode(), TOKEN_CONTEXT, hashlib.sha256).digest()


def _signature(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_survey_token(
    secret: bytes, *, ticket_id: int, revisit_id: int, expires_at: datetime
) -> str:
    message = f"{ticket_id}.{revisit_id}.{int(expires_at.timestamp())}"
    return f"{message}.{_signature(secret, message)}"


def verify_survey_token(secret: bytes, token: str, *, now: datetime) -> SurveyClaim:
    """The claim of a well-signed, unexpired token. One-time use is checked against the revisit
    (see ``TicketService.redeem_survey``): a revisit with an outcome refuses its link."""
    parts = token.split(".")
    if len(parts) != 4 or not all(parts):
        raise InvalidSurveyToken("malformed survey link")
    message, signature = ".".join(parts[:3]), parts[3]
    if not hmac.compare_digest(_signature(secret, message), signature):
        raise InvalidSurveyToken("survey link signature does not match")
    try:
        ticket_id, revisit_id, expires = (int(p) for p in parts[:3])
    except ValueError:
        raise InvalidSurveyToken("malformed survey link") from None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise InvalidSurveyToken("survey link has expired")
    return SurveyClaim(ticket_id=ticket_id, revisit_id=revisit_id, expires_at=expires_at)
