"""Login sessions, the login throttle, CSRF and the ``CurrentUser`` dependencies.

A session is a random 256-bit id in an HttpOnly, SameSite=Lax cookie (Secure when the public URL
is https); the database keeps only its SHA-256, its CSRF token and its expiry, so logout and
expiry end it for real. Every state-changing request carries the session's CSRF token, in the
form (``csrf_token``) or, for htmx, in the ``X-CSRF-Token`` header; the login form, before any
session exists, uses a double-submit cookie. Failed logins are counted in Redis per account and
per address; past the limit, logins are refused until the window passes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from sqlmodel import Session, col, select

from hotline.accounts.models import User
from hotline.deps import SessionDep
from hotline.web.models import WebSession
from kb.db import as_utc, utcnow
from tickets.models import Role
from tickets.service import Actor

log = logging.getLogger(__name__)

SESSION_COOKIE = "hl_session"
LOGIN_CSRF_COOKIE = "hl_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
IDLE_TIMEOUT = timedelta(hours=2)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)
# Failed logins: per account and per address, in a sliding-by-restart window.
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class LoginRequired(Exception):
    """No live session: the edge sends the browser to /login."""


class Forbidden(Exception):
    """The user's role may not open this page or do this."""


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- throttle ------------------------------------------------------------------------------


def _keys(username: str, address: str) -> tuple[str, str]:
    return (
        f"hotline:login:user:{username.strip().casefold()}",
        f"hotline:login:addr:{address}",
    )


def throttled(conn: redis.Redis, username: str, address: str) -> bool:
    user_key, addr_key = _keys(username, address)
    try:
        user_count, addr_count = conn.mget([user_key, addr_key])
    except redis.RedisError:
        log.exception("login throttle unavailable; refusing logins until Redis answers")
        return True
    return (
        int(user_count or 0) >= MAX_FAILURES_PER_ACCOUNT
        or int(addr_count or 0) >= MAX_FAILURES_PER_ADDRESS
    )


def record_failure(conn: redis.Redis, username: str, address: str) -> None:
    seconds = int(THROTTLE_WINDOW.total_seconds())
    try:
        pipe = conn.pipeline()
        for key in _keys(username, address):
            pipe.incr(key)
            pipe.expire(key, seconds)
        pipe.execute()
    except redis.RedisError:
        log.exception("could not count a failed login")


def clear_failures(conn: redis.Redis, username: str) -> None:
    try:
        conn.delete(_keys(username, "")[0])
    except redis.RedisError:
        log.exception("could not clear failed logins")


# --- sessions ------------------------------------------------------------------------------


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None (same work either way)."""
    user = session.exec(select(User).where(User.username == username.strip())).first()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active or not user.password_hash:
        return None
    return user


def open_session(
    session: Session, user: User, *, address: str, now: datetime | None = None
) -> tuple[str, WebSession]:
    """A new session for ``user``; returns the cookie value (never stored) and the row."""
    assert user.id is not None
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_sha256=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        address=address[:64],
        created_at=now,
        last_seen_at=now,
        expires_at=min(now + IDLE_TIMEOUT, now + ABSOLUTE_TIMEOUT),
    )
    session.add(row)
    session.flush()
    return token, row


def end_session(session: Session, session_id: int) -> None:
    row = session.get(WebSession, session_id)
    if row is not None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()


def live_session(
    session: Session, token: str | None, *, now: datetime | None = None
) -> tuple[WebSession, User] | None:
    if not token:
        return None
    now = now or utcnow()
    found = session.exec(
        select(WebSession, User)
        .join(User, col(User.id) == col(WebSession.user_id))
        .where(WebSession.token_sha256 == digest(token), col(WebSession.revoked_at).is_(None))
    ).first()
    if found is None:
        return None
    row, user = found
    if as_utc(row.expires_at) <= now or not user.active:
        return None
    if now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = min(now + IDLE_TIMEOUT, as_utc(row.created_at) + ABSOLUTE_TIMEOUT)
        session.add(row)
        session.commit()
    return row, user


@dataclass(frozen=True)
class WebUser:
    """The logged-in user, as plain values (usable after the request's session is closed, by
    the error pages)."""

    user_id: int
    username: str
    role: Role
    institution_id: int | None
    session_id: int
    csrf: str

    @property
    def actor(self) -> Actor:
        return Actor(f"user:{self.username}", self.role, self.institution_id)


def current_user(request: Request, session: SessionDep) -> WebUser:
    found = live_session(session, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired()
    row, account = found
    assert account.id is not None and row.id is not None
    user = WebUser(
        user_id=account.id,
        username=account.username,
        role=Role(account.role),
        institution_id=account.institution_id,
        session_id=row.id,
        csrf=row.csrf_token,
    )
    request.state.web_user = user
    return user


CurrentUser = Annotated[WebUser, Depends(current_user)]


def ensure_role(user: WebUser, *roles: Role) -> WebUser:
    """``user``, if their role is one of ``roles``; else 403."""
    if user.role not in roles:
        raise Forbidden()
    return user


def require(*roles: Role) -> Callable[[WebUser], Awaitable[WebUser]]:
    """A dependency: the current user, if their role is one of ``roles``; else 403."""

    # Async: no I/O here, and a plain ``def`` would cost a thread hop (see hotline.deps).
    async def dependency(user: CurrentUser) -> WebUser:
        return ensure_role(user, *roles)

    return dependency


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


async def csrf_protected(request: Request, user: CurrentUser) -> WebUser:
    """For every POST: the header (htmx) or the form field must carry the session's token."""
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not _same(sent, user.csrf):
        raise CsrfFailed()
    return user


CsrfUser = Annotated[WebUser, Depends(csrf_protected)]


def login_csrf_ok(request: Request, sent: str | None) -> bool:
    return _same(sent, request.cookies.get(LOGIN_CSRF_COOKIE))
