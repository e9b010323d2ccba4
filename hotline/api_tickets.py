"""The tickets JSON API: lists, details, one POST per transition, and the measures.

Thin: authenticate the bearer token to an actor, call the named service function, commit, answer.
Domain errors become HTTP answers here: not permitted 403, a stale version or an illegal
transition 409 with the ticket's current state, a missing field 422, an unknown ticket 404.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from hotline.accounts.service import actor_for, user_for_token
from hotline.api_errors import (
    UNAUTHORISED,
    ConflictOut,
    ErrorOut,
    Message,
    described,
    invalid,
)
from hotline.authz import load_ticket, may_read_measures, visible_ticket
from hotline.deps import SessionDep
from kb.db import utcnow
from tickets import metrics
from tickets.errors import InvalidRequest, NotFound, NotPermitted, TicketConflict, TicketError
from tickets.models import Ticket, TicketKind, TicketState
from tickets.phones import normalise_phone
from tickets.repository import TicketFilter
from tickets.schemas import TicketDetail, TicketPage
from tickets.service import Actor, ticket_service
from tickets.views import ticket_detail, ticket_page, visibility

router = APIRouter(prefix="/api", tags=["tickets"], responses=UNAUTHORISED)
NOT_SEEN = {
    **described(403, ErrorOut, "The ticket is not yours to see"),
    **described(404, ErrorOut, "No such ticket"),
}


def current_actor(
    session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> Actor:
    """The user behind ``Authorization: Bearer <token>`` (issued by ``hotline users token``)."""
    scheme, _, token = (authorization or "").partition(" ")
    user = user_for_token(session, token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor_for(user)


ActorDep = Annotated[Actor, Depends(current_actor)]


class ActionRequest(BaseModel):
    """The body of ``POST /api/tickets/{number}/{action}``."""

    version: int | None = Field(
        default=None, description="The version you read; a stale one is refused with 409"
    )
    note: str | None = Field(
        default=None, max_length=4000, description="note: its text; sms: the text to send"
    )
    institution_id: int | None = Field(default=None, description="dispatch: the institution")
    reason: str | None = Field(
        default=None,
        description="cancel: spam, duplicate or withdrawn; escalate, reclassify: why",
    )
    category: str | None = Field(
        default=None, max_length=32, description="reclassify: the new category's key"
    )
    duplicate_of: str | None = Field(default=None, description="cancel: the original ticket")


Action = Literal[
    "claim",
    "release",
    "reclassify",
    "note",
    "sms",
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
]


def _error(exc: TicketError) -> JSONResponse:
    if isinstance(exc, TicketConflict):
        return JSONResponse(
            status_code=409,
            content={
                "error": str(exc),
                "number": exc.number,
                "state": exc.state,
                "version": exc.version,
            },
        )
    if isinstance(exc, InvalidRequest):
        # The body lacks what the transition needs (a reason, the original of a duplicate).
        raise invalid(("body",), str(exc), kind="invalid_request") from exc
    status = {NotPermitted: 403, NotFound: 404}.get(type(exc), 400)
    return JSONResponse(status_code=status, content={"error": str(exc)})


@router.get("/tickets", response_model=TicketPage)
def list_tickets(
    session: SessionDep,
    actor: ActorDep,
    state: TicketState | None = None,
    category: str | None = None,
    district: str | None = None,
    phone: str | None = None,
    kind: TicketKind | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """Newest first, keyset-paginated: pass ``next_cursor`` back as ``cursor``."""
    wanted_phone = None
    if phone is not None:
        wanted_phone = normalise_phone(phone)
        if wanted_phone is None:
            raise invalid(("query", "phone"), f"not a phone number: {phone}", value=phone)
    seen = visibility(actor)
    where = TicketFilter(
        state=state,
        category=category,
        district=district,
        phone=wanted_phone,
        kind=kind,
        only_institution=seen.only_institution,
        hide_complaints_about=seen.hide_complaints_about,
    )
    try:
        return ticket_page(session, where, cursor=cursor, limit=limit)
    except ValueError:
        raise invalid(
            ("query", "cursor"), "bad cursor: pass back a next_cursor as given", value=cursor
        ) from None


@router.get("/tickets/{number}", response_model=TicketDetail, responses=NOT_SEEN)
def get_ticket(number: str, session: SessionDep, actor: ActorDep) -> Any:
    """The ticket with its timeline, routing decision and SLA clocks."""
    try:
        ticket = visible_ticket(session, number, actor)
    except TicketError as exc:
        return _error(exc)
    return ticket_detail(session, ticket, actor=actor)


@router.post(
    "/tickets/{number}/{action}",
    response_model=TicketDetail,
    responses={
        **NOT_SEEN,
        **described(403, ErrorOut, "Not your ticket to see, or your role may not do this"),
        **described(409, ConflictOut, "A stale version, or the state does not allow it"),
    },
)
def act_on_ticket(
    number: str, action: Action, body: ActionRequest, session: SessionDep, actor: ActorDep
) -> Any:
    """One transition. 409 with the current state when ``version`` is stale or the ticket's
    state does not allow the action; 403 when the actor's role may not."""
    try:
        ticket = visible_ticket(session, number, actor)
        _perform(session, ticket, action, body, actor)
        session.commit()
    except TicketError as exc:
        session.rollback()
        return _error(exc)
    return ticket_detail(session, ticket, actor=actor)


def _perform(
    session: Session, ticket: Ticket, action: str, body: ActionRequest, actor: Actor
) -> None:
    common: dict[str, Any] = {"actor": actor, "note": body.note, "expected_version": body.version}
    if action == "dispatch":
        ticket_service.dispatch(session, ticket, institution_id=body.institution_id, **common)
    elif action == "cancel":
        duplicate = load_ticket(session, body.duplicate_of) if body.duplicate_of else None
        ticket_service.cancel(
            session, ticket, reason=body.reason or "", duplicate_of=duplicate, **common
        )
    elif action == "escalate":
        ticket_service.escalate(session, ticket, reason=body.reason or "manual", **common)
    elif action == "reclassify":
        ticket_service.reclassify(
            session,
            ticket,
            actor=actor,
            category_key=body.category or "",
            reason=body.reason or "",
            expected_version=body.version,
        )
    elif action == "note":
        ticket_service.add_note(
            session, ticket, actor=actor, text=body.note or "", expected_version=body.version
        )
    elif action == "sms":
        ticket_service.send_sms(
            session, ticket, actor=actor, text=body.note or "", expected_version=body.version
        )
    else:
        getattr(ticket_service, action)(session, ticket, **common)


class MetricsAnswer(BaseModel):
    by: str
    since: datetime
    until: datetime
    groups: list[dict[str, Any]]


@router.get(
    "/metrics",
    response_model=MetricsAnswer,
    responses=described(403, Message, "Measures are for hotline staff"),
)
def get_metrics(
    session: SessionDep,
    actor: ActorDep,
    by: Literal["institution", "district", "category"] = "institution",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Any:
    """Measures of the service tickets opened in ``[since, until)`` (default: the last 30 days),
    per group; each rate's formula is documented in ``tickets.metrics``."""
    if not may_read_measures(actor):
        raise HTTPException(status_code=403, detail="measures are for hotline staff")
    until = _aware(until) if until else utcnow()
    since = _aware(since) if since else until - timedelta(days=30)
    if since >= until:
        raise invalid(("query", "since"), "since must be before until", value=since.isoformat())
    measured = metrics.compute(session, since, until, by=by)
    groups = [
        measured[key].to_dict() for key in sorted(measured, key=lambda k: (k is None, str(k)))
    ]
    return MetricsAnswer(by=by, since=since, until=until, groups=groups)


def _aware(moment: datetime) -> datetime:
    """A date-time without an offset is taken as Asia/Shanghai, as people in Chongqing mean."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=ticket_service.zone).astimezone(UTC)
    return moment
