"""Entry points of the voice dialogues, one per webhook: a call's step, its status callbacks,
recording callbacks, message status callbacks, and the apology when something failed.

Each runs in the caller's database session, which the web edge commits: the delivery record
(the idempotency key and the reply), the call's state and the case it changed are one unit.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy.engine import Engine as DatabaseEngine
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session
from twilio.twiml.voice_response import VoiceResponse

from ivr_flows import casework, monitor, revisit, store, voice
from ivr_flows.engine import HANGUP, Engine, Input, Registry, Turn, load_flow
from ivr_flows.jobs import queue_ticket_sms
from ivr_flows.models import CallLog, DialogueState, MessageLog
from ivr_flows.texts import text
from tickets.models import Channel
from tickets.phones import mask_phone, normalise_phone

log = logging.getLogger(__name__)

# What every status callback answers (built once: the twilio library's builder is not free).
EMPTY_TWIML = str(VoiceResponse())
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})

# Flow name -> (file, Python side). Adding a flow is a file and a registry here.
FLOW_SOURCES: dict[str, tuple[str, Registry]] = {
    "main": ("flow_main.yaml", voice.REGISTRY),
    "monitor": ("flow_monitor.yaml", monitor.REGISTRY),
    "revisit": ("flow_revisit.yaml", revisit.REGISTRY),
}
# What happens to a conversation that ends before its flow did (see end_of_call).
EndHandler = Callable[[Session, DialogueState, str, datetime], None]


class BadWebhook(ValueError):
    """The request lacks what every Twilio request of its kind has (e.g. CallSid)."""


@dataclass(frozen=True)
class VoiceConfig:
    base_url: str
    main_number: str
    monitor_number: str
    timezone: str = "Asia/Shanghai"
    agent_workflow_sid: str = "WW" + "0" * 32

    def values(self) -> dict[str, str]:
        return {
            "main_number": self.main_number,
            "monitor_number": self.monitor_number,
            "timezone": self.timezone,
            "agent_workflow_sid": self.agent_workflow_sid,
        }


@dataclass(frozen=True)
class Webhook:
    """A verified Twilio request: its form fields, its query string, its idempotency token."""

    params: Mapping[str, str]
    query: Mapping[str, str]
    token: str | None = None


@dataclass(frozen=True)
class VoiceResult:
    twiml: str
    repeated: bool = False


@cache
def engines() -> dict[str, Engine]:
    """Every flow, loaded and checked (called at start-up, so a bad file stops the app)."""
    found: dict[str, Engine] = {}
    for name, (filename, registry) in FLOW_SOURCES.items():
        flow = load_flow(filename, registry)
        found[name] = Engine(flow, registry)
    return found


def validate_flows() -> list[str]:
    return sorted(engines())


def _party(params: Mapping[str, str]) -> str:
    """The other party's number: the caller inbound, the called firm outbound."""
    outbound = (params.get("Direction") or "inbound").startswith("outbound")
    raw = params.get("To" if outbound else "From") or ""
    return normalise_phone(raw) or raw


def _delivery_key(kind: str, hook: Webhook, *parts: str) -> str:
    if hook.token:
        return f"{kind}:token:{hook.token}"
    return ":".join((kind, *parts))


# --- a call's steps --------------------------------------------------------------------------


def greets(flow_name: str, step: str | None) -> bool:
    """Whether this request of the line is a new call's greeting, which depends on the flow file
    alone (see :func:`handle_call`): it touches no database, so it can be answered anywhere."""
    return step is None and engines()[flow_name].static_start


def handle_call(
    session: Session,
    flow_name: str,
    hook: Webhook,
    *,
    config: VoiceConfig,
    now: datetime,
    fixed_query: Mapping[str, str] | None = None,
    first_language: str = "zh",
) -> VoiceResult:
    params = hook.params
    call_sid = params.get("CallSid") or ""
    if not call_sid:
        raise BadWebhook("missing CallSid")
    step = hook.query.get("step")
    engine = engines()[flow_name]
    if step is None and engine.static_start:
        # The greeting depends on the flow file alone: answered without the database. Nothing
        # is claimed, because a repeated delivery gets the same TwiML anyway, and nothing is
        # stored, because nothing happened yet: the call's state is made by its first answer
        # (below, which finds none and starts one) or, for a caller who hangs up during the
        # greeting, by the status callback, which opens the callback task as before. A flood
        # of calls after a policy announcement costs the database nothing until callers speak.
        turn = _turn(
            session, engine, call_sid, _party(params), first_language, {}, config, now, fixed_query
        )
        twiml = str(engine.start(turn, Input.from_params(params)))
        _log_step(flow_name, step, turn)
        return VoiceResult(twiml)

    key = _delivery_key(
        f"voice:{flow_name}", hook, call_sid, step or "start", hook.query.get("seq", "")
    )
    claim = store.claim(session, key)
    if claim is None:
        return VoiceResult(store.stored_reply(session, key) or "", repeated=True)

    state_key = store.call_key(call_sid)
    state = store.load_state(session, state_key, now=now)
    if state is None:
        state = store.create_state(
            session,
            state_key,
            flow=flow_name,
            phone=_party(params),
            language=first_language,
            ttl=store.CALL_TTL,
            now=now,
        )
    turn = _turn(
        session,
        engine,
        call_sid,
        state.phone,
        state.language,
        copy.deepcopy(state.data),
        config,
        now,
        fixed_query,
    )
    if step is None or step == HANGUP:
        response = engine.start(turn, Input.from_params(params))
    else:
        response = engine.resume(turn, step, Input.from_params(params))
    _save(session, state, turn, now)
    twiml = str(response)
    store.answer(session, claim, twiml)
    _log_step(flow_name, step, turn)
    return VoiceResult(twiml)


def _turn(
    session: Session,
    engine: Engine,
    call_sid: str,
    caller: str,
    language: str,
    data: dict[str, Any],
    config: VoiceConfig,
    now: datetime,
    fixed_query: Mapping[str, str] | None,
) -> Turn:
    return Turn(
        session=session,
        flow=engine.flow,
        call_sid=call_sid,
        caller=caller,
        language=language,
        data=data,
        base_url=config.base_url,
        now=now,
        config=config.values(),
        query=dict(fixed_query or {}),
    )


def _log_step(flow_name: str, step: str | None, turn: Turn) -> None:
    log.info(
        "call %s %s step %s -> %s (caller %s)",
        turn.call_sid,
        flow_name,
        step or "start",
        turn.data.get("step"),
        mask_phone(turn.caller),
    )


def _save(session: Session, state: DialogueState, turn: Turn, now: datetime) -> None:
    if turn.data.get("ticket_id"):
        state.ticket_id = int(turn.data["ticket_id"])
    store.save_state(
        session, state, data=turn.data, language=turn.language, ttl=store.CALL_TTL, now=now
    )
    flag_modified(state, "data")


# --- status callbacks ------------------------------------------------------------------------


def _flow_of(params: Mapping[str, str], config: VoiceConfig) -> str:
    if (params.get("Direction") or "").startswith("outbound"):
        return "revisit"
    to = normalise_phone(params.get("To") or "") or params.get("To") or ""
    return "monitor" if to == config.monitor_number else "main"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class StatusCallback:
    """A call-status callback's fields, as stored."""

    call_sid: str
    status: str
    # The delivery's claim and the conversation's key.
    key: str
    state_key: str
    # CallLog's fields but flow, ticket and time.
    fields: dict[str, Any]


def read_call_status(hook: Webhook) -> StatusCallback:
    params = hook.params
    call_sid = params.get("CallSid") or ""
    status = (params.get("CallStatus") or "").lower()
    if not call_sid or not status:
        raise BadWebhook("missing CallSid or CallStatus")
    key = _delivery_key(
        "status",
        hook,
        call_sid,
        status,
        params.get("SequenceNumber") or params.get("Timestamp", ""),
    )
    fields: dict[str, Any] = {
        "call_sid": call_sid,
        "parent_call_sid": params.get("ParentCallSid") or "",
        "status": status,
        "direction": params.get("Direction") or "",
        "from_number": params.get("From") or "",
        "to_number": params.get("To") or "",
        "duration": _int(params.get("CallDuration")),
        "answered_by": params.get("AnsweredBy") or "",
        "sequence": _int(params.get("SequenceNumber")),
    }
    return StatusCallback(call_sid, status, key, store.call_key(call_sid), fields)


async def end_if_served(
    engine: DatabaseEngine, hook: Webhook, *, now: datetime
) -> VoiceResult | None:
    """The usual end of a call (see store.end_served_call), answered without a thread of the
    web process: the result when the callback was one, None when it needs
    :func:`handle_call_status` (pass it ``served_tried=True``). PostgreSQL only: call it
    where ``store.grouped_ends(engine)``."""
    callback = read_call_status(hook)
    if callback.status not in FINAL_STATUSES:
        return None
    ended = await store.end_served_call_grouped(
        engine, callback.key, state_key=callback.state_key, entry=callback.fields, now=now
    )
    return _served(callback, ended)


def _served(callback: StatusCallback, ended: store.ServedCallEnd) -> VoiceResult | None:
    if ended.repeated:
        return VoiceResult(EMPTY_TWIML, repeated=True)
    if ended.served:
        # At DEBUG: call_log holds this end (status, flow, case), and a JSON line for every
        # answered call was a large share of this request's own work (its write gives up the
        # interpreter lock while other requests wait for it).
        _log_end(
            callback.call_sid,
            callback.status,
            ended.flow,
            ended.step,
            ended.ticket_id,
            logging.DEBUG,
        )
        return VoiceResult(EMPTY_TWIML)
    return None


def handle_call_status(
    session: Session,
    hook: Webhook,
    *,
    config: VoiceConfig,
    now: datetime,
    served_tried: bool = False,
) -> VoiceResult:
    """Store the callback; when the call has ended, make sure nothing the caller asked is lost:
    a stated need becomes a case, a call that ended before that becomes a callback task.
    ``served_tried``: :func:`end_if_served` found it was not the usual end of a call."""
    callback = read_call_status(hook)
    params = hook.params
    call_sid, status = callback.call_sid, callback.status
    key, state_key, fields = callback.key, callback.state_key, callback.fields
    if status in FINAL_STATUSES and not served_tried:
        # The usual end of a call: the conversation already has its case and the line needs
        # nothing more at its end (store.SERVED_ENDS_NOTHING names those lines).
        ended = store.end_served_call(session, key, state_key=state_key, entry=fields, now=now)
        served = _served(callback, ended)
        if served is not None:
            return served
    if store.claim(session, key) is None:
        return VoiceResult(EMPTY_TWIML, repeated=True)

    state = store.load_state(session, state_key, now=now)
    flow_name = state.flow if state is not None else _flow_of(params, config)
    entry = CallLog(**fields, flow=flow_name, at=now)
    if status in FINAL_STATUSES and (state is None or not state.finished):
        if state is None:
            state = store.create_state(
                session,
                state_key,
                flow=flow_name,
                phone=_party(params),
                language="zh",
                ttl=store.CALL_TTL,
                now=now,
            )
            engine = engines()[flow_name]
            if status == "completed" and engine.static_start:
                # Answered, and no answer came back: the caller heard the greeting, which
                # stores nothing (see handle_call).
                state.data = {"step": engine.flow.start}
            if hook.query.get("ticket"):
                # A revisit call that never reached its flow (not answered): the status
                # callback URL names the ticket.
                state.data = {"revisit_ticket_number": hook.query["ticket"]}
        handler = END_HANDLERS.get(flow_name)
        if handler is not None:
            handler(session, state, status, now)
        state.finished = True
        session.add(state)
        flag_modified(state, "data")
        _log_end(call_sid, status, flow_name, state.data.get("step"), state.ticket_id)
    entry.ticket_id = state.ticket_id if state is not None else None
    # Written with the state by the commit's flush: one unit of work, not one per row. The
    # reply is always the empty one, so it is not stored: a retry reads "" and answers empty.
    session.add(entry)
    return VoiceResult(EMPTY_TWIML)


def _log_end(
    call_sid: str,
    status: str,
    flow_name: str,
    step: str | None,
    ticket_id: int | None,
    level: int = logging.INFO,
) -> None:
    log.log(
        level,
        "call %s ended (%s) in %s at step %s; case %s",
        call_sid,
        status,
        flow_name,
        step,
        ticket_id,
    )


def _end_main(session: Session, state: DialogueState, status: str, now: datetime) -> None:
    data = copy.deepcopy(state.data)
    if data.get("ticket_id"):
        return
    if data.get("need") or data.get("category"):
        ticket_id = voice.open_from_call(
            session, data, phone=state.phone, language=state.language, now=now, abandoned=True
        )
        queue_ticket_sms(session, ticket_id, "voice_confirmation")
    else:
        ticket_id = _callback_task(session, state, status, now)
    data["ticket_id"] = ticket_id
    state.ticket_id = ticket_id
    state.data = data


def _end_monitor(session: Session, state: DialogueState, status: str, now: datetime) -> None:
    data = copy.deepcopy(state.data)
    if data.get("ticket_id"):
        return
    ticket_id = monitor.open_complaint_from_call(
        session, data, phone=state.phone, language=state.language, now=now, callback=True
    )
    data["callback"] = True
    state.ticket_id = ticket_id
    state.data = data


def _callback_task(session: Session, state: DialogueState, status: str, now: datetime) -> int:
    """A call we could not serve at all: a case without a category, which agents see in their
    queue of new cases, asking them to call back."""
    ticket, _ = casework.open_case(
        session,
        actor=casework.VOICE_ACTOR,
        channel=Channel.voice,
        phone=state.phone,
        language=state.language,
        summary="未接通或来电者在说明需求前挂机，请回电。",
        now=now,
        classification={
            "callback": True,
            "call_status": status,
            "abandoned_at_step": state.data.get("step"),
        },
    )
    assert ticket.id is not None
    return ticket.id


def _end_revisit(session: Session, state: DialogueState, status: str, now: datetime) -> None:
    """A revisit call ended: the answers given so far count; none at all is no answer."""
    data = copy.deepcopy(state.data)
    if data.get("outcome"):
        revisit.record(session, data, now=now)
    else:
        revisit.unanswered(session, data, now=now)
    state.data = data


END_HANDLERS: dict[str, EndHandler] = {
    "main": _end_main,
    "monitor": _end_monitor,
    "revisit": _end_revisit,
}


def register_callback(
    session: Session, hook: Webhook, *, config: VoiceConfig, now: datetime
) -> int | None:
    """After an internal failure or a fallback request: make sure an agent calls back. Once per
    call; returns the ticket id (None without a CallSid)."""
    params = hook.params
    call_sid = params.get("CallSid") or ""
    if not call_sid:
        return None
    state_key = store.call_key(call_sid)
    state = store.load_state(session, state_key, now=now)
    if state is None:
        state = store.create_state(
            session,
            state_key,
            flow=_flow_of(params, config),
            phone=_party(params),
            language="zh",
            ttl=store.CALL_TTL,
            now=now,
        )
        # Kept even when no callback follows (a revisit call): the call is known from here.
        session.add(state)
    if state.ticket_id:
        return state.ticket_id
    if state.flow == "revisit":
        return None
    ticket_id = _callback_task(session, state, "failed", now)
    state.ticket_id = ticket_id
    data = copy.deepcopy(state.data)
    data["ticket_id"] = ticket_id
    data["callback"] = True
    state.data = data
    session.add(state)
    session.flush()
    return ticket_id


# --- recordings and messages -----------------------------------------------------------------


def handle_recording_status(session: Session, hook: Webhook, *, now: datetime) -> VoiceResult:
    params = hook.params
    recording_sid = params.get("RecordingSid") or ""
    status = params.get("RecordingStatus") or ""
    if not recording_sid:
        raise BadWebhook("missing RecordingSid")
    claim = store.claim(session, _delivery_key("recording", hook, recording_sid, status))
    if claim is None:
        return VoiceResult(EMPTY_TWIML, repeated=True)
    state = store.load_state(session, store.call_key(params.get("CallSid") or ""), now=now)
    if state is not None and state.ticket_id and status == "completed":
        casework.note(
            session,
            state.ticket_id,
            actor=casework.VOICE_ACTOR,
            action="recording",
            data={
                "recording_sid": recording_sid,
                "recording_url": params.get("RecordingUrl") or "",
                "duration": _int(params.get("RecordingDuration")),
                "step": hook.query.get("step", ""),
            },
            text="录音已保存",
        )
    return VoiceResult(EMPTY_TWIML)


def handle_message_status(session: Session, hook: Webhook, *, now: datetime) -> VoiceResult:
    params = hook.params
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if not sid or not status:
        raise BadWebhook("missing MessageSid or MessageStatus")
    claim = store.claim(session, _delivery_key("message", hook, sid, status))
    if claim is None:
        return VoiceResult(EMPTY_TWIML, repeated=True)
    session.add(
        MessageLog(
            message_sid=sid,
            status=status,
            error_code=params.get("ErrorCode") or "",
            from_number=params.get("From") or "",
            to_number=params.get("To") or "",
            at=now,
        )
    )
    return VoiceResult(EMPTY_TWIML)


# --- when we fail ----------------------------------------------------------------------------


def apology() -> str:
    """Valid TwiML that apologises, promises a callback and hangs up; built without the
    database or the flow files, since either may be what failed."""
    response = VoiceResponse()
    response.say(text("voice_texts", "apology", "zh"), voice="Polly.Zhiyu", language="cmn-CN")
    response.say(text("voice_texts", "apology", "en"), voice="Polly.Joanna", language="en-US")
    response.hangup()
    return str(response)
