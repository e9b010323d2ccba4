"""The agent's queue, the ticket page and its actions, and the institution portal.

Thin: parse, check the role, call one service function, commit, render. Domain errors become
pages: not permitted 403, a stale version or an illegal transition 409 with the ticket as it is
now ("changed by X meanwhile"), a missing reason 422.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from hotline.authz import CALLBACK_ROLES, visible_ticket
from hotline.deps import SessionDep
from hotline.web import queries
from hotline.web.auth import CsrfUser, Forbidden, WebUser, require
from hotline.web.render import is_htmx, render, translator
from kb.db import utcnow
from kb.repository import catalogue_repository
from tickets import lifecycle
from tickets.errors import (
    InvalidRequest,
    NotFound,
    NotPermitted,
    StaleTicket,
    TicketConflict,
    TicketError,
)
from tickets.models import Channel, Closure, Role, Ticket, TicketState
from tickets.repository import ticket_repository
from tickets.service import Actor, ticket_service
from tickets.views import dispatch_choices, duplicate_choices, ticket_detail

router = APIRouter(include_in_schema=False)

StaffUser = Annotated[WebUser, Depends(require(Role.agent, Role.supervisor, Role.admin))]
InstitutionUser = Annotated[WebUser, Depends(require(Role.institution))]
AnyUser = Annotated[
    WebUser, Depends(require(Role.agent, Role.supervisor, Role.admin, Role.institution))
]


def _filter_from(request: Request, user: WebUser) -> tuple[queries.QueueFilter, dict[str, str]]:
    params = request.query_params
    chosen = {
        key: params.get(key, "").strip()
        for key in ("state", "category", "district", "channel", "assigned", "overdue", "q")
    }
    state = chosen["state"] if chosen["state"] in TicketState.__members__ else ""
    channel = chosen["channel"] if chosen["channel"] in Channel.__members__ else ""
    assigned = chosen["assigned"] if chosen["assigned"] in ("mine", "unassigned") else ""
    chosen.update(state=state, channel=channel, assigned=assigned)
    chosen["overdue"] = "1" if chosen["overdue"] else ""
    where = queries.QueueFilter(
        state=TicketState(state) if state else None,
        category=chosen["category"] or None,
        district=chosen["district"] or None,
        channel=Channel(channel) if channel else None,
        assigned=assigned or None,
        overdue=bool(chosen["overdue"]),
        q=chosen["q"][:64],
        only_institution=user.institution_id if user.role == Role.institution else None,
        hide_complaints_about=user.actor.name if user.role == Role.agent else None,
    )
    return where, chosen


def _queue_context(request: Request, session: Session, user: WebUser) -> dict[str, Any]:
    where, chosen = _filter_from(request, user)
    cursor = request.query_params.get("cursor") or None
    try:
        page = queries.queue_page(session, where, actor_name=user.actor.name, cursor=cursor)
    except ValueError:
        page = queries.queue_page(session, where, actor_name=user.actor.name)
    found_names = queries.names(session)
    institutions = queries.institution_names(
        session, {row.ticket.institution_id for row in page.rows if row.ticket.institution_id}
    )
    filters = urlencode({key: value for key, value in chosen.items() if value})
    return {
        "page": page,
        "chosen": chosen,
        "filters": filters,
        "names": found_names,
        "institutions": institutions,
        "states": list(TicketState),
        "channels": list(Channel),
        "now": utcnow(),
        "cursor": cursor,
        "rows_path": request.url.path.removesuffix("/rows") + "/rows",
        "institution_view": user.role == Role.institution,
    }


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, session: SessionDep, user: StaffUser) -> HTMLResponse:
    return render(request, "queue.html", _queue_context(request, session, user))


@router.get("/queue/rows", response_class=HTMLResponse)
def queue_rows(request: Request, session: SessionDep, user: StaffUser) -> HTMLResponse:
    """The rows alone: what htmx polls (with the same filters) and what "more" appends."""
    return render(request, "_queue_rows.html", _queue_context(request, session, user))


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, session: SessionDep, user: InstitutionUser) -> HTMLResponse:
    context = _queue_context(request, session, user)
    institution_id = user.institution_id
    assert institution_id is not None
    context["institution"] = queries.institution_names(session, {institution_id}).get(
        institution_id
    )
    return render(request, "portal.html", context)


@router.get("/portal/rows", response_class=HTMLResponse)
def portal_rows(request: Request, session: SessionDep, user: InstitutionUser) -> HTMLResponse:
    return render(request, "_queue_rows.html", _queue_context(request, session, user))


def _ticket_context(
    session: Session,
    ticket: Ticket,
    user: WebUser,
    *,
    revealed: bool = False,
    find: str = "",
    original: str = "",
) -> dict[str, Any]:
    assert ticket.id is not None
    detail = ticket_detail(session, ticket, actor=user.actor)
    acts = set(detail.actions)
    routing = detail.routing
    candidate_ids = {ticket.institution_id} if ticket.institution_id else set()
    if routing is not None:
        candidate_ids.add(routing.institution_id)
        for candidate in routing.candidates:
            if isinstance(candidate, dict) and isinstance(candidate.get("institution_id"), int):
                candidate_ids.add(candidate["institution_id"])
    related = (
        ticket_repository.by_id(session, ticket.related_ticket_id)
        if ticket.related_ticket_id
        else None
    )
    return {
        "ticket": ticket,
        "detail": detail,
        "firm": ticket_service.firm_of(session, ticket),
        "messages": queries.messages_of(session, ticket.id),
        "institutions": queries.institution_names(session, {i for i in candidate_ids if i}),
        "names": queries.names(session),
        "revealed": revealed,
        "may_reveal": user.role in CALLBACK_ROLES,
        "related": related,
        "cancel_reasons": [c.value for c in (Closure.duplicate, Closure.spam, Closure.withdrawn)],
        "dispatch_choices": (
            dispatch_choices(session, ticket, find=find) if "dispatch" in acts else []
        ),
        "find": find,
        "originals": duplicate_choices(session, ticket, find=original) if "cancel" in acts else [],
        "original": original,
        "categories": catalogue_repository.categories(session) if "reclassify" in acts else [],
        "problem": None,
        "done": None,
    }


def _error_page(request: Request, exc: TicketError) -> HTMLResponse:
    if isinstance(exc, NotFound):
        return render(request, "error.html", {"message": "error.not_found"}, status=404)
    return render(request, "error.html", {"message": "error.forbidden"}, status=403)


@router.get("/tickets/{number}", response_class=HTMLResponse)
def ticket_page(number: str, request: Request, session: SessionDep, user: AnyUser) -> HTMLResponse:
    try:
        ticket = visible_ticket(session, number, user.actor)
    except TicketError as exc:
        return _error_page(request, exc)
    params = request.query_params
    context = _ticket_context(
        session,
        ticket,
        user,
        find=params.get("find", "").strip()[:64],
        original=params.get("original", "").strip()[:64],
    )
    done = params.get("done")
    context["done"] = done if done in lifecycle.PUBLIC_ACTIONS else None
    return render(request, "ticket.html", context)


@router.post("/tickets/{number}/reveal", response_class=HTMLResponse)
def reveal_phone(number: str, request: Request, session: SessionDep, user: CsrfUser) -> Response:
    """The caller's whole number, for a role that calls back; every reveal is an event."""
    if user.role not in CALLBACK_ROLES:
        raise Forbidden()
    try:
        ticket = visible_ticket(session, number, user.actor)
        ticket_service.reveal_phone(session, ticket, actor=user.actor)
    except TicketError as exc:
        session.rollback()
        return _error_page(request, exc)
    session.commit()
    if is_htmx(request):
        return render(request, "_phone.html", {"ticket": ticket, "revealed": True})
    return render(request, "ticket.html", _ticket_context(session, ticket, user, revealed=True))


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


@router.post("/tickets/{number}/{action}", response_model=None)
def act(
    number: str,
    action: str,
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    version: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    institution_id: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=32)] = "",
    duplicate_of: Annotated[str, Form(max_length=32)] = "",
    category: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    if action not in lifecycle.PUBLIC_ACTIONS:
        return render(request, "error.html", {"message": "error.not_found"}, status=404)
    try:
        ticket = visible_ticket(session, number, user.actor)
    except TicketError as exc:
        return _error_page(request, exc)
    actor = user.actor
    common: dict[str, Any] = {
        "actor": actor,
        "note": note.strip() or None,
        "expected_version": _int(version),
    }
    versioned: dict[str, Any] = {"actor": actor, "expected_version": common["expected_version"]}
    try:
        if action == "dispatch":
            ticket_service.dispatch(session, ticket, institution_id=_int(institution_id), **common)
        elif action == "cancel":
            duplicate = _original(session, duplicate_of, actor) if duplicate_of.strip() else None
            ticket_service.cancel(session, ticket, reason=reason, duplicate_of=duplicate, **common)
        elif action == "escalate":
            ticket_service.escalate(session, ticket, reason=reason or "manual", **common)
        elif action == "reclassify":
            ticket_service.reclassify(
                session, ticket, category_key=category, reason=note, **versioned
            )
        elif action == "note":
            ticket_service.add_note(session, ticket, text=note, **versioned)
        elif action == "sms":
            ticket_service.send_sms(session, ticket, text=note, **versioned)
        else:
            getattr(ticket_service, action)(session, ticket, **common)
        session.commit()
    except TicketError as exc:
        session.rollback()
        return _refused(request, session, number, user, exc)
    return RedirectResponse(f"/tickets/{ticket.number}?done={action}", status_code=303)


def _original(session: Session, number: str, actor: Actor) -> Ticket:
    """The ticket a duplicate names; a number that leads nowhere is the form's mistake (422),
    not a missing page."""
    try:
        return visible_ticket(session, number, actor)
    except NotFound:
        raise InvalidRequest(f"no ticket {number.strip()} to be the original") from None


def _refused(
    request: Request, session: Session, number: str, user: WebUser, exc: TicketError
) -> HTMLResponse:
    if isinstance(exc, NotPermitted | NotFound):
        return _error_page(request, exc)
    session.expire_all()
    try:
        ticket = visible_ticket(session, number, user.actor)
    except TicketError as again:
        return _error_page(request, again)
    context = _ticket_context(session, ticket, user)
    status = 422
    if isinstance(exc, StaleTicket):
        status = 409
        context["problem"] = (
            "ticket.changed",
            {
                "who": _last_changed_by(session, ticket),
                "version": ticket.version,
                "state": translator(request).label("state", ticket.state.value),
            },
            str(exc),
        )
    elif isinstance(exc, TicketConflict):
        status = 409
        context["problem"] = ("ticket.not_allowed", {}, str(exc))
    elif isinstance(exc, InvalidRequest):
        context["problem"] = ("ticket.invalid", {}, str(exc))
    return render(request, "ticket.html", context, status=status)


def _last_changed_by(session: Session, ticket: Ticket) -> str:
    """Who made the latest change (a reveal or a notice to a platform changes nothing)."""
    assert ticket.id is not None
    events = ticket_repository.events(session, ticket.id)
    changes = [e for e in events if e.action not in lifecycle.NOTE_ACTIONS] or list(events)
    return changes[-1].actor if changes else "?"
