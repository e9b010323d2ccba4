"""The institution portal's catalogue side: the five publics (五公开), edited with their history,
and tiered maintenance (a district window's staff maintain the entries of their district).

Thin: parse, call :data:`kb.publics.publics_service`, commit, render. Who may edit what is the
domain's rule (``kb.publics``); here its refusals become pages: unknown institution 404, not
permitted 403, invalid fields 422 (the form kept as typed, each field's problem beside it), an
edit on values someone changed meanwhile 409 (the current values, who changed them and when,
and what the editor had typed, so nothing is lost and nothing is silently overwritten).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from hotline.deps import SessionDep
from hotline.web.auth import CsrfUser, Forbidden, WebUser, require
from hotline.web.render import render
from kb.db import as_utc
from kb.models import CatalogueChange, Institution
from kb.publics import (
    FIELDS,
    LANGUAGES,
    MAX_CHARS,
    PUBLICS,
    EditNotAllowed,
    InvalidPublics,
    PublicsError,
    StalePublics,
    UnknownInstitution,
    publics_service,
    values_of,
)
from kb.repository import catalogue_repository
from tickets.models import Role

router = APIRouter(include_in_schema=False)

InstitutionUser = Annotated[WebUser, Depends(require(Role.institution))]
Maintainer = Annotated[WebUser, Depends(require(Role.institution, Role.supervisor, Role.admin))]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    who: str
    action: str
    items: list[tuple[str, str, str]]  # field, old, new


def _who(actor: str) -> str:
    return actor.removeprefix("user:")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _history(rows: Sequence[CatalogueChange]) -> list[HistoryEntry]:
    entries = []
    for row in rows:
        items: list[tuple[str, str, str]] = []
        # A creation records the categories it started with, not a before/after pair.
        if row.action != "create":
            for name, pair in (row.changes or {}).items():
                if isinstance(pair, list) and len(pair) == 2:
                    items.append((name, _text(pair[0]), _text(pair[1])))
        order = {name: index for index, name in enumerate(FIELDS)}
        items.sort(key=lambda item: order.get(item[0], len(order)))
        entries.append(HistoryEntry(as_utc(row.at), _who(row.actor), row.action, items))
    return entries


def _editable(session: Session, user: WebUser, institution_id: int) -> Institution:
    try:
        return publics_service.editable(session, user.actor, institution_id)
    except EditNotAllowed:
        raise Forbidden() from None


def _not_found(request: Request) -> HTMLResponse:
    return render(request, "error.html", {"message": "error.not_found"}, status=404)


def _page(
    request: Request,
    session: Session,
    user: WebUser,
    institution: Institution,
    *,
    values: dict[str, str] | None = None,
    stamp: datetime | None = None,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    window = publics_service.window_of(session, user.actor)
    district = catalogue_repository.district(session, institution.district_code)
    context: dict[str, Any] = {
        "institution": institution,
        "district": district,
        "values": values if values is not None else values_of(institution),
        "stamp": as_utc(stamp or institution.updated_at).isoformat(),
        "history": _history(publics_service.history(session, institution)),
        "publics": PUBLICS,
        "languages": LANGUAGES,
        "max_chars": MAX_CHARS,
        "own": user.institution_id == institution.id,
        "list_link": window is not None or user.role in (Role.supervisor, Role.admin),
        "problems": [],
        "field_problems": {},
        "stale": None,
        "yours": {},
        "done": request.query_params.get("done") if status == 200 else None,
    }
    context.update(extra)
    return render(request, "portal_publics.html", context, status=status)


@router.get("/portal/publics", response_class=HTMLResponse)
def own_publics(user: InstitutionUser) -> Response:
    """The user's own institution: the same page as any other they may edit."""
    assert user.institution_id is not None
    return RedirectResponse(f"/portal/institutions/{user.institution_id}/publics", 303)


@router.get("/portal/institutions", response_class=HTMLResponse)
def institutions(request: Request, session: SessionDep, user: Maintainer) -> HTMLResponse:
    """What the user maintains: a district window's staff, the entries of their district;
    supervisors and admins, any district they choose. Other institution staff have only their
    own entry (``/portal/publics``)."""
    window = publics_service.window_of(session, user.actor)
    districts = catalogue_repository.districts(session)
    if window is not None:
        code: str | None = window.district_code
    elif user.role in (Role.supervisor, Role.admin):
        wanted = request.query_params.get("district", "").strip()
        code = wanted if catalogue_repository.district(session, wanted) is not None else None
    else:
        raise Forbidden()
    entries = publics_service.district_entries(session, code) if code else []
    return render(
        request,
        "portal_institutions.html",
        {
            "entries": entries,
            "district": catalogue_repository.district(session, code) if code else None,
            "districts": districts,
            "choose": window is None,
        },
    )


@router.get("/portal/institutions/{institution_id}/publics", response_class=HTMLResponse)
def publics_page(
    institution_id: int, request: Request, session: SessionDep, user: Maintainer
) -> HTMLResponse:
    try:
        institution = _editable(session, user, institution_id)
    except UnknownInstitution:
        return _not_found(request)
    return _page(request, session, user, institution)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(_form)]


def _stamp(raw: str) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(raw.strip()))
    except ValueError:
        return None


@router.post("/portal/institutions/{institution_id}/publics", response_model=None)
def save_publics(
    institution_id: int,
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    form: FormFields,
) -> Response:
    if user.role not in (Role.institution, Role.supervisor, Role.admin):
        raise Forbidden()
    try:
        institution = _editable(session, user, institution_id)
    except UnknownInstitution:
        return _not_found(request)
    typed = {name: form[name] for name in FIELDS if name in form}
    stamp = _stamp(form.get("updated_at", ""))
    if stamp is None:
        return _page(
            request,
            session,
            user,
            institution,
            values={**values_of(institution), **typed},
            problems=[("portal.publics.no_stamp", {})],
            status=422,
        )
    try:
        changed = publics_service.edit_publics(session, user.actor, institution_id, typed, stamp)
        session.commit()
    except StalePublics as exc:
        session.rollback()
        fresh = _editable(session, user, institution_id)
        yours = {k: v for k, v in typed.items() if v.strip() != exc.current.get(k, "")}
        return _page(
            request,
            session,
            user,
            fresh,
            values=exc.current,
            stamp=exc.updated_at,
            stale={"who": _who(exc.who), "at": exc.at},
            yours=yours,
            status=409,
        )
    except InvalidPublics as exc:
        session.rollback()
        return _page(
            request,
            session,
            user,
            institution,
            values={**values_of(institution), **typed},
            stamp=stamp,
            field_problems={p.field: p for p in exc.problems},
            problems=[("portal.publics.invalid", {})],
            status=422,
        )
    except EditNotAllowed:
        session.rollback()
        raise Forbidden() from None
    except PublicsError:
        session.rollback()
        return _not_found(request)
    done = "saved" if changed else "unchanged"
    return RedirectResponse(f"/portal/institutions/{institution_id}/publics?done={done}", 303)
