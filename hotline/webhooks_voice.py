"""Twilio voice webhooks. Thin: verify the signature, parse, call one flow function, commit,
answer TwiML. Slow work (the confirmation SMS) is written by the flows into the tickets outbox in
the same transaction, and relayed into RQ after the response (see ``hotline.app``), so these
handlers never talk to Redis themselves.

Every route answers valid TwiML with status 200 whatever happens inside: on an internal
failure the caller hears an apology and a callback is registered. Twilio never sees a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session
from twilio.twiml.messaging_response import MessagingResponse

from hotline.deps import SessionDep, SettingsDep, TwilioForm
from hotline.settings import Settings
from hotline.webhooks import sms_unavailable
from ivr_flows import calls
from ivr_flows.calls import BadWebhook, VoiceConfig, VoiceResult, Webhook
from kb.db import get_engine, utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

TWIML = "application/xml"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"

# Checked at start-up: a flow file with an unknown step or a missing prompt stops the app here
# with a message naming the file and the step.
calls.validate_flows()

Run = Callable[[Webhook, datetime], VoiceResult]


def voice_config(settings: Settings) -> VoiceConfig:
    return _voice_config(
        settings.public_base_url,
        settings.main_number,
        settings.monitor_number,
        settings.timezone,
        settings.twilio_agent_workflow_sid,
    )


@lru_cache(maxsize=8)
def _voice_config(
    base_url: str, main_number: str, monitor_number: str, timezone: str, workflow_sid: str
) -> VoiceConfig:
    # The same few values on every request: built once (frozen, so safe to share).
    return VoiceConfig(
        base_url=base_url,
        main_number=main_number,
        monitor_number=monitor_number,
        timezone=timezone,
        agent_workflow_sid=workflow_sid,
    )


def clock(request: Request) -> datetime:
    """The flows' clock: ``app.state.clock`` when one is set (tests pin office hours with it),
    else the system's."""
    pinned: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return pinned() if pinned is not None else utcnow()


def _twiml(body: str) -> Response:
    return Response(content=body, media_type=TWIML)


def _run(
    request: Request,
    form: dict[str, str],
    session: Session,
    settings: Settings,
    run: Run,
    *,
    apologise: bool = True,
) -> Response:
    hook = Webhook(
        params=form,
        query=dict(request.query_params),
        token=request.headers.get(IDEMPOTENCY_HEADER) or None,
    )
    now = clock(request)
    try:
        result = run(hook, now)
        if session.in_transaction():
            # A step that never used the session (the usual end of a call runs its own
            # statement) leaves nothing to commit, and an empty commit is not free.
            session.commit()
    except BadWebhook as exc:
        session.rollback()
        return Response(content=str(exc), status_code=400, media_type="text/plain")
    except Exception:
        session.rollback()
        log.exception("voice webhook %s failed; apologising", request.url.path)
        if apologise:
            _register_callback(session, hook, settings, now)
            return _twiml(calls.apology())
        return _twiml(str(MessagingResponse()))
    return _twiml(result.twiml or calls.apology())


def _register_callback(session: Session, hook: Webhook, settings: Settings, now: datetime) -> None:
    try:
        calls.register_callback(session, hook, config=voice_config(settings), now=now)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("could not register a callback after a failure")


@router.post("/voice", response_class=Response, summary="Main hotline call (Twilio Voice)")
def main_line(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    config = voice_config(settings)
    return _run(
        request,
        form,
        session,
        settings,
        lambda hook, now: calls.handle_call(session, "main", hook, config=config, now=now),
    )


@router.post("/monitor", response_class=Response, summary="Monitoring line call (监督电话)")
def monitor_line(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    config = voice_config(settings)
    return _run(
        request,
        form,
        session,
        settings,
        lambda hook, now: calls.handle_call(session, "monitor", hook, config=config, now=now),
    )


@router.post("/revisit", response_class=Response, summary="Revisit call (outbound, 客户回访)")
def revisit_call(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
    ticket: str = "",
) -> Response:
    config = voice_config(settings)
    return _run(
        request,
        form,
        session,
        settings,
        lambda hook, now: calls.handle_call(
            session, "revisit", hook, config=config, now=now, fixed_query={"ticket": ticket}
        ),
    )


@router.post("/call-status", response_class=Response, summary="Call status callback")
def call_status(request: Request, form: TwilioForm, settings: SettingsDep) -> Response:
    # Its own session rather than SessionDep: the usual end of a call never uses one (see
    # store.end_served_call), and FastAPI's handling of a generator dependency costs more
    # than the session.
    config = voice_config(settings)
    with Session(get_engine(), expire_on_commit=False) as session:
        return _run(
            request,
            form,
            session,
            settings,
            lambda hook, now: calls.handle_call_status(session, hook, config=config, now=now),
        )


@router.post("/recording-status", response_class=Response, summary="Recording status callback")
def recording_status(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return _run(
        request,
        form,
        session,
        settings,
        lambda hook, now: calls.handle_recording_status(session, hook, now=now),
    )


@router.post("/message-status", response_class=Response, summary="Message status callback")
def message_status(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return _run(
        request,
        form,
        session,
        settings,
        lambda hook, now: calls.handle_message_status(session, hook, now=now),
        apologise=False,
    )


@router.post("/fallback", response_class=Response, summary="Fallback URL for any webhook")
def fallback(
    request: Request, form: TwilioForm, session: SessionDep, settings: SettingsDep
) -> Response:
    """Twilio calls this when a primary webhook failed or timed out: apologise, and make sure
    someone calls back."""
    log.warning(
        "Twilio fallback: error %s on %s", form.get("ErrorCode", "?"), form.get("ErrorUrl", "?")
    )
    if form.get("MessageSid") and not form.get("CallSid"):
        return sms_unavailable()
    hook = Webhook(params=form, query=dict(request.query_params))
    _register_callback(session, hook, settings, clock(request))
    return _twiml(calls.apology())
