"""Domain errors of the case lifecycle. The web layer maps them: NotPermitted to 403,
IllegalTransition and StaleTicket to 409 (with the current state), NotFound to 404, InvalidRequest
to 422. Each carries a message a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickets.models import Ticket


class TicketError(Exception):
    """A domain rule refused the operation; the message says which."""


class TicketConflict(TicketError):
    """The ticket is not in a state that allows the operation; carries the current state."""

    def __init__(self, message: str, *, number: str, state: str, version: int) -> None:
        super().__init__(message)
        self.number, self.state, self.version = number, state, version


class IllegalTransition(TicketConflict):
    def __init__(self, ticket: Ticket, action: str, reason: str = "") -> None:
        self.ticket = ticket
        self.action = action
        message = f"cannot {action} ticket {ticket.number} in state {ticket.state}"
        if reason:
            message += f": {reason}"
        super().__init__(
            message, number=ticket.number, state=str(ticket.state), version=ticket.version
        )


class StaleTicket(TicketConflict):
    """Someone changed the ticket since the caller read it (optimistic concurrency)."""

    def __init__(self, number: str, *, expected: int, state: str, version: int) -> None:
        super().__init__(
            f"ticket {number} was changed by someone else (you had version {expected}, it is now "
            f"version {version} in state {state}); reload it and try again",
            number=number,
            state=state,
            version=version,
        )
        self.expected = expected


class NotPermitted(TicketError):
    """The actor's role (or institution) may not do this to this ticket."""


class NotFound(TicketError):
    pass


class InvalidRequest(TicketError):
    """The operation lacks something it needs (a reason, a duplicate's number, a category)."""
