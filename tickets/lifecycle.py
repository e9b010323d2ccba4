"""The lifecycle as data: which action moves a ticket from which states to which, and who may.

Service tickets::

    new ─dispatch→ dispatched ─accept→ accepted ─start→ in_progress ─resolve→ resolved
        ─(revisit call placed)→ revisit_pending ─record_revisit→ closed | reopened
    dispatched ─decline→ declined ─dispatch (next best)→ dispatched
    reopened ─dispatch→ dispatched;   most open states ─escalate→ escalated ─dispatch/accept/…
    new, dispatched, … ─cancel→ cancelled (spam, duplicate, withdrawn)

Complaints (about an institution, an agent or the hotline) have a short flow, for supervisors
only: new ─claim→ in_progress ─uphold|dismiss→ closed, or ─cancel→ cancelled.

Around the transitions, actions that change who holds the case or what it is about without moving
it: release (the claim given up), reclassify (another category, routing run again while no
institution has accepted it), note, sms (a text to the firm), and the audited phone_reveal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tickets.errors import NotPermitted
from tickets.models import Role, Ticket, TicketKind, TicketState

S = TicketState
STAFF = frozenset({Role.agent, Role.supervisor, Role.admin})
OVERSIGHT = frozenset({Role.supervisor, Role.admin})
INSTITUTION_SIDE = frozenset({Role.institution, Role.supervisor, Role.admin})
SYSTEM = frozenset({Role.system})
# Roles that call firms back and so may see a caller's whole number (each reveal is an event).
CALLBACK = frozenset({Role.agent, Role.supervisor, Role.institution})

# A guard returns why the action is refused in a state the table allows, or None.
Guard = Callable[[Ticket], str | None]


def _not_accepted_yet(ticket: Ticket) -> str | None:
    return "it was already accepted" if ticket.accepted_at is not None else None


def _accepted(ticket: Ticket) -> str | None:
    return None if ticket.accepted_at is not None else "it was never accepted"


def _has_institution(ticket: Ticket) -> str | None:
    return None if ticket.institution_id is not None else "it has no institution"


def _claimed(ticket: Ticket) -> str | None:
    return None if ticket.assignee else "nobody has claimed it"


def _has_phone(ticket: Ticket) -> str | None:
    return None if ticket.caller_phone else "it has no caller number to text"


@dataclass(frozen=True)
class Rule:
    action: str
    sources: frozenset[TicketState]
    target: TicketState | None  # None: the state does not change (claim, a revisit retry…)
    roles: frozenset[Role]
    guard: Guard | None = None


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.action: rule for rule in rules}


OPEN_STATES = frozenset({S.new, S.dispatched, S.accepted, S.in_progress, S.reopened, S.declined})
WORKED_STATES = OPEN_STATES | {S.escalated}
EVERY_STATE = frozenset(TicketState)

SERVICE_RULES = _rules(
    Rule("claim", frozenset({S.new, S.declined, S.reopened, S.escalated}), None, STAFF),
    Rule(
        "dispatch",
        frozenset({S.new, S.declined, S.reopened, S.escalated}),
        S.dispatched,
        STAFF | SYSTEM,
    ),
    Rule(
        "accept",
        frozenset({S.dispatched, S.escalated}),
        S.accepted,
        INSTITUTION_SIDE,
        lambda t: _has_institution(t) or _not_accepted_yet(t),
    ),
    Rule(
        "decline",
        frozenset({S.dispatched, S.escalated}),
        S.declined,
        INSTITUTION_SIDE,
        lambda t: _has_institution(t) or _not_accepted_yet(t),
    ),
    Rule("start", frozenset({S.accepted, S.escalated}), S.in_progress, INSTITUTION_SIDE, _accepted),
    Rule(
        "resolve",
        frozenset({S.accepted, S.in_progress, S.escalated}),
        S.resolved,
        INSTITUTION_SIDE,
        _accepted,
    ),
    Rule("begin_revisit", frozenset({S.resolved}), S.revisit_pending, STAFF | SYSTEM),
    Rule("revisit_no_answer", frozenset({S.revisit_pending}), None, STAFF | SYSTEM),
    # The outcome of the revisit decides the target (closed or reopened): see the service.
    Rule("record_revisit", frozenset({S.resolved, S.revisit_pending}), None, STAFF | SYSTEM),
    Rule(
        "close_unreachable",
        frozenset({S.resolved, S.revisit_pending}),
        S.closed,
        STAFF | SYSTEM,
    ),
    Rule(
        "reopen",
        frozenset({S.resolved, S.revisit_pending, S.closed}),
        S.reopened,
        OVERSIGHT | SYSTEM,
    ),
    Rule("escalate", OPEN_STATES, S.escalated, STAFF | SYSTEM),
    # The second step of an escalation (the municipal platform told): stays escalated.
    Rule("escalate_municipal", frozenset({S.escalated}), None, OVERSIGHT | SYSTEM),
    Rule(
        "cancel",
        frozenset({S.new, S.dispatched, S.declined, S.reopened, S.escalated}),
        S.cancelled,
        STAFF,
    ),
    Rule("release", WORKED_STATES, None, STAFF, _claimed),
    Rule("reclassify", WORKED_STATES, None, STAFF),
    Rule("note", EVERY_STATE, None, STAFF | {Role.institution}),
    Rule("sms", EVERY_STATE - {S.cancelled}, None, STAFF - {Role.admin}, _has_phone),
    Rule("phone_reveal", EVERY_STATE, None, CALLBACK),
)

COMPLAINT_RULES = _rules(
    Rule("claim", frozenset({S.new}), S.in_progress, OVERSIGHT),
    Rule("uphold", frozenset({S.new, S.in_progress}), S.closed, OVERSIGHT),
    Rule("dismiss", frozenset({S.new, S.in_progress}), S.closed, OVERSIGHT),
    Rule("cancel", frozenset({S.new, S.in_progress}), S.cancelled, OVERSIGHT),
    Rule("note", EVERY_STATE, None, OVERSIGHT),
    Rule("sms", EVERY_STATE - {S.cancelled}, None, OVERSIGHT - {Role.admin}, _has_phone),
    # Agents read complaints (not those about themselves) and call complainants back too.
    Rule("phone_reveal", EVERY_STATE, None, CALLBACK),
)

# Actions that write an event but are not state changes of their own (no version bump).
NOTE_ACTIONS = frozenset({"open", "follow_up", "revisit_call", "notify", "phone_reveal"})
# Actions people take through the API; the others belong to the revisit flow and the jobs.
PUBLIC_ACTIONS = (
    "claim",
    "dispatch",
    "accept",
    "decline",
    "start",
    "resolve",
    "reopen",
    "cancel",
    "escalate",
    "uphold",
    "dismiss",
    "release",
    "reclassify",
    "note",
    "sms",
)


def rule_for(kind: TicketKind, action: str) -> Rule | None:
    return (COMPLAINT_RULES if kind == TicketKind.complaint else SERVICE_RULES).get(action)


def actions_for(kind: TicketKind) -> list[str]:
    return list(COMPLAINT_RULES if kind == TicketKind.complaint else SERVICE_RULES)


def may_see(
    actor_role: Role,
    actor_name: str,
    actor_institution: int | None,
    ticket: Ticket,
    related_assignee: str | None = None,
) -> bool:
    """Whether the actor may read the ticket at all."""
    if actor_role in (Role.admin, Role.supervisor, Role.system):
        return True
    if actor_role == Role.institution:
        # The institution complained about never sees the complaint, nor any other complaint.
        return ticket.kind == TicketKind.service and ticket.institution_id == actor_institution
    if ticket.kind == TicketKind.complaint:
        return actor_name not in {ticket.subject_agent, related_assignee} - {None}
    return True


def check_permitted(
    actor_role: Role,
    actor_name: str,
    actor_institution: int | None,
    ticket: Ticket,
    rule: Rule,
    related_assignee: str | None = None,
) -> None:
    if not may_see(actor_role, actor_name, actor_institution, ticket, related_assignee):
        raise NotPermitted(f"{actor_name} may not see ticket {ticket.number}")
    if actor_role not in rule.roles:
        raise NotPermitted(
            f"a user with role {actor_role} may not {rule.action} a {ticket.kind} ticket"
        )
    if actor_role == Role.institution and ticket.institution_id != actor_institution:
        raise NotPermitted(f"ticket {ticket.number} is not your institution's")
