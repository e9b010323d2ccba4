"""Public shapes of tickets (personal data masked)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class TicketSummary(BaseModel):
    number: str
    kind: str
    state: str
    category: str | None
    district: str | None
    institution: str | None
    institution_id: int | None
    channel: str
    caller_phone: str
    created_at: datetime
    version: int = 1


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None


class EventPublic(BaseModel):
    at: datetime
    actor: str
    actor_role: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str
    data: dict[str, Any]


class RoutingPublic(BaseModel):
    at: datetime
    institution_id: int
    tier: str
    distance_km: float | None
    score: float
    reasons: list[Any]
    candidates: list[Any]
    inputs: dict[str, Any]


class ClockPublic(BaseModel):
    """An SLA clock: ``status`` is not_started, running, overdue, met or missed."""

    name: str
    due_at: datetime | None
    done_at: datetime | None
    status: str
    working_seconds_left: int | None


class TicketDetail(TicketSummary):
    summary: str
    language: str
    assignee: str | None
    related_ticket: str | None
    duplicate_of: str | None
    closure: str | None
    escalation_level: int
    reopen_count: int
    revisit_outcome: str | None
    satisfaction: int | None
    actions: list[str]
    clocks: list[ClockPublic]
    routing: RoutingPublic | None
    events: list[EventPublic]
