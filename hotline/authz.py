"""Who may see which ticket, shared by the JSON API and the web pages.

The rules themselves live in the domain (``tickets.lifecycle.may_see`` and the service's
``check``); these helpers load a ticket by its number and apply them, raising the domain errors
(``NotFound``, ``NotPermitted``) that each edge maps to its own answer.
"""

from __future__ import annotations

from sqlmodel import Session

from tickets import lifecycle
from tickets.errors import NotFound, NotPermitted
from tickets.models import Role, Ticket, TicketKind
from tickets.numbers import normalise
from tickets.repository import ticket_repository
from tickets.service import Actor

# Roles that call firms back and so may see a caller's whole number (each reveal is logged).
CALLBACK_ROLES = frozenset({Role.agent, Role.supervisor, Role.institution})


def load_ticket(session: Session, number: str) -> Ticket:
    canonical = normalise(number)
    ticket = ticket_repository.by_number(session, canonical) if canonical else None
    if ticket is None:
        raise NotFound(f"no ticket {number}")
    return ticket


def may_see(session: Session, ticket: Ticket, actor: Actor) -> bool:
    related = (
        ticket_repository.by_id(session, ticket.related_ticket_id)
        if ticket.kind == TicketKind.complaint and ticket.related_ticket_id
        else None
    )
    return lifecycle.may_see(
        actor.role, actor.name, actor.institution_id, ticket, related.assignee if related else None
    )


def ensure_visible(session: Session, ticket: Ticket, actor: Actor) -> None:
    if not may_see(session, ticket, actor):
        raise NotPermitted(f"you may not see ticket {ticket.number}")


def visible_ticket(session: Session, number: str, actor: Actor) -> Ticket:
    ticket = load_ticket(session, number)
    ensure_visible(session, ticket, actor)
    return ticket


def may_read_measures(actor: Actor) -> bool:
    """The service's measures are for the hotline's own staff, not for institutions."""
    return actor.role in lifecycle.STAFF
