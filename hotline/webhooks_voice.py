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
from starlette.concurrency import run_in_threadpool
from twilio.twiml.messaging_response import MessagingResponse

from hotline.deps import SessionDep, SettingsDep, TwilioForm
from hotline.settings import Settings
from hotline.webhooks import sms_unavailable
from ivr_flows import calls, store
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


def _hook(request: Request, form: dict[str, str]) -> Webhook:
    return Webhook(
        params=form,
        query=dict(request.query_params),
        token=request.headers.get(IDEMPOTENCY_HEADER) or None,
    )


def _run(
    request: Request,
    form: dict[str, str],
    session: Session,
    settings: Settings,
    run: Run,
    *,
    apologise: bool = True,
) -> Response:
    hook = _hook(request, form)
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
async def main_line(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return await _call_step(request, form, session, settings, "main")


@router.post("/monitor", response_class=Response, summary="Monitoring line call (监督电话)")
async def monitor_line(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return await _call_step(request, form, session, settings, "monitor")


@router.post("/revisit", response_class=Response, summary="Revisit call (outbound, 客户回访)")
async def revisit_call(
    request: Request,
    form: TwilioForm,
    session: SessionDep,
    settings: SettingsDep,
    ticket: str = "",
) -> Response:
    return await _call_step(request, form, session, settings, "revisit", {"ticket": ticket})


async def _call_step(
    request: Request,
    form: dict[str, str],
    session: Session,
    settings: Settings,
    flow_name: str,
    fixed_query: dict[str, str] | None = None,
) -> Response:
    config = voice_config(settings)

    def step(hook: Webhook, now: datetime) -> VoiceResult:
        return calls.handle_call(
            session, flow_name, hook, config=config, now=now, fixed_query=fixed_query
        )

    if calls.greets(flow_name, request.query_params.get("step")):
        # A new call's greeting touches no database: answered here, on the event loop, without
        # waiting for one of the process's few threads, so a flood of new calls (a policy
        # announcement) is greeted at the pace of the framework itself.
        try:
            greeting = step(_hook(request, form), clock(request))
        except BadWebhook as exc:
            return Response(content=str(exc), status_code=400, media_type="text/plain")
        except Exception:
            # On a thread, where a failure is answered as on every other step (an apology,
            # and a callback task written to the database).
            log.warning("a greeting failed on the event loop; trying on a thread", exc_info=True)
        else:
            return _twiml(greeting.twiml or calls.apology())
    return await run_in_threadpool(_run, request, form, session, settings, step)


@router.post("/call-status", response_class=Response, summary="Call status callback")
async def call_status(request: Request, form: TwilioForm, settings: SettingsDep) -> Response:
    # The usual end of a call is answered here, on the event loop: it waits for the statement
    # that ends every call whose end came meanwhile (store.end_served_call_grouped), holding none
    # of the process's few threads, so that many can wait for one statement. Anything else
    # takes a thread, as every other webhook.
    engine = get_engine()
    now = clock(request)
    tried = False
    if store.grouped_ends(engine):
        try:
            served = await calls.end_if_served(engine, _hook(request, form), now=now)
        except BadWebhook as exc:
            return Response(content=str(exc), status_code=400, media_type="text/plain")
        except Exception:
            # The general path tries again, and answers a failure as every webhook does.
            log.warning("the usual end of a call could not be written at once", exc_info=True)
        else:
            if served is not None:
                return _twiml(served.twiml)
            tried = True
    return await run_in_threadpool(_call_status, request, form, settings, now, tried)


def _call_status(
    request: Request, form: dict[str, str], settings: Settings, now: datetime, tried: bool
) -> Response:
    # Its own session rather than SessionDep: FastAPI's handling of a generator dependency
    # costs more than the session.
    config = voice_config(settings)
    with Session(get_engine(), expire_on_commit=False) as session:
        return _run(
            request,
            form,
            session,
            settings,
            lambda hook, _now: calls.handle_call_status(
                session, hook, config=config, now=now, served_tried=tried
            ),
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
