"""Ticket operations. Each state change is one named function taking the acting party: it checks
the transition against :mod:`tickets.lifecycle` (from which states, by which roles), changes the
ticket with ``UPDATE ... WHERE id = :id AND version = :v`` (optimistic concurrency), writes its
append-only event and the outbox rows of the jobs it needs, all in the caller's transaction. The
caller's unit of work commits; nothing is half-written because nothing commits here.

Use the shared instance (``ticket_service.accept(session, ticket, actor=...)``) or the module
aliases (``tickets.service.accept(session, ticket, actor=...)``): they are the same functions.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rapidfuzz import fuzz
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from kb.db import as_utc, utcnow
from kb.repository import catalogue_repository
from routing.decision import Reason, RoutingDecision
from tickets import lifecycle, outbox, revisit, telephony
from tickets.calendar import WorkingCalendar
from tickets.errors import (
    IllegalTransition,
    InvalidRequest,
    NotPermitted,
    StaleTicket,
    TicketError,
)
from tickets.models import (
    Channel,
    Closure,
    Firm,
    Revisit,
    Role,
    RoutingRecord,
    Ticket,
    TicketEvent,
    TicketKind,
    TicketState,
)
from tickets.numbers import find_in_text, format_number
from tickets.phones import mask_phone
from tickets.repository import TicketRepository, ticket_repository
from tickets.sla import SlaPolicy

__all__ = [
    "Actor",
    "IllegalTransition",
    "IntakeResult",
    "InvalidRequest",
    "NotPermitted",
    "StaleTicket",
    "TicketError",
    "TicketService",
    "ticket_service",
]

log = logging.getLogger(__name__)

# A repeat of an open request: same firm, same category, similar text, within this window.
FOLLOW_UP_WINDOW = timedelta(days=7)
# rapidfuzz WRatio (0-100) over the normalised texts; 80 links "想申请贷款 渝北" to
# "我们在渝北区想申请一笔贷款" but not a loan request to a training request.
FOLLOW_UP_SIMILARITY = 80.0
CANCEL_REASONS = (Closure.spam, Closure.duplicate, Closure.withdrawn)
NOTE_MAX = 4000
# Three concatenated SMS segments of Chinese text (67 characters each).
SMS_MAX = 200

# Operators require a sender's signature on texts to Chinese numbers.
SMS_SIGNATURE = {"zh": "【中小企业服务热线】", "en": "SME hotline: "}


def _required_text(text: str | None, what: str, limit: int) -> str:
    body = (text or "").strip()
    if not body:
        raise InvalidRequest(f"{what} needs some text")
    if len(body) > limit:
        raise InvalidRequest(f"{what} is at most {limit} characters")
    return body


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (``user:alice``, with a role, and for institution staff their
    institution) or a part of the system (``system:sms``)."""

    name: str
    role: Role = Role.system
    institution_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        if self.role == Role.institution and self.institution_id is None:
            raise ValueError("an institution user is bound to an institution")


SYSTEM = Actor("system:lifecycle", Role.system)
REROUTE = Actor("system:reroute", Role.system)


@dataclass(frozen=True)
class IntakeResult:
    """What a new request became: a new ticket, or a follow-up linked to an open one."""

    ticket: Ticket
    firm: Firm | None
    follow_up: bool = False
    similarity: float | None = None


@dataclass
class JobOutcome:
    """What a job did, for its outbox row and the logs."""

    result: str
    details: dict[str, Any] = field(default_factory=dict)


def _normalised_text(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", text.casefold())


def similarity(a: str, b: str) -> float:
    return float(fuzz.WRatio(_normalised_text(a), _normalised_text(b)))


class TicketService:
    def __init__(self, repository: TicketRepository, timezone: str = "Asia/Shanghai") -> None:
        self.repository = repository
        self.zone = ZoneInfo(timezone)
        self.policy = SlaPolicy.load()
        self.calendar = WorkingCalendar.load(periods=self.policy.periods, timezone=timezone)
        self.public_base_url = "http://127.0.0.1:8000"
        self.survey_secret = revisit.derive_secret("development only")

    def configure(
        self,
        *,
        timezone: str,
        policy: SlaPolicy | None = None,
        calendar: WorkingCalendar | None = None,
        public_base_url: str | None = None,
        survey_secret: bytes | None = None,
    ) -> None:
        self.zone = ZoneInfo(timezone)
        if policy is not None:
            self.policy = policy
        self.calendar = calendar or WorkingCalendar.load(
            periods=self.policy.periods, timezone=timezone
        )
        if public_base_url is not None:
            self.public_base_url = public_base_url.rstrip("/")
        if survey_secret is not None:
            self.survey_secret = survey_secret

    # --- the transition engine -----------------------------------------------------------

    def _event(
        self,
        session: Session,
        ticket: Ticket,
        actor: Actor,
        action: str,
        *,
        from_state: str | None,
        note: str = "",
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> TicketEvent:
        assert ticket.id is not None
        event = TicketEvent(
            ticket_id=ticket.id,
            at=at or utcnow(),
            actor=actor.name,
            actor_role=actor.role.value,
            action=action,
            from_state=from_state,
            to_state=ticket.state.value,
            note=note,
            data=data or {},
        )
        session.add(event)
        return event

    def check(
        self,
        session: Session,
        ticket: Ticket,
        action: str,
        *,
        actor: Actor,
        expected_version: int | None = None,
    ) -> lifecycle.Rule:
        """Whether ``actor`` may do ``action`` now; raises the domain error that says why not."""
        rule = lifecycle.rule_for(ticket.kind, action)
        if rule is None:
            raise IllegalTransition(ticket, action, f"no such action for a {ticket.kind} ticket")
        lifecycle.check_permitted(
            actor.role,
            actor.name,
            actor.institution_id,
            ticket,
            rule,
            self._related_assignee(session, ticket),
        )
        if expected_version is not None and expected_version != ticket.version:
            raise StaleTicket(
                ticket.number,
                expected=expected_version,
                state=ticket.state.value,
                version=ticket.version,
            )
        if ticket.state not in rule.sources:
            raise IllegalTransition(ticket, action)
        if rule.guard is not None:
            reason = rule.guard(ticket)
            if reason:
                raise IllegalTransition(ticket, action, reason)
        return rule

    def _related_assignee(self, session: Session, ticket: Ticket) -> str | None:
        if ticket.kind != TicketKind.complaint or ticket.related_ticket_id is None:
            return None
        related = self.repository.by_id(session, ticket.related_ticket_id)
        return related.assignee if related else None

    def _move(
        self,
        session: Session,
        ticket: Ticket,
        action: str,
        *,
        actor: Actor,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
        target: TicketState | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> TicketEvent:
        """Check, then change the ticket if nobody else did since it was read, and record it."""
        rule = self.check(session, ticket, action, actor=actor, expected_version=expected_version)
        now = now or utcnow()
        previous = ticket.state
        new_state = target or rule.target or ticket.state
        values: dict[str, Any] = dict(changes or {})
        values.update(state=new_state, version=ticket.version + 1, updated_at=now)
        assert ticket.id is not None
        # What the session holds unwritten (the event of a ticket opened just now) goes out with
        # this transition's event below, in one INSERT, not in a flush of its own before this.
        with session.no_autoflush:
            result = session.execute(
                update(Ticket)
                .where(Ticket.id == ticket.id, Ticket.version == ticket.version)  # type: ignore[arg-type]
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            state, version = self.repository.current_version(session, ticket.id)
            raise StaleTicket(
                ticket.number, expected=ticket.version, state=state.value, version=version
            )
        # The row is written; mirror it on the object without marking it dirty again.
        for key, value in values.items():
            set_committed_value(ticket, key, value)
        event = self._event(
            session,
            ticket,
            actor,
            action,
            from_state=previous.value,
            note=note or "",
            data=data,
            at=now,
        )
        session.flush()
        return event

    def _held(self, ticket: Ticket) -> int | None:
        """The institution whose capacity the ticket holds, if any."""
        return ticket.institution_id if ticket.counts_as_open else None

    def _give_back(self, session: Session, institution_id: int | None) -> None:
        # Called after the ticket's own UPDATE, so every transition locks the ticket row before
        # the institution row: concurrent transitions cannot deadlock on PostgreSQL.
        if institution_id is not None:
            catalogue_repository.adjust_open_cases(session, institution_id, -1)

    # --- intake --------------------------------------------------------------------------

    def find_or_create_firm(self, session: Session, phone: str, *, language: str) -> Firm:
        return self._firm_for(session, phone, language=language)[0]

    def _firm_for(self, session: Session, phone: str, *, language: str) -> tuple[Firm, bool]:
        """The firm with this phone, and whether it was made now."""
        firm = self.repository.firm_by_phone(session, phone)
        if firm is not None:
            return firm, False
        return self.create_firm(session, phone, language=language), True

    def create_firm(
        self, session: Session, phone: str, *, language: str, district_code: str | None = None
    ) -> Firm:
        """A firm first heard of now (the caller looked the phone up in this transaction)."""
        firm = Firm(phone=phone, language=language, district_code=district_code)
        session.add(firm)
        session.flush()
        return firm

    def open_ticket(
        self,
        session: Session,
        *,
        actor: Actor,
        channel: Channel,
        caller_phone: str,
        summary: str,
        language: str,
        kind: TicketKind = TicketKind.service,
        category: str | None = None,
        district_code: str | None = None,
        cluster_code: str | None = None,
        classification: dict[str, Any] | None = None,
        firm: Firm | None = None,
        related_ticket: Ticket | None = None,
        subject_agent: str | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        now = now or utcnow()
        day = now.astimezone(self.zone).strftime("%y%m%d")
        number = format_number(day, self.repository.next_sequence(session, day))
        ticket = Ticket(
            number=number,
            kind=kind,
            state=TicketState.new,
            channel=channel,
            caller_phone=caller_phone,
            firm_id=firm.id if firm else None,
            summary=summary,
            language=language,
            category=category,
            district_code=district_code,
            cluster_code=cluster_code,
            classification=classification or {},
            related_ticket_id=related_ticket.id if related_ticket else None,
            subject_agent=subject_agent,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        data: dict[str, Any] = {
            "channel": channel.value,
            "category": category,
            "district": district_code,
        }
        if related_ticket is not None:
            data["complains_about"] = related_ticket.number
        self._event(session, ticket, actor, "open", from_state=None, data=data, at=now)
        return ticket

    def intake(
        self,
        session: Session,
        *,
        actor: Actor,
        channel: Channel,
        caller_phone: str,
        summary: str,
        language: str,
        kind: TicketKind = TicketKind.service,
        category: str | None = None,
        district_code: str | None = None,
        cluster_code: str | None = None,
        classification: dict[str, Any] | None = None,
        firm: Firm | None = None,
        firm_is_new: bool = False,
        now: datetime | None = None,
    ) -> IntakeResult:
        """A new request: linked as a follow-up when it repeats an open one of the same firm
        (same category, similar text, within 7 days), else opened as a new ticket.

        A complaint that quotes a ticket number is linked to that ticket. ``firm_is_new`` says
        the caller made ``firm`` in this transaction: it has no earlier request to repeat, and
        nobody looks for one.
        """
        now = now or utcnow()
        if firm is None and caller_phone:
            firm, firm_is_new = self._firm_for(session, caller_phone, language=language)
        if (
            kind == TicketKind.service
            and firm is not None
            and firm.id is not None
            and not firm_is_new
            and category
        ):
            best: tuple[float, Ticket] | None = None
            for candidate in self.repository.open_requests_of_firm(
                session, firm.id, category, now - FOLLOW_UP_WINDOW
            ):
                score = similarity(summary, candidate.summary)
                if score >= FOLLOW_UP_SIMILARITY and (best is None or score > best[0]):
                    best = (score, candidate)
            if best is not None:
                score, original = best
                self._event(
                    session,
                    original,
                    actor,
                    "follow_up",
                    from_state=original.state.value,
                    note=summary,
                    data={"channel": channel.value, "similarity": round(score, 1)},
                    at=now,
                )
                session.flush()
                return IntakeResult(original, firm, follow_up=True, similarity=score)
        related = None
        if kind == TicketKind.complaint:
            quoted = find_in_text(summary)
            related = self.repository.by_number(session, quoted) if quoted else None
        ticket = self.open_ticket(
            session,
            actor=actor,
            channel=channel,
            caller_phone=caller_phone,
            summary=summary,
            language=language,
            kind=kind,
            category=category,
            district_code=district_code,
            cluster_code=cluster_code,
            classification=classification,
            firm=firm,
            related_ticket=related,
            now=now,
        )
        return IntakeResult(ticket, firm)

    # --- service tickets: from dispatch to resolution ------------------------------------

    def claim(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """An agent (or, for a complaint, a supervisor) takes the ticket as theirs."""
        self._move(
            session,
            ticket,
            "claim",
            actor=actor,
            note=note,
            changes={"assignee": actor.name},
            expected_version=expected_version,
            now=now,
        )
        return ticket

    def release(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The claim given up: the ticket is nobody's again. An agent releases only their own
        claim; a supervisor or an admin releases anyone's."""
        self.check(session, ticket, "release", actor=actor, expected_version=expected_version)
        if actor.role == Role.agent and ticket.assignee != actor.name:
            raise NotPermitted(
                f"ticket {ticket.number} is claimed by {ticket.assignee}: only they or a "
                "supervisor may release it"
            )
        self._move(
            session,
            ticket,
            "release",
            actor=actor,
            note=note,
            data={"assignee": ticket.assignee},
            changes={"assignee": None},
            now=now,
        )
        return ticket

    def reclassify(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        category_key: str,
        reason: str,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """Another service category, with who and why. While no institution has accepted the
        case, routing runs again on the new category and its decision is stored with its
        reasons; a case waiting at an institution that is no longer routing's choice is handed
        over to the new one (its clocks start again)."""
        self.check(session, ticket, "reclassify", actor=actor, expected_version=expected_version)
        key = (category_key or "").strip()
        why = (reason or "").strip()
        if not why:
            raise InvalidRequest("a re-classification needs a reason")
        if catalogue_repository.category(session, key) is None:
            known = ", ".join(c.key for c in catalogue_repository.categories(session))
            raise InvalidRequest(f"no service category {key!r}; one of {known}")
        if key == ticket.category:
            raise InvalidRequest(f"ticket {ticket.number} is already in category {key}")
        now = now or utcnow()
        previous = ticket.category
        classification = dict(ticket.classification or {})
        classification["reclassified"] = {
            "from": previous,
            "to": key,
            "by": actor.name,
            "reason": why,
            "at": now.isoformat(),
        }
        changes: dict[str, Any] = {"category": key, "classification": classification}
        data: dict[str, Any] = {"from": previous, "to": key}
        decision = (
            self.suggest(session, ticket, category=key) if ticket.accepted_at is None else None
        )
        held = self._held(ticket)
        hand_over = (
            decision is not None
            and ticket.state == TicketState.dispatched
            and decision.institution_id != ticket.institution_id
        )
        if decision is not None:
            data["routed_to"] = decision.institution_id
        if hand_over:
            assert decision is not None
            changes.update(self._handover(ticket, decision, key, now))
            data["previous_institution_id"] = ticket.institution_id
        self._move(
            session,
            ticket,
            "reclassify",
            actor=actor,
            note=why,
            data=data,
            changes=changes,
            now=now,
        )
        if hand_over:
            assert decision is not None
            self._after_handover(session, ticket, decision, held, now)
        elif decision is not None:
            self._record_routing(session, ticket, decision, now)
        session.flush()
        return ticket

    def add_note(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        text: str,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """A note on the timeline (an agent's, or an institution's progress note). It counts as
        a change: whoever acts next on an older version is shown the note first."""
        self.check(session, ticket, "note", actor=actor, expected_version=expected_version)
        body = _required_text(text, "a note", NOTE_MAX)
        self._move(
            session,
            ticket,
            "note",
            actor=actor,
            note=body,
            expected_version=expected_version,
            now=now,
        )
        return ticket

    def send_sms(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        text: str,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """A text to the firm from the hotline's number, refused when the firm opted out (退订).
        The event records it; the outbox job sends it after commit (and checks the opt-out
        again, which may have arrived meanwhile)."""
        self.check(session, ticket, "sms", actor=actor, expected_version=expected_version)
        body = _required_text(text, "an SMS from the ticket page", SMS_MAX)
        firm = self.firm_of(session, ticket)
        if firm is not None and firm.sms_opted_out:
            raise InvalidRequest(
                f"the firm of ticket {ticket.number} has opted out of SMS; call it instead"
            )
        event = self._move(
            session,
            ticket,
            "sms",
            actor=actor,
            note=body,
            data={"to": mask_phone(ticket.caller_phone)},
            now=now,
        )
        assert ticket.id is not None and event.id is not None
        outbox.add(session, "sms_firm", {"event_id": event.id}, ticket_id=ticket.id)
        session.flush()
        return ticket

    def deliver_sms(self, session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
        """The ``sms_firm`` job: send the text an ``sms`` event recorded, through the telephony
        port (which records it, or records it ``suppressed`` for a firm that opted out)."""
        event = session.get(TicketEvent, int(payload["event_id"]))
        if event is None or event.action != "sms":
            return JobOutcome("obsolete: no such message")
        ticket = self.repository.by_id(session, event.ticket_id)
        assert ticket is not None
        prefix = SMS_SIGNATURE.get(ticket.language, SMS_SIGNATURE["zh"])
        body = event.note if event.note.startswith(prefix) else prefix + event.note
        message = telephony.current().sms_firm(
            session,
            self.firm_of(session, ticket),
            to=ticket.caller_phone,
            body=body,
            purpose="agent_sms",
            ticket_id=ticket.id,
        )
        return JobOutcome(f"sms {message.status}", {"message_id": message.id})

    def firm_of(self, session: Session, ticket: Ticket) -> Firm | None:
        firm = self.repository.firm(session, ticket.firm_id)
        if firm is None and ticket.caller_phone:
            firm = self.repository.firm_by_phone(session, ticket.caller_phone)
        return firm

    def reveal_phone(
        self, session: Session, ticket: Ticket, *, actor: Actor, now: datetime | None = None
    ) -> TicketEvent:
        """The caller's whole number shown to someone who calls back: allowed to the callback
        roles only, and every reveal is an event. Not a change of the ticket (no version)."""
        self.check(session, ticket, "phone_reveal", actor=actor)
        event = self._event(
            session, ticket, actor, "phone_reveal", from_state=ticket.state.value, at=now
        )
        session.flush()
        return event

    def dispatch(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        decision: RoutingDecision | None = None,
        institution_id: int | None = None,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """Send the case to an institution and start its SLA clocks. The institution is the
        given routing decision, or the one an agent chose, or routing's best choice (excluding
        every institution that declined the case)."""
        self.check(session, ticket, "dispatch", actor=actor, expected_version=expected_version)
        assert ticket.id is not None
        if decision is None:
            decision = self._decide(session, ticket, institution_id)
        now = now or utcnow()
        previous_holder = self._held(ticket)
        changes = self._handover(ticket, decision, ticket.category, now)
        self._move(
            session,
            ticket,
            "dispatch",
            actor=actor,
            note=note,
            data={"institution_id": decision.institution_id, "tier": decision.tier},
            changes=changes,
            now=now,
        )
        self._after_handover(session, ticket, decision, previous_holder, now)
        session.flush()
        return ticket

    def _handover(
        self, ticket: Ticket, decision: RoutingDecision, category: str | None, now: datetime
    ) -> dict[str, Any]:
        """The ticket's columns for a case sent to ``decision``'s institution: its clocks start
        again, on the (possibly new) category's SLA."""
        due = self.policy.due_times(self.calendar, category, now)
        return {
            "institution_id": decision.institution_id,
            "counts_as_open": True,
            "dispatched_at": now,
            "accepted_at": None,
            "first_contact_at": None,
            "accept_due_at": due.accept,
            "contact_due_at": due.contact,
            "resolve_due_at": due.resolve,
            "escalation_level": 0,
        }

    def _after_handover(
        self,
        session: Session,
        ticket: Ticket,
        decision: RoutingDecision,
        previous_holder: int | None,
        now: datetime,
    ) -> None:
        """After the ticket's UPDATE (row locks in one order): the decision is stored, the SLA
        timers are written for the new clocks, capacity moves to the new institution.

        Capacity last: its UPDATE locks the institution's row until the transaction ends, and
        every case routed to that institution waits for the lock (all the texts of a busy
        morning may go to one platform), so the rows written here go out before it, in the
        flush that UPDATE makes, not while others wait."""
        assert ticket.id is not None
        self._record_routing(session, ticket, decision, now)
        for clock, due_at in (
            ("accept", ticket.accept_due_at),
            ("contact", ticket.contact_due_at),
            ("resolve", ticket.resolve_due_at),
        ):
            assert due_at is not None
            outbox.add(
                session,
                "sla_check",
                {"ticket_id": ticket.id, "clock": clock, "due": as_utc(due_at).isoformat()},
                run_at=due_at,
                ticket_id=ticket.id,
                queue="high",
            )
        if previous_holder is not None:
            catalogue_repository.adjust_open_cases(session, previous_holder, -1)
        catalogue_repository.adjust_open_cases(session, decision.institution_id, +1)

    def _record_routing(
        self, session: Session, ticket: Ticket, decision: RoutingDecision, now: datetime
    ) -> None:
        assert ticket.id is not None
        record = decision.to_dict()
        session.add(
            RoutingRecord(
                ticket_id=ticket.id,
                at=now,
                institution_id=decision.institution_id,
                tier=decision.tier,
                distance_km=decision.distance_km,
                score=decision.score,
                inputs=record["inputs"],
                reasons=record["reasons"],
                candidates=record["candidates"],
            )
        )

    def suggest(
        self, session: Session, ticket: Ticket, *, category: str | None = None
    ) -> RoutingDecision | None:
        """Routing's choice for the ticket now (excluding institutions that declined it), or
        None when it cannot be routed (no category, an incomplete catalogue). Stores nothing."""
        category = category or ticket.category
        if not category:
            return None
        try:
            return self._decide(session, ticket, None, category=category)
        except (TicketError, LookupError, ValueError, RuntimeError) as exc:
            # Routing's own refusals (an unknown district, no municipal platform) leave the
            # choice to the agent; they must not block what asked for the suggestion.
            log.warning("ticket %s: no routing suggestion: %s", ticket.number, exc)
            return None

    def _decide(
        self,
        session: Session,
        ticket: Ticket,
        institution_id: int | None,
        *,
        category: str | None = None,
    ) -> RoutingDecision:
        if institution_id is not None:
            chosen = catalogue_repository.institution(session, institution_id)
            if chosen is None or not chosen.active:
                raise InvalidRequest(f"no active institution with id {institution_id}")
            return RoutingDecision(
                institution_id=institution_id,
                tier=chosen.tier.value,
                distance_km=None,
                score=0.0,
                reasons=[Reason("manual", "人工派单", "chosen by an agent")],
                candidates=[],
                inputs={"category": ticket.category, "district": ticket.district_code},
            )
        category = category or ticket.category
        if not category:
            raise InvalidRequest(f"ticket {ticket.number} has no category to route on")
        from routing.match import match

        assert ticket.id is not None
        return match(
            session,
            category=category,
            place=ticket.district_code,
            cluster=ticket.cluster_code,
            exclude=self.repository.declined_by(session, ticket.id),
        )

    def accept(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The institution takes the case (签收)."""
        now = now or utcnow()
        self._move(
            session,
            ticket,
            "accept",
            actor=actor,
            note=note,
            changes={"accepted_at": now},
            expected_version=expected_version,
            now=now,
        )
        return ticket

    def decline(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        reroute: bool = True,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The institution refuses the case (with a reason); it goes to the next best one."""
        # Who may act is answered before what they sent: a forbidden role hears 403, not 422.
        self.check(session, ticket, "decline", actor=actor, expected_version=expected_version)
        if not (note or "").strip():
            raise InvalidRequest("a decline needs a reason in the note")
        now = now or utcnow()
        declined_institution = ticket.institution_id
        held = self._held(ticket)
        self._move(
            session,
            ticket,
            "decline",
            actor=actor,
            note=note,
            data={"institution_id": declined_institution},
            changes={"counts_as_open": False},
            now=now,
        )
        self._give_back(session, held)
        if reroute:
            self._reroute(session, ticket, now=now)
        return ticket

    def _reroute(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """Dispatch a declined case to the next best institution. If routing finds none, the
        decline stands (in a savepoint, so a failed attempt leaves nothing behind) and the case
        waits, declined, for an agent."""
        savepoint = session.begin_nested()
        try:
            self.dispatch(session, ticket, actor=REROUTE, now=now)
            savepoint.commit()
        except InvalidRequest as exc:
            savepoint.rollback()
            session.refresh(ticket)
            log.warning("ticket %s declined and not re-routed: %s", ticket.number, exc)
        except Exception:  # noqa: BLE001 - routing's own failures leave it for an agent
            savepoint.rollback()
            session.refresh(ticket)
            log.exception("ticket %s declined; re-routing failed", ticket.number)

    def start(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The institution starts work, which begins with contacting the firm (first contact)."""
        now = now or utcnow()
        self._move(
            session,
            ticket,
            "start",
            actor=actor,
            note=note,
            changes={"first_contact_at": ticket.first_contact_at or now},
            expected_version=expected_version,
            now=now,
        )
        return ticket

    def resolve(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The institution reports the case done; the client revisit is scheduled."""
        now = now or utcnow()
        self.check(session, ticket, "resolve", actor=actor, expected_version=expected_version)
        held = self._held(ticket)
        changes = {
            "counts_as_open": False,
            "resolved_at": now,
            "first_contact_at": ticket.first_contact_at or now,
        }
        resolved_by = ticket.institution_id
        self._move(session, ticket, "resolve", actor=actor, note=note, changes=changes, now=now)
        self._give_back(session, held)
        assert ticket.id is not None
        call_at = revisit.first_call_at(self.calendar, self.policy.revisit, now)
        row = Revisit(ticket_id=ticket.id, institution_id=resolved_by, due_at=call_at)
        session.add(row)
        session.flush()
        assert row.id is not None
        outbox.add(
            session,
            "revisit_call",
            {"revisit_id": row.id, "attempt": 1},
            run_at=call_at,
            ticket_id=ticket.id,
        )
        session.flush()
        return ticket

    def reopen(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """A supervisor sends a resolved or closed case back for more work."""
        now = now or utcnow()
        self._move(
            session,
            ticket,
            "reopen",
            actor=actor,
            note=note,
            changes={
                "reopen_count": ticket.reopen_count + 1,
                "closure": None,
                "closed_at": None,
            },
            expected_version=expected_version,
            now=now,
        )
        assert ticket.id is not None
        pending_revisit = self.repository.open_revisit(session, ticket.id)
        if pending_revisit is not None:
            # The revisit is moot: the case is being worked again. Its jobs find it completed.
            pending_revisit.completed_at = now
            pending_revisit.completed_by = actor.name
            session.add(pending_revisit)
            session.flush()
        return ticket

    def escalate(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        reason: str = "manual",
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """Raise the case to the district window platform (a missed SLA, an upheld complaint,
        or an agent's call); if still escalated a working day later, to the municipal one."""
        now = now or utcnow()
        self._move(
            session,
            ticket,
            "escalate",
            actor=actor,
            note=note,
            data={"reason": reason},
            changes={"escalation_level": 1, "escalated_at": now},
            expected_version=expected_version,
            now=now,
        )
        self._notify_platform(session, ticket, reason=reason, words=note, municipal=False)
        assert ticket.id is not None
        follow_up_at = self.calendar.add(now, self.policy.municipal_after.on(self.calendar))
        outbox.add(
            session,
            "escalation_follow_up",
            {"ticket_id": ticket.id, "escalated_at": now.isoformat()},
            run_at=follow_up_at,
            ticket_id=ticket.id,
            queue="high",
        )
        session.flush()
        return ticket

    def escalate_municipal(
        self, session: Session, ticket: Ticket, *, actor: Actor, now: datetime | None = None
    ) -> Ticket:
        """Second step of an escalation nobody handled: the municipal platform is told."""
        self._move(
            session,
            ticket,
            "escalate_municipal",
            actor=actor,
            changes={"escalation_level": 2},
            now=now,
        )
        self._notify_platform(session, ticket, reason="unhandled", words=None, municipal=True)
        return ticket

    def _notify_platform(
        self,
        session: Session,
        ticket: Ticket,
        *,
        reason: str,
        words: str | None,
        municipal: bool,
    ) -> None:
        platform = self.repository.supervising_platform(
            session, ticket.district_code, municipal=municipal
        )
        if platform is None or platform.id is None:
            log.error("no platform to notify about ticket %s", ticket.number)
            return
        text = f"【中小企业服务热线】工单{ticket.number}已升级（{reason}），请督办。"
        if words:
            text += f"客户原话：{words[:200]}"
        outbox.add(
            session,
            "notify_institution",
            {
                "institution_id": platform.id,
                "ticket_id": ticket.id,
                "text": text,
                "purpose": "escalation",
            },
            ticket_id=ticket.id,
            queue="high",
        )
        self._event(
            session,
            ticket,
            SYSTEM,
            "notify",
            from_state=ticket.state.value,
            data={"institution_id": platform.id, "tier": platform.tier.value, "reason": reason},
        )

    def cancel(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        reason: Closure | str,
        duplicate_of: Ticket | None = None,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """Spam, a duplicate (of ``duplicate_of``) or withdrawn by the firm."""
        self.check(session, ticket, "cancel", actor=actor, expected_version=expected_version)
        try:
            closure = Closure(reason)
        except ValueError:
            raise InvalidRequest(
                "cancel reason must be one of spam, duplicate, withdrawn"
            ) from None
        if closure not in CANCEL_REASONS:
            raise InvalidRequest("cancel reason must be one of spam, duplicate, withdrawn")
        if closure == Closure.duplicate and (duplicate_of is None or duplicate_of.id == ticket.id):
            raise InvalidRequest("a duplicate names the (other) ticket it duplicates")
        now = now or utcnow()
        held = self._held(ticket)
        changes = {
            "counts_as_open": False,
            "closure": closure,
            "closed_at": now,
            "duplicate_of_id": duplicate_of.id if duplicate_of else None,
        }
        data = {"reason": closure.value}
        if duplicate_of is not None:
            data["duplicate_of"] = duplicate_of.number
        self._move(
            session,
            ticket,
            "cancel",
            actor=actor,
            note=note,
            data=data,
            changes=changes,
            now=now,
        )
        self._give_back(session, held)
        return ticket

    # --- the revisit ---------------------------------------------------------------------

    def place_revisit_call(
        self, session: Session, revisit_row: Revisit, *, attempt: int, now: datetime
    ) -> JobOutcome:
        """Call the firm back (from the revisit job). Outside the call window it is moved to
        the window's next opening instead."""
        ticket = self.repository.by_id(session, revisit_row.ticket_id)
        assert ticket is not None and ticket.id is not None
        if revisit_row.completed_at is not None or ticket.state not in (
            TicketState.resolved,
            TicketState.revisit_pending,
        ):
            return JobOutcome("obsolete: revisit completed or case moved on")
        if revisit_row.attempts >= attempt:
            return JobOutcome(f"obsolete: attempt {attempt} already placed")
        policy = self.policy.revisit
        if not revisit.may_call(self.calendar, policy, now):
            later = revisit.next_call_moment(self.calendar, policy, now)
            outbox.add(
                session,
                "revisit_call",
                {"revisit_id": revisit_row.id, "attempt": attempt},
                run_at=later,
                ticket_id=ticket.id,
            )
            return JobOutcome("outside the call window: moved", {"at": later.isoformat()})
        if ticket.state == TicketState.resolved:
            self._move(session, ticket, "begin_revisit", actor=SYSTEM, now=now)
        url = f"{self.public_base_url}/twilio/revisit?ticket={ticket.number}"
        call = telephony.current().call(
            session, to=ticket.caller_phone, url=url, purpose="revisit", ticket_id=ticket.id
        )
        revisit_row.attempts = attempt
        revisit_row.last_attempt_at = now
        revisit_row.next_attempt_at = None
        session.add(revisit_row)
        self._event(
            session,
            ticket,
            SYSTEM,
            "revisit_call",
            from_state=ticket.state.value,
            data={"attempt": attempt, "call_id": call.id},
            at=now,
        )
        outbox.add(
            session,
            "revisit_answer_timeout",
            {"revisit_id": revisit_row.id, "attempt": attempt},
            run_at=now + policy.answer_timeout,
            ticket_id=ticket.id,
        )
        session.flush()
        return JobOutcome("called", {"attempt": attempt, "call_id": call.id})

    def _open_revisit(self, session: Session, ticket: Ticket) -> Revisit:
        assert ticket.id is not None
        row = self.repository.open_revisit(session, ticket.id)
        if row is None:
            raise InvalidRequest(f"ticket {ticket.number} has no revisit in progress")
        return row

    def revisit_no_answer(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        now: datetime | None = None,
        attempt: int | None = None,
    ) -> Ticket:
        """The latest revisit call went unanswered: retry on a later day, up to the policy's
        retries; after the last one, send the SMS survey. Recording the same unanswered
        attempt twice (a status callback and the timeout) counts it once."""
        now = now or utcnow()
        row = self._open_revisit(session, ticket)
        if attempt is not None and attempt != row.attempts:
            return ticket  # a report about an earlier attempt
        if row.unanswered >= row.attempts:
            return ticket  # already recorded, or no call placed yet
        policy = self.policy.revisit
        retries_left = 1 + policy.retries - row.attempts
        self._move(
            session,
            ticket,
            "revisit_no_answer",
            actor=actor,
            now=now,
            data={"attempt": row.attempts, "retries_left": max(retries_left, 0)},
        )
        row.unanswered = row.attempts
        assert ticket.id is not None and row.id is not None
        if retries_left > 0:
            row.next_attempt_at = revisit.retry_call_at(self.calendar, policy, now)
            outbox.add(
                session,
                "revisit_call",
                {"revisit_id": row.id, "attempt": row.attempts + 1},
                run_at=row.next_attempt_at,
                ticket_id=ticket.id,
            )
            session.add(row)
            session.flush()
            return ticket
        firm = self.repository.firm(session, ticket.firm_id)
        if firm is not None and firm.sms_opted_out:
            session.add(row)
            return self.close_unreachable(
                session, ticket, actor=actor, now=now, note="firm opted out of SMS: no survey"
            )
        row.survey_expires_at = self.calendar.add(now, policy.survey_valid.on(self.calendar))
        outbox.add(session, "revisit_survey_sms", {"revisit_id": row.id}, ticket_id=ticket.id)
        outbox.add(
            session,
            "revisit_survey_expired",
            {"revisit_id": row.id},
            run_at=row.survey_expires_at,
            ticket_id=ticket.id,
        )
        session.add(row)
        session.flush()
        return ticket

    def survey_link(self, row: Revisit) -> str:
        assert row.id is not None and row.survey_expires_at is not None
        token = revisit.make_survey_token(
            self.survey_secret,
            ticket_id=row.ticket_id,
            revisit_id=row.id,
            expires_at=as_utc(row.survey_expires_at),
        )
        return f"{self.public_base_url}/revisit/survey?token={token}"

    def redeem_survey(
        self, session: Session, token: str, *, now: datetime | None = None
    ) -> tuple[Ticket, Revisit]:
        """The ticket and revisit a survey link stands for, if it is genuine, unexpired and
        unused (a revisit with an outcome refuses its link: one-time use)."""
        claim = revisit.verify_survey_token(self.survey_secret, token, now=now or utcnow())
        row = self.repository.revisit(session, claim.revisit_id)
        if row is None or row.ticket_id != claim.ticket_id:
            raise revisit.InvalidSurveyToken("survey link does not match a revisit")
        if row.completed_at is not None:
            raise revisit.InvalidSurveyToken("this survey has already been answered")
        ticket = self.repository.by_id(session, row.ticket_id)
        assert ticket is not None
        return ticket, row

    def record_revisit(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        outcome: str,
        satisfaction: int | None = None,
        comment: str | None = None,
        recording_url: str | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The revisit's answer. Need met and satisfied (≥ 3, or not scored) closes the case;
        otherwise it is reopened and the district window platform is told, with the client's
        words. ``refused`` closes it; ``unreachable`` closes it as unreachable."""
        codes = revisit.outcome_codes()
        if outcome not in codes:
            raise InvalidRequest(f"unknown revisit outcome {outcome!r}; one of {sorted(codes)}")
        if satisfaction is not None and not 1 <= satisfaction <= 5:
            raise InvalidRequest("satisfaction is 1 to 5")
        if outcome == "unreachable":
            return self.close_unreachable(session, ticket, actor=actor, now=now, note=comment)
        now = now or utcnow()
        assert ticket.id is not None
        row = self.repository.open_revisit(session, ticket.id)
        if row is None:
            row = Revisit(ticket_id=ticket.id, institution_id=ticket.institution_id, due_at=now)
        satisfied = outcome == "met" and (satisfaction is None or satisfaction >= 3)
        changes: dict[str, Any] = {"revisit_outcome": outcome, "satisfaction": satisfaction}
        if outcome == "refused" or satisfied:
            target = TicketState.closed
            changes.update(
                closure=Closure.revisit_met if satisfied else Closure.revisit_refused,
                closed_at=now,
            )
        else:
            target = TicketState.reopened
            changes.update(reopen_count=ticket.reopen_count + 1)
        self._move(
            session,
            ticket,
            "record_revisit",
            actor=actor,
            note=comment,
            target=target,
            data={"outcome": outcome, "satisfaction": satisfaction, "recording_url": recording_url},
            changes=changes,
            now=now,
        )
        row.outcome = outcome
        row.satisfaction = satisfaction
        row.comment = comment or ""
        row.recording_url = recording_url
        row.completed_at = now
        row.completed_by = actor.name
        session.add(row)
        if target == TicketState.reopened:
            words = comment or codes[outcome].zh
            self._notify_platform(
                session, ticket, reason=f"revisit {outcome}", words=words, municipal=False
            )
        session.flush()
        return ticket

    def close_unreachable(
        self,
        session: Session,
        ticket: Ticket,
        *,
        actor: Actor,
        now: datetime | None = None,
        note: str | None = None,
    ) -> Ticket:
        """No answer to any call nor to the survey: closed as ``revisit_unreachable``. It counts
        against the hotline's revisit rate, not against the institution."""
        now = now or utcnow()
        assert ticket.id is not None
        row = self.repository.open_revisit(session, ticket.id)
        self._move(
            session,
            ticket,
            "close_unreachable",
            actor=actor,
            note=note,
            changes={
                "closure": Closure.revisit_unreachable,
                "closed_at": now,
                "revisit_outcome": "unreachable",
                "satisfaction": None,
            },
            now=now,
        )
        if row is not None:
            row.outcome = "unreachable"
            row.completed_at = now
            row.completed_by = actor.name
            session.add(row)
            session.flush()
        return ticket

    # --- complaints ----------------------------------------------------------------------

    def uphold(
        self,
        session: Session,
        complaint: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The complaint is founded: closed as upheld, and the ticket it is about is escalated
        (still open) or reopened (already resolved or closed)."""
        now = now or utcnow()
        self._move(
            session,
            complaint,
            "uphold",
            actor=actor,
            note=note,
            changes={"closure": Closure.complaint_upheld, "closed_at": now},
            expected_version=expected_version,
            now=now,
        )
        related = (
            self.repository.by_id(session, complaint.related_ticket_id)
            if complaint.related_ticket_id
            else None
        )
        if related is None:
            return complaint
        words = f"投诉{complaint.number}成立：{note or complaint.summary}"
        if related.state in lifecycle.OPEN_STATES:
            self.escalate(
                session, related, actor=actor, reason="complaint_upheld", note=words, now=now
            )
        elif related.state in (
            TicketState.resolved,
            TicketState.revisit_pending,
            TicketState.closed,
        ):
            self.reopen(session, related, actor=actor, note=words, now=now)
        return complaint

    def dismiss(
        self,
        session: Session,
        complaint: Ticket,
        *,
        actor: Actor,
        note: str | None = None,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Ticket:
        """The complaint is unfounded: closed as dismissed, with the reason in the note."""
        now = now or utcnow()
        self._move(
            session,
            complaint,
            "dismiss",
            actor=actor,
            note=note,
            changes={"closure": Closure.complaint_dismissed, "closed_at": now},
            expected_version=expected_version,
            now=now,
        )
        return complaint


ticket_service = TicketService(ticket_repository)

# The named transitions, as module-level functions of the shared instance.
intake = ticket_service.intake
open_ticket = ticket_service.open_ticket
claim = ticket_service.claim
release = ticket_service.release
reclassify = ticket_service.reclassify
add_note = ticket_service.add_note
send_sms = ticket_service.send_sms
reveal_phone = ticket_service.reveal_phone
dispatch = ticket_service.dispatch
accept = ticket_service.accept
decline = ticket_service.decline
start = ticket_service.start
resolve = ticket_service.resolve
reopen = ticket_service.reopen
escalate = ticket_service.escalate
escalate_municipal = ticket_service.escalate_municipal
cancel = ticket_service.cancel
record_revisit = ticket_service.record_revisit
revisit_no_answer = ticket_service.revisit_no_answer
close_unreachable = ticket_service.close_unreachable
uphold = ticket_service.uphold
dismiss = ticket_service.dismiss
