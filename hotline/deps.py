"""Typed dependencies for handlers: the settings, a database session, Twilio-verified forms."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import parse_qsl

import anyio
import redis
from fastapi import Depends, HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from twilio.request_validator import RequestValidator, compare

from hotline.settings import Settings
from kb.db import get_engine

log = logging.getLogger(__name__)

# As Starlette's form parser: more fields than this is a bad request.
MAX_FORM_FIELDS = 1000


# Dependencies that only read app state are async: FastAPI runs a plain ``def`` dependency in
# the thread pool, and that hop cost more than a whole trivial webhook (session 10: the floor
# 3,300 -> 3,850 req/s, a served call-status callback 1,480 -> 1,860, when this one went async).
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session() -> AsyncIterator[Session]:
    """A session per request. Handlers that write commit it themselves before answering, so a
    reply never promises what the database did not keep; anything left open is rolled back.

    Async, so FastAPI does not send its opening and closing to the thread pool (two thread
    hops per request, a good part of a webhook's CPU): opening a session does no I/O, and a
    session whose handler committed or rolled back holds no connection, so closing it does
    none either. One still in a transaction is rolled back on a thread, never on the loop,
    and on a thread of its own: the pool's threads may all be taken by handlers waiting for
    the very lock this rollback releases (SQLite's writer lock), as FastAPI's own closing of
    sync dependencies also knows."""
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(
                _roll_back_and_close, session, limiter=anyio.CapacityLimiter(1)
            )
        else:
            session.close()


def _roll_back_and_close(session: Session) -> None:
    try:
        session.rollback()
    except SQLAlchemyError:
        # The connection died (the database restarted): nothing is left to roll back, and the
        # pool discards the connection.
        log.warning("rollback on a lost database connection", exc_info=True)
    finally:
        session.close()


async def get_redis(request: Request) -> redis.Redis:
    connection: redis.Redis = request.app.state.redis
    return connection


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]


def public_url(settings: Settings, request: Request) -> str:
    """The URL Twilio called: the configured public base, not the Host this process saw (behind
    a proxy the two differ, and Twilio signs the public one)."""
    url = settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


async def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a posted form (the last value of a repeated name).

    Twilio posts ``application/x-www-form-urlencoded``: that body is split by the standard
    library, in C, into the pairs Starlette's parser gives (bytes as latin-1, %-escapes as
    UTF-8 with replacement characters); python-multipart, under Starlette's, calls back into
    Python for every name and value, and a status callback has ten. Anything else goes through
    Starlette."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise HTTPException(
            status_code=400, detail=f"more than {MAX_FORM_FIELDS} form fields"
        ) from None
    return dict(pairs)


async def twilio_form(request: Request, settings: SettingsDep) -> dict[str, str]:
    """The webhook's form fields, only if ``X-Twilio-Signature`` verifies; else 403."""
    params = await form_fields(request)
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(settings.auth_token)
    if not signature or not _signed(validator, public_url(settings, request), params, signature):
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params


class _SignedFields(dict[str, str]):
    """The form as twilio's validator reads it. For each name it asks ``getall`` (a MultiDict),
    then ``getlist`` (Django's), then indexes: a plain dict cost it two exceptions per field,
    more than the HMAC (17.6 -> 7.9 us for a status callback's ten fields)."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def _signed(validator: RequestValidator, url: str, params: dict[str, str], signature: str) -> bool:
    """twilio's own check, which signs the URL both with and without its port; the URL as
    configured is one of the two, and Twilio signs what it calls, so it is tried alone first:
    one HMAC per webhook instead of two, the same answer."""
    fields = _SignedFields(params)
    if compare(validator.compute_signature(url, fields), signature):
        return True
    return bool(validator.validate(url, fields, signature))


TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]
