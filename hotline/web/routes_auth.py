"""/login, /logout and / (which sends each role to its home page)."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hotline.deps import RedisDep, SessionDep, SettingsDep
from hotline.web import auth
from hotline.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, CsrfUser, CurrentUser
from hotline.web.render import render, secure
from tickets.models import Role

router = APIRouter(include_in_schema=False)

HOME = {
    Role.agent: "/queue",
    Role.supervisor: "/supervisor/complaints",
    Role.institution: "/portal",
    Role.admin: "/admin/users",
}


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no //): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and "\\" not in target else None


def _login_page(
    request: Request, settings_https: bool, *, error: str = "", status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "error": error, "next": _safe_next(request.query_params.get("next"))},
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings_https
    )
    return response


@router.get("/", response_model=None)
def home(user: CurrentUser) -> Response:
    return RedirectResponse(HOME.get(user.role, "/login"), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep) -> HTMLResponse:
    return _login_page(request, settings.public_base_url.startswith("https://"))


@router.post("/login", response_model=None)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    conn: RedisDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    https = settings.public_base_url.startswith("https://")
    if not auth.login_csrf_ok(request, csrf_token):
        return _login_page(request, https, error="error.csrf", status=403)
    address = auth.client_address(request)
    if auth.throttled(conn, username, address):
        return _login_page(request, https, error="login.throttled", status=429)
    user = auth.authenticate(session, username, password)
    if user is None:
        auth.record_failure(conn, username, address)
        return _login_page(request, https, error="login.failed", status=401)
    auth.clear_failures(conn, username)
    token, _ = auth.open_session(session, user, address=address)
    session.commit()
    response = RedirectResponse(_safe_next(next) or HOME[user.role], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(auth.ABSOLUTE_TIMEOUT.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=https,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    secure(response, request)
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, session: SessionDep, user: CsrfUser) -> Response:
    auth.end_session(session, user.session_id)
    session.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    secure(response, request)
    return response
