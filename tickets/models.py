"""Case tables: firms, tickets, their events, routing decisions and inbound messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from kb.db import enum_field, timestamp_field, utcnow


class TicketKind(StrEnum):
    service = "service"
    complaint = "complaint"


class TicketState(StrEnum):
    new = "new"
    dispatched = "dispatched"
    accepted = "accepted"
    in_progress = "in_progress"
    resolved = "resolved"
    revisit_pending = "revisit_pending"
    closed = "closed"
    reopened = "reopened"
    escalated = "escalated"
    declined = "declined"
    cancelled = "cancelled"


class Channel(StrEnum):
    sms = "sms"
    voice = "voice"
    web = "web"
    open311 = "open311"
    monitor = "monitor"


class Firm(SQLModel, table=True):
    """One firm, one identity: keyed by the caller's phone number in E.164."""

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(unique=True, max_length=20)
    name: str = Field(default="", max_length=128)
    district_code: str | None = Field(default=None, foreign_key="district.code", max_length=32)
    cluster_code: str | None = Field(default=None, foreign_key="cluster.code", max_length=48)
    industry: str = Field(default="", max_length=64)
    language: str = Field(default="zh", max_length=2)
    sms_opted_out: bool = False
    created_at: datetime = timestamp_field(default_factory=utcnow)


class TicketCounter(SQLModel, table=True):
    """Per-day sequence behind human-friendly ticket numbers."""

    __tablename__ = "ticket_counter"
    day: str = Field(primary_key=True, max_length=8)
    last: int = 0


class Ticket(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(unique=True, max_length=20)
    kind: TicketKind = enum_field(TicketKind, 16, default=TicketKind.service, index=True)
    state: TicketState = enum_field(TicketState, 20, default=TicketState.new, index=True)
    channel: Channel = enum_field(Channel, 16)
    category: str | None = Field(
        default=None, foreign_key="category.key", max_length=32, index=True
    )
    district_code: str | None = Field(
        default=None, foreign_key="district.code", max_length=32, index=True
    )
    cluster_code: str | None = Field(default=None, foreign_key="cluster.code", max_length=48)
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    firm_id: int | None = Field(default=None, foreign_key="firm.id", index=True)
    caller_phone: str = Field(default="", max_length=20, index=True)
    language: str = Field(default="zh", max_length=2)
    summary: str = Field(default="", sa_type=Text)
    classification: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    related_ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    assignee: str | None = Field(default=None, max_length=64)
    version: int = Field(default=1)
    created_at: datetime = timestamp_field(default_factory=utcnow, index=True)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


class TicketEvent(SQLModel, table=True):
    """Append-only timeline of a ticket: who did what, when, from which state to which."""

    __tablename__ = "ticket_event"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = timestamp_field(default_factory=utcnow)
    actor: str = Field(max_length=96)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str | None = Field(default=None, max_length=20)
    note: str = Field(default="", sa_type=Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class RoutingRecord(SQLModel, table=True):
    """A routing decision stored with its ticket: inputs, choice, reasons and the runners-up."""

    __tablename__ = "routing_record"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = timestamp_field(default_factory=utcnow)
    institution_id: int = Field(foreign_key="institution.id")
    tier: str = Field(max_length=24)
    distance_km: float | None = None
    score: float = 0.0
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reasons: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    candidates: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class InboundMessage(SQLModel, table=True):
    """Every SMS the hotline received, keyed by Twilio's MessageSid for idempotency."""

    __tablename__ = "inbound_message"
    id: int | None = Field(default=None, primary_key=True)
    message_sid: str = Field(unique=True, max_length=64)
    account_sid: str = Field(default="", max_length=64)
    from_number: str = Field(max_length=32, index=True)
    to_number: str = Field(default="", max_length=32)
    body: str = Field(default="", sa_type=Text)
    num_media: int = 0
    received_at: datetime = timestamp_field(default_factory=utcnow)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    reply: str = Field(default="", sa_type=Text)
