"""Tables of the dialogues: per-call and per-sender state, webhook deliveries, status callbacks.

State lives in the database rather than Redis so that a step's side effects (a ticket opened),
the state that remembers them and the stored reply that makes a repeated delivery harmless are
written in one transaction: a worker that dies half-way leaves none of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from kb.db import timestamp_field, utcnow


class DialogueState(SQLModel, table=True):
    """One conversation in progress: a call (``call:CA…``) or an SMS sender (``sms:+86…``)."""

    __tablename__ = "dialogue_state"
    # Room for in-place updates: a call updates its row at every step (migration 4b8e2f6a1d09).
    __table_args__ = {"postgresql_with": {"fillfactor": 70}}
    key: str = Field(primary_key=True, max_length=80)
    flow: str = Field(max_length=24)
    phone: str = Field(default="", max_length=32, index=True)
    language: str = Field(default="zh", max_length=2)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    finished: bool = False
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)
    expires_at: datetime = timestamp_field(index=True)


class WebhookDelivery(SQLModel, table=True):
    """A webhook already answered: its key and the exact reply, returned again on a retry."""

    __tablename__ = "webhook_delivery"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    response: str = Field(default="", sa_type=Text)
    created_at: datetime = timestamp_field(default_factory=utcnow, index=True)


class CallLog(SQLModel, table=True):
    """Every call status callback Twilio sent (ringing … completed, busy, no-answer, …)."""

    __tablename__ = "call_log"
    id: int | None = Field(default=None, primary_key=True)
    call_sid: str = Field(max_length=64, index=True)
    parent_call_sid: str = Field(default="", max_length=64)
    flow: str = Field(default="", max_length=24)
    status: str = Field(max_length=24)
    direction: str = Field(default="", max_length=24)
    from_number: str = Field(default="", max_length=32)
    to_number: str = Field(default="", max_length=32)
    duration: int | None = None
    answered_by: str = Field(default="", max_length=32)
    sequence: int | None = None
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    at: datetime = timestamp_field(default_factory=utcnow, index=True)


class MessageLog(SQLModel, table=True):
    """Every message status callback (queued, sent, delivered, undelivered, failed, …)."""

    __tablename__ = "message_log"
    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(max_length=64, index=True)
    status: str = Field(max_length=24)
    error_code: str = Field(default="", max_length=16)
    from_number: str = Field(default="", max_length=32)
    to_number: str = Field(default="", max_length=32)
    at: datetime = timestamp_field(default_factory=utcnow, index=True)
