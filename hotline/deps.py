"""Typed dependencies for handlers: the settings, a database session, Twilio-verified forms."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from twilio.request_validator import RequestValidator

from hotline.settings import Settings
from kb.db import get_engine

log = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session() -> Iterator[Session]:
    """A session per request. Handlers that write commit it themselves before answering, so a
    reply never promises what the database did not keep; anything left open is rolled back."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            try:
                session.rollback()
            except SQLAlchemyError:
                # The connection died (the database restarted): nothing is left to roll back,
                # and the pool discards the connection.
                log.warning("rollback on a lost database connection", exc_info=True)


def get_redis(request: Request) -> redis.Redis:
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


async def twilio_form(request: Request, settings: SettingsDep) -> dict[str, str]:
    """The webhook's form fields, only if ``X-Twilio-Signature`` verifies; else 403."""
    form = await request.form()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    signature = request.headers.get("X-Twilio-Signature", "")
    validator = RequestValidator(settings.auth_token)
    if not signature or not validator.validate(public_url(settings, request), params, signature):
        raise HTTPException(status_code=403, detail="invalid Twilio signature")
    return params


TwilioForm = Annotated[dict[str, str], Depends(twilio_form)]
