"""Case tables: firms, tickets, their events, routing decisions, revisits, inbound messages, the
transactional outbox and the record of outbound calls and messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, and_, case, event, func
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


class Role(StrEnum):
    """Who may act on tickets. Institution users are bound to one institution."""

    agent = "agent"
    supervisor = "supervisor"
    institution = "institution"
    admin = "admin"
    system = "system"


class Closure(StrEnum):
    """Why a ticket ended (closed or cancelled)."""

    revisit_met = "revisit_met"
    revisit_refused = "revisit_refused"
    revisit_unreachable = "revisit_unreachable"
    supervisor = "supervisor"
    complaint_upheld = "complaint_upheld"
    complaint_dismissed = "complaint_dismissed"
    spam = "spam"
    duplicate = "duplicate"
    withdrawn = "withdrawn"


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
    # A complaint points at the ticket it complains about.
    related_ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    # A cancelled duplicate points at the ticket it duplicates.
    duplicate_of_id: int | None = Field(default=None, foreign_key="ticket.id")
    # A complaint about a hotline agent names them, so that agent never handles it.
    subject_agent: str | None = Field(default=None, max_length=96)
    assignee: str | None = Field(default=None, max_length=96)
    # Optimistic concurrency: every change is ``UPDATE ... WHERE id = :id AND version = :v``.
    version: int = Field(default=1)
    created_at: datetime = timestamp_field(default_factory=utcnow, index=True)
    updated_at: datetime = timestamp_field(default_factory=utcnow)
    # The ticket holds one unit of its institution's capacity (``Institution.open_cases``).
    counts_as_open: bool = False
    # Lifecycle milestones (UTC), the measures are computed from them.
    dispatched_at: datetime | None = timestamp_field(default=None)
    accepted_at: datetime | None = timestamp_field(default=None)
    first_contact_at: datetime | None = timestamp_field(default=None)
    resolved_at: datetime | None = timestamp_field(default=None)
    closed_at: datetime | None = timestamp_field(default=None)
    # SLA clocks, on the working calendar, set at each dispatch.
    accept_due_at: datetime | None = timestamp_field(default=None)
    contact_due_at: datetime | None = timestamp_field(default=None)
    resolve_due_at: datetime | None = timestamp_field(default=None)
    escalation_level: int = 0
    escalated_at: datetime | None = timestamp_field(default=None)
    reopen_count: int = 0
    closure: Closure | None = enum_field(Closure, 24, default=None, nullable=True)
    # The latest revisit's outcome code (tickets/data/revisit_outcomes.yaml) and score 1..5.
    revisit_outcome: str | None = Field(default=None, max_length=16)
    satisfaction: int | None = Field(default=None)


class TicketEvent(SQLModel, table=True):
    """Append-only timeline of a ticket: who did what, when, from which state to which."""

    __tablename__ = "ticket_event"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = timestamp_field(default_factory=utcnow)
    actor: str = Field(max_length=96)
    actor_role: str = Field(default="system", max_length=16)
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=20)
    to_state: str | None = Field(default=None, max_length=20)
    note: str = Field(default="", sa_type=Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


@event.listens_for(TicketEvent, "before_update")
@event.listens_for(TicketEvent, "before_delete")
def _events_are_append_only(_mapper: Any, _connection: Any, target: TicketEvent) -> None:
    raise RuntimeError(f"ticket events are append-only (event {target.id})")


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
    # Set by Twilio when its Advanced Opt-Out handled the text (STOP, START, HELP) and answered.
    opt_out_type: str = Field(default="", max_length=16)
    # When the worker answered it (see ivr_flows.sms): a text is stored by the webhook and
    # answered by a job, in order per sender.
    answered_at: datetime | None = timestamp_field(default=None)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    reply: str = Field(default="", sa_type=Text)


class Revisit(SQLModel, table=True):
    """One client revisit (客户回访) after a resolution: its call attempts and its outcome."""

    __tablename__ = "revisit"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    # The institution that resolved the case: the one the outcome is about.
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    due_at: datetime = timestamp_field()
    # Calls placed, and how many of them went unanswered (a retry is due while they are equal).
    attempts: int = 0
    unanswered: int = 0
    last_attempt_at: datetime | None = timestamp_field(default=None)
    next_attempt_at: datetime | None = timestamp_field(default=None)
    survey_sent_at: datetime | None = timestamp_field(default=None)
    survey_expires_at: datetime | None = timestamp_field(default=None)
    outcome: str | None = Field(default=None, max_length=16)
    satisfaction: int | None = None
    comment: str = Field(default="", sa_type=Text)
    recording_url: str | None = Field(default=None, max_length=512)
    completed_at: datetime | None = timestamp_field(default=None, index=True)
    completed_by: str | None = Field(default=None, max_length=96)
    created_at: datetime = timestamp_field(default_factory=utcnow)


class OutboxMessage(SQLModel, table=True):
    """A job that a committed state change needs (notify, SLA timer, revisit, SMS).

    Written in the same transaction as the change, moved into RQ after commit by the relay, and
    marked done by the job itself in the transaction of its effect: nothing is lost when Redis
    is down, and a job delivered twice does nothing the second time.
    """

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    task: str = Field(max_length=48)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    queue: str = Field(default="default", max_length=16)
    run_at: datetime | None = timestamp_field(default=None)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    relayed_at: datetime | None = timestamp_field(default=None, index=True)
    done_at: datetime | None = timestamp_field(default=None)
    result: str = Field(default="", max_length=200)


class OutboundCall(SQLModel, table=True):
    """An outbound call placed through the telephony port (offline: to be answered by the
    phone simulator or a test; with Twilio: the call's SID and last known status)."""

    __tablename__ = "outbound_call"
    id: int | None = Field(default=None, primary_key=True)
    to_number: str = Field(max_length=32)
    from_number: str = Field(default="", max_length=32)
    url: str = Field(max_length=512)
    purpose: str = Field(max_length=32)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    status: str = Field(default="queued", max_length=16, index=True)
    provider: str = Field(default="offline", max_length=16)
    provider_sid: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


class OutboundMessage(SQLModel, table=True):
    """An outbound SMS (to a firm, or a notice to a platform). ``suppressed`` when the firm has
    opted out: kept so that the record shows the message was due and why it was not sent."""

    __tablename__ = "outbound_message"
    id: int | None = Field(default=None, primary_key=True)
    to_number: str = Field(max_length=32)
    from_number: str = Field(default="", max_length=32)
    body: str = Field(sa_type=Text)
    purpose: str = Field(max_length=32)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    firm_id: int | None = Field(default=None, foreign_key="firm.id")
    institution_id: int | None = Field(default=None, foreign_key="institution.id")
    status: str = Field(default="queued", max_length=16, index=True)
    provider: str = Field(default="offline", max_length=16)
    provider_sid: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


# --- indexes of the hot read paths ---------------------------------------------------------
# Declared with the tables (not only in their migration) so that autogenerate keeps them.

# The states of the work queue's default view: every ticket someone still has to act on.
QUEUE_STATES = (
    TicketState.new,
    TicketState.dispatched,
    TicketState.accepted,
    TicketState.in_progress,
    TicketState.reopened,
    TicketState.escalated,
    TicketState.declined,
)


def queue_urgency() -> Any:
    """The moment by which something must happen to a ticket, the queue's sort key: acceptance
    while not yet accepted, then resolution; a ticket with no clock yet (not dispatched) counts
    from its opening. The queue's indexes are built on this very expression, so the queries
    must use it, not a copy."""
    ticket = Ticket.__table__.c  # type: ignore[attr-defined]
    return func.coalesce(
        case((ticket.accepted_at.is_(None), ticket.accept_due_at)),
        ticket.resolve_due_at,
        ticket.created_at,
    )


_ticket = Ticket.__table__.c  # type: ignore[attr-defined]
_queue_predicate = _ticket.state.in_([state.value for state in QUEUE_STATES])
# The default view (service tickets in a queue state, most urgent first) reads this index in
# order and stops after a page, however many tickets have ended.
Index(
    "ix_ticket_queue_open",
    _ticket.kind,
    queue_urgency(),
    _ticket.id,
    postgresql_where=_queue_predicate,
    sqlite_where=_queue_predicate,
)
# A view narrowed to one state (and any further filter) reads this one in order.
Index("ix_ticket_queue_state", _ticket.kind, _ticket.state, queue_urgency(), _ticket.id)
# The ticket page lists the SMS of its ticket.
Index("ix_inbound_message_ticket_id", InboundMessage.__table__.c.ticket_id)  # type: ignore[attr-defined]
# The /metrics gauge of SLA breaches counts these rows, not the whole outbox.
_outbox = OutboxMessage.__table__.c  # type: ignore[attr-defined]
_breach = and_(_outbox.task == "sla_check", _outbox.result == "escalated")
Index("ix_outbox_sla_breaches", _outbox.id, postgresql_where=_breach, sqlite_where=_breach)
# The outbox keeps its finished rows; the relay's rescue pass (every few seconds in every worker)
# and the backlog gauge read only the unfinished ones, in id order.
_undone = _outbox.done_at.is_(None)
Index("ix_outbox_undone", _outbox.id, postgresql_where=_undone, sqlite_where=_undone)
# The job answering a text first answers the sender's earlier texts still waiting, in order.
_inbound = InboundMessage.__table__.c  # type: ignore[attr-defined]
_unanswered = _inbound.answered_at.is_(None)
Index(
    "ix_inbound_message_unanswered",
    _inbound.from_number,
    _inbound.id,
    postgresql_where=_unanswered,
    sqlite_where=_unanswered,
)
