"""/admin/users: the people who use the pages: list, create (argon2 password), deactivate or
reactivate (deactivating ends their sessions and revokes their API tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from hotline.accounts.models import User
from hotline.accounts.service import AccountError, create_user, revoke_tokens
from hotline.deps import SessionDep
from hotline.web.auth import CsrfUser, WebUser, ensure_role, require
from hotline.web.models import WebSession
from hotline.web.render import render
from kb.db import utcnow
from kb.models import Institution, Tier
from tickets.models import Role

router = APIRouter(include_in_schema=False)

Admin = Annotated[WebUser, Depends(require(Role.admin))]
ROLES = [Role.agent, Role.supervisor, Role.institution, Role.admin]
MIN_PASSWORD = 10


def _page(
    request: Request, session: Session, *, error: str = "", status: int = 200
) -> HTMLResponse:
    users = session.exec(select(User).order_by(col(User.username))).all()
    institutions = session.exec(
        select(Institution)
        .where(Institution.tier == Tier.institution, col(Institution.active).is_(True))
        .order_by(col(Institution.id))
    ).all()
    names = {i.id: i for i in institutions}
    return render(
        request,
        "admin_users.html",
        {
            "users": users,
            "roles": ROLES,
            "institutions": institutions,
            "inst_names": names,
            "error": error,
        },
        status=status,
    )


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, session: SessionDep, user: Admin) -> HTMLResponse:
    return _page(request, session)


@router.post("/admin/users", response_model=None)
def add_user(
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    username: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    institution_id: Annotated[str, Form()] = "",
    password: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    ensure_role(user, Role.admin)
    if len(password) < MIN_PASSWORD:
        return _page(request, session, error="admin.password_short", status=422)
    try:
        create_user(
            session,
            username,
            role,
            institution_id=int(institution_id) if institution_id.isdigit() else None,
            password=password,
        )
        session.commit()
    except AccountError as exc:
        session.rollback()
        return _page(request, session, error=str(exc), status=422)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/active", response_model=None)
def set_active(
    user_id: int,
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    active: Annotated[str, Form()] = "",
) -> Response:
    ensure_role(user, Role.admin)
    target = session.get(User, user_id)
    if target is None:
        return render(request, "error.html", {"message": "error.not_found"}, status=404)
    if target.id == user.user_id:
        return _page(request, session, error="admin.not_yourself", status=422)
    target.active = active == "1"
    session.add(target)
    if not target.active:
        revoke_tokens(session, target)
        for row in session.exec(
            select(WebSession).where(
                WebSession.user_id == target.id, col(WebSession.revoked_at).is_(None)
            )
        ).all():
            row.revoked_at = utcnow()
            session.add(row)
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)
