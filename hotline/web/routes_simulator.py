"""/simulator: the phone simulator in the browser, for agents and admins (demos, training).

It does what ``hotline call`` and ``hotline sms`` do in a terminal, with the same engine
(``hotline.simulator``): it plays Twilio's part, posting requests signed with the twilio
library's ``RequestValidator`` for the public URL, through the whole app (``AppTransport``), so
the webhooks check them as they check Twilio's. It is not a back door: it writes nothing itself.
It also answers (or lets ring out) the outbound calls the offline telephony adapter recorded,
such as revisit calls, and shows the texts that adapter recorded for the simulator's numbers.

Each browser's simulator (its web session's) lives in Redis with the session's idle timeout:
every step is a plain form post (CSRF-checked), answered with the panel for htmx or with a
redirect back to the page without JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from hotline.authz import may_see
from hotline.deps import SessionDep
from hotline.settings import Settings
from hotline.simulator import (
    UNANSWERED,
    CallSimulator,
    Signer,
    SimulatorError,
    SmsSimulator,
    Turn,
    Waiting,
    await_reply,
)
from hotline.web import simulator_state as sim
from hotline.web.auth import CsrfUser, WebUser, ensure_role, require
from hotline.web.render import render
from ivr_flows.sms import reply_to
from tickets.models import Role
from tickets.numbers import find_in_text
from tickets.phones import normalise_phone

router = APIRouter(include_in_schema=False)

SimUser = Annotated[WebUser, Depends(require(Role.agent, Role.admin))]
ALLOWED = (Role.agent, Role.admin)
LINES = ("hotline", "monitor")
LANGUAGES = ("zh", "en")
KEYS = re.compile(r"^[0-9*#]{1,32}$")
MAX_SPEECH = 500
MAX_SMS = 1600
# How long the page waits for a worker to answer a text before showing it as not answered yet.
SMS_REPLY_WAIT_SECONDS = 10.0
DIAL_OUTCOMES = ("completed", "no-answer", "busy")
QUEUE_RESULTS = ("bridged", "leave")
ANSWERS = ("human", "machine", "no-answer", "busy")
KEYPAD = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")


class Refused(Exception):
    """The simulator will not do this (bad input, or not what the call waits for)."""

    def __init__(self, key: str, status: int = 422, **values: object) -> None:
        super().__init__(key)
        self.key, self.status, self.values = key, status, values


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _partial(request: Request) -> bool:
    # htmx's own requests get the panel; a boosted link or form gets the page.
    return (
        request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    )


def _waiting(state: sim.SimState) -> Waiting | None:
    if not state.active or state.call is None or not state.call.get("waiting"):
        return None
    return Waiting(**state.call["waiting"])


def _context(
    request: Request,
    session: Session,
    user: WebUser,
    state: sim.SimState,
    problem: tuple[str, dict[str, object]] | None,
) -> dict[str, Any]:
    settings = _settings(request)
    ticket = sim.ticket_by_number(session, state.ticket) if state.ticket else None
    waiting_calls = sim.waiting_calls(session)
    try:
        elsewhere = sim.claimed_elsewhere(
            request.app.state.redis,
            [w.call.id for w in waiting_calls if w.call.id],
            sim.browser_of(user),
        )
    except sim.StateUnavailable:
        elsewhere = set()  # the list is a hint; answering re-checks the claim
    sms_links = {
        entry["ticket"]
        for entry in state.sms_log
        if entry.get("ticket") and _visible(session, user, entry["ticket"])
    }
    return {
        "sim": state,
        "waiting": _waiting(state),
        "ticket": ticket,
        "ticket_link": ticket is not None and may_see(session, ticket, user.actor),
        "sms_links": sms_links,
        "outbound": [w for w in waiting_calls if w.call.id not in elsewhere],
        "texts": sim.texts_to(session, state.phones, state.since_moment),
        "offline": not settings.twilio_configured,
        "lines": LINES,
        "languages": LANGUAGES,
        "keypad": KEYPAD,
        "problem": problem,
        "main_number": settings.main_number,
        "monitor_number": settings.monitor_number,
    }


def _visible(session: Session, user: WebUser, number: str) -> bool:
    ticket = sim.ticket_by_number(session, number)
    return ticket is not None and may_see(session, ticket, user.actor)


def _page(
    request: Request,
    session: Session,
    user: WebUser,
    state: sim.SimState,
    *,
    problem: tuple[str, dict[str, object]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    name = "simulator_panel.html" if _partial(request) else "simulator.html"
    return render(request, name, _context(request, session, user, state, problem), status=status)


def _answer(
    request: Request,
    session: SessionDep,
    user: WebUser,
    work: Callable[[sim.SimState, Signer, Session], None],
) -> Response:
    """Run one step of the simulator for this browser, then show the result."""
    ensure_role(user, *ALLOWED)
    settings = _settings(request)
    conn = request.app.state.redis
    if settings.twilio_configured:
        # With real telephony, a simulated call would text a real number: demos stay offline.
        return _page(
            request, session, user, sim.SimState(), problem=("sim.offline_only", {}), status=409
        )
    # End this request's transaction first: on SQLite it holds the write lock the webhooks
    # the simulator is about to call need.
    session.rollback()
    browser = sim.browser_of(user)
    problem: tuple[str, dict[str, object]] | None = None
    status = 200
    try:
        with sim.locked(conn, browser):
            state = sim.load(conn, browser)
            with httpx.Client(transport=sim.AppTransport(request.app), timeout=15.0) as client:
                signer = Signer(
                    settings.auth_token, public_base=settings.public_base_url, client=client
                )
                try:
                    work(state, signer, session)
                except Refused as exc:
                    problem, status = (exc.key, exc.values), exc.status
                except (SimulatorError, httpx.HTTPError) as exc:
                    # The app refused or failed a request: show it, as Twilio's debugger would.
                    problem, status = ("sim.error.refused", {"detail": str(exc)[:300]}), 502
                    state.add({"who": "error", "text": str(exc)[:300]})
            session.rollback()  # a fresh read of what the webhooks committed
            _follow_ticket(session, state)
            sim.save(conn, browser, state)
    except sim.Busy:
        try:
            state = sim.load(conn, browser)
        except sim.StateUnavailable:
            return render(request, "error.html", {"message": "sim.error.state"}, status=503)
        problem, status = ("sim.error.busy", {}), 409
    except sim.StateUnavailable:
        return render(request, "error.html", {"message": "sim.error.state"}, status=503)
    if problem is None and not _partial(request):
        return RedirectResponse("/simulator", status_code=303)
    return _page(request, session, user, state, problem=problem, status=status)


def _follow_ticket(session: Session, state: sim.SimState) -> None:
    if state.call is None or state.ticket:
        return
    ticket = sim.ticket_of_call(session, str(state.call["call_sid"]))
    if ticket is not None:
        state.ticket = ticket.number
        state.add({"who": "ticket", "text": ticket.number})


def _play(state: sim.SimState, call: CallSimulator, turn: Turn) -> None:
    for said in turn.said:
        state.add({"who": "hotline", "text": said.text, "lang": said.language})
    for mark in turn.marks:
        state.add({"who": "note", "code": mark.code, "value": mark.value})
    state.call = call.snapshot()


def _resume(state: sim.SimState, signer: Signer) -> CallSimulator:
    if state.call is None or not state.active:
        raise Refused("sim.error.no_call", 409)
    return CallSimulator.restore(signer, state.call)


def _hang_up_current(state: sim.SimState, signer: Signer) -> None:
    """A new call ends the one in progress, as putting the phone down would."""
    if state.active:
        call = _resume(state, signer)
        state.add({"who": "you", "act": "hangup", "value": ""})
        _play(state, call, call.hangup())


def _phone(raw: str) -> str:
    phone = normalise_phone(raw) if raw.strip() else None
    if phone is None:
        raise Refused("sim.error.phone", value=raw.strip()[:32])
    return phone


# --- pages -----------------------------------------------------------------------------------


@router.get("/simulator", response_class=HTMLResponse)
def simulator_page(request: Request, session: SessionDep, user: SimUser) -> HTMLResponse:
    try:
        state = sim.load(request.app.state.redis, sim.browser_of(user))
    except sim.StateUnavailable:
        return render(request, "error.html", {"message": "sim.error.state"}, status=503)
    offline = not _settings(request).twilio_configured
    return _page(
        request, session, user, state, problem=None if offline else ("sim.offline_only", {})
    )


@router.get("/simulator/outbound", response_class=HTMLResponse)
def outbound_list(request: Request, session: SessionDep, user: SimUser) -> HTMLResponse:
    """The waiting calls and recorded texts alone: what the page polls."""
    try:
        state = sim.load(request.app.state.redis, sim.browser_of(user))
    except sim.StateUnavailable:
        return render(request, "error.html", {"message": "sim.error.state"}, status=503)
    return render(request, "simulator_outbound.html", _context(request, session, user, state, None))


# --- steps -----------------------------------------------------------------------------------


@router.post("/simulator/call/start", response_model=None)
def start_call(
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    line: Annotated[str, Form()] = "hotline",
    caller: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "zh",
) -> Response:
    settings = _settings(request)

    def work(state: sim.SimState, signer: Signer, _session: Session) -> None:
        if line not in LINES:
            raise Refused("sim.error.line")
        if language not in LANGUAGES:
            raise Refused("sim.error.language")
        phone = _phone(caller)
        _hang_up_current(state, signer)
        state.line, state.caller, state.language = line, phone, language
        state.ticket, state.outbound_call_id = "", None
        state.use_phone(phone)
        call = CallSimulator(
            signer,
            caller=phone,
            to=settings.main_number if line == "hotline" else settings.monitor_number,
            path="/twilio/voice" if line == "hotline" else "/twilio/monitor",
        )
        state.call = call.snapshot()
        state.add({"who": "start", "act": line, "value": phone})
        _play(state, call, call.start(language=language))

    return _answer(request, session, user, work)


@router.post("/simulator/call", response_model=None)
def call_step(
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    action: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
) -> Response:
    """One thing the caller does: press keys, say something, stay silent, leave a recording,
    hang up; or what happened to a transfer (dial) or in the agent queue."""

    def work(state: sim.SimState, signer: Signer, _session: Session) -> None:
        call = _resume(state, signer)
        waiting = call.waiting
        text = value.strip()
        if action == "hangup":
            turn = call.hangup()
        elif waiting is None:
            raise Refused("sim.error.no_call", 409)
        elif action == "press":
            if not waiting.takes_keys:
                raise Refused("sim.error.not_now", 409, action=action)
            if not KEYS.match(text):
                raise Refused("sim.error.keys")
            turn = call.press(text)
        elif action == "say":
            if not waiting.takes_speech:
                raise Refused("sim.error.not_now", 409, action=action)
            if not text or len(text) > MAX_SPEECH:
                raise Refused("sim.error.speech", limit=MAX_SPEECH)
            turn = call.say(text)
        elif action == "silence":
            if waiting.input in ("dial", "queue"):
                raise Refused("sim.error.not_now", 409, action=action)
            turn = call.silence()
        elif action == "record":
            if waiting.input != "record":
                raise Refused("sim.error.not_now", 409, action=action)
            if len(text) > MAX_SPEECH:
                raise Refused("sim.error.speech", limit=MAX_SPEECH)
            turn = call.record(text)
        elif action == "dial":
            if waiting.input != "dial":
                raise Refused("sim.error.not_now", 409, action=action)
            if text not in DIAL_OUTCOMES:
                raise Refused("sim.error.choice")
            turn = call.dial(text)
        elif action == "queue":
            if waiting.input != "queue":
                raise Refused("sim.error.not_now", 409, action=action)
            if text not in QUEUE_RESULTS:
                raise Refused("sim.error.choice")
            turn = call.queue(text)
        else:
            raise Refused("sim.error.action")
        state.add({"who": "you", "act": action, "value": text})
        _play(state, call, turn)

    return _answer(request, session, user, work)


@router.post("/simulator/outbound/{call_id}", response_model=None)
def answer_outbound(
    call_id: int,
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    answer: Annotated[str, Form()] = "human",
) -> Response:
    """Pick up (or let ring out) a call the offline adapter placed, such as a revisit call."""
    settings = _settings(request)
    conn = request.app.state.redis

    def work(state: sim.SimState, signer: Signer, db: Session) -> None:
        if answer not in ANSWERS:
            raise Refused("sim.error.choice")
        placed = sim.placed_call(db, call_id)
        db.rollback()  # the webhooks below need the write lock on SQLite
        if placed is None:
            raise Refused("sim.error.no_outbound", 404)
        if not placed.waiting:
            raise Refused("sim.error.outbound_done", 409)
        ticket_number = placed.ticket_number
        if not placed.url.startswith(settings.public_base_url + "/"):
            # Twilio would call that URL, and this app checks signatures against its own.
            raise Refused("sim.error.outbound_url", 409, url=placed.url[:120])
        if not sim.claim_outbound(conn, call_id, sim.browser_of(user)):
            raise Refused("sim.error.outbound_taken", 409)
        _hang_up_current(state, signer)
        query = placed.url.partition("?")[2]
        call = CallSimulator(
            signer,
            caller=placed.to_number,
            to=placed.from_number or settings.main_number,
            path=placed.url,
            status_path="/twilio/call-status" + (f"?{query}" if query else ""),
            direction="outbound-api",
            call_sid=placed.call_sid,
            answered_by={"human": "human", "machine": "machine_start"}.get(answer),
        )
        state.ticket, state.outbound_call_id = ticket_number, call_id
        state.use_phone(placed.to_number)
        state.call = call.snapshot()
        state.add({"who": "outbound", "act": answer, "value": ticket_number})
        if answer in UNANSWERED:
            _play(state, call, call.not_answered(answer))
        else:
            _play(state, call, call.start())

    return _answer(request, session, user, work)


@router.post("/simulator/sms", response_model=None)
def send_sms(
    request: Request,
    session: SessionDep,
    user: CsrfUser,
    sender: Annotated[str, Form()] = "",
    body: Annotated[str, Form()] = "",
) -> Response:
    settings = _settings(request)

    def work(state: sim.SimState, signer: Signer, _session: Session) -> None:
        phone = _phone(sender)
        text = body.strip()
        if not text or len(text) > MAX_SMS:
            raise Refused("sim.error.sms", limit=MAX_SMS)
        state.sms_number = phone
        state.use_phone(phone)
        state.add_sms("you", text)
        sent = SmsSimulator(signer, sender=phone, to=settings.main_number).send(text)
        for said in sent.immediate:
            state.add_sms("hotline", said, find_in_text(said) or "")
        if sent.immediate:
            return

        def read_reply(sid: str) -> str | None:
            # Each look a transaction of its own, ended before the pause: a fresh read of what
            # the worker committed, and (on SQLite) no lock held while the worker writes.
            try:
                return reply_to(session, sid)
            finally:
                session.rollback()

        # A worker answers the text (as with Twilio, the reply comes after the webhook's
        # answer); the offline telephony adapter leaves it in the database for the phone.
        reply = await_reply(read_reply, sent.message_sid, timeout=SMS_REPLY_WAIT_SECONDS)
        if reply is None:
            state.add_sms("pending", "")
        elif reply:
            state.add_sms("hotline", reply, find_in_text(reply) or "")
        else:
            state.add_sms("none", "")

    return _answer(request, session, user, work)


@router.post("/simulator/clear", response_model=None)
def clear(request: Request, session: SessionDep, user: CsrfUser) -> Response:
    """Forget this browser's transcript and texts (hanging up a call in progress)."""

    def work(state: sim.SimState, signer: Signer, _session: Session) -> None:
        _hang_up_current(state, signer)
        state.reset()

    return _answer(request, session, user, work)
