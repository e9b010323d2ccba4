"""Public shapes of tickets (personal data masked)."""

from __future__ import annotations

from datetime import datetime

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
