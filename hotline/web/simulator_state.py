"""What the /simulator page keeps and reads: the browser's simulator state in Redis, the
in-process HTTP transport its phone uses, and the read-only queries it shows.

The page plays Twilio's part with the same engine as ``hotline call`` (``hotline.simulator``);
this module only keeps that engine's snapshot between requests and carries its HTTP requests.
Nothing here writes to the database: every change the page causes is a signed webhook request
answered by the app's own handlers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import anyio.from_thread
import httpx
import redis
from sqlmodel import Session, col, select
from starlette.types import ASGIApp

from hotline.web.auth import IDLE_TIMEOUT, WebUser
from ivr_flows import store
from ivr_flows.models import CallLog, DialogueState
from kb.db import utcnow
from tickets.models import OutboundCall, OutboundMessage, Ticket

log = logging.getLogger(__name__)

STATE_TTL = int(IDLE_TIMEOUT.total_seconds())
TRANSCRIPT_LIMIT = 200
SMS_LOG_LIMIT = 100
PHONES_LIMIT = 10
LIST_LIMIT = 20
# A lock per browser: two tabs of one session acting at once would each resume the same
# snapshot and the later save would forget the other's step.
LOCK_SECONDS = 60
LOCK_WAIT_SECONDS = 15


class StateUnavailable(RuntimeError):
    """Redis did not answer: the page cannot keep a call between requests."""


class Busy(RuntimeError):
    """Another request of the same browser is still driving the simulator."""


@dataclass
class SimState:
    """One browser's simulator: the call in progress (the engine's snapshot), what was said
    and done, the texts, and the numbers it used (whose outbound texts it shows)."""

    line: str = "hotline"
    caller: str = "+8613800138000"
    language: str = "zh"
    call: dict[str, Any] | None = None
    transcript: list[dict[str, str]] = field(default_factory=list)
    ticket: str = ""
    outbound_call_id: int | None = None
    sms_number: str = "+8613800138000"
    sms_log: list[dict[str, str]] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    since: str = field(default_factory=lambda: utcnow().isoformat())

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> SimState:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
            return cls(**known)
        except (ValueError, TypeError):
            log.warning("simulator state unreadable; starting afresh")
            return cls()

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @property
    def active(self) -> bool:
        return self.call is not None and not self.call.get("ended")

    @property
    def since_moment(self) -> datetime:
        return datetime.fromisoformat(self.since)

    def reset(self) -> None:
        """Forget the call, the transcript and the texts; keep the numbers typed last."""
        fresh = SimState(caller=self.caller, sms_number=self.sms_number)
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def add(self, entry: dict[str, str]) -> None:
        self.transcript.append(entry)
        del self.transcript[:-TRANSCRIPT_LIMIT]

    def add_sms(self, who: str, text: str, ticket: str = "") -> None:
        self.sms_log.append({"who": who, "text": text, "ticket": ticket})
        del self.sms_log[:-SMS_LOG_LIMIT]

    def use_phone(self, phone: str) -> None:
        if phone in self.phones:
            self.phones.remove(phone)
        self.phones.append(phone)
        del self.phones[:-PHONES_LIMIT]


def browser_of(user: WebUser) -> str:
    """Names one web session for good: its row id with its random CSRF token (ids alone may
    come again after rows are deleted), hashed so that Redis holds no token."""
    return hashlib.sha256(f"{user.session_id}:{user.csrf}".encode()).hexdigest()[:32]


def state_key(browser: str) -> str:
    return f"hotline:simulator:{browser}"


def ringing_key(call_id: int) -> str:
    return f"hotline:simulator:answering:{call_id}"


def load(conn: redis.Redis, browser: str) -> SimState:
    try:
        return SimState.from_json(conn.get(state_key(browser)))
    except redis.RedisError as exc:
        raise StateUnavailable(str(exc)) from exc


def save(conn: redis.Redis, browser: str, state: SimState) -> None:
    try:
        conn.set(state_key(browser), state.to_json(), ex=STATE_TTL)
    except redis.RedisError as exc:
        raise StateUnavailable(str(exc)) from exc


@contextmanager
def locked(conn: redis.Redis, browser: str) -> Iterator[None]:
    try:
        lock = conn.lock(
            state_key(browser) + ":lock",
            timeout=LOCK_SECONDS,
            blocking_timeout=LOCK_WAIT_SECONDS,
        )
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise StateUnavailable(str(exc)) from exc
    if not acquired:
        raise Busy()
    try:
        yield
    finally:
        try:
            lock.release()
        except redis.RedisError:
            log.warning("simulator lock already expired", exc_info=True)


def claim_outbound(conn: redis.Redis, call_id: int, browser: str) -> bool:
    """Only one browser answers a ringing call: the first to claim it (its own claim again)."""
    try:
        if conn.set(ringing_key(call_id), browser, nx=True, ex=STATE_TTL):
            return True
        holder = conn.get(ringing_key(call_id))
    except redis.RedisError as exc:
        raise StateUnavailable(str(exc)) from exc
    return _text(holder) == browser


def claimed_elsewhere(conn: redis.Redis, call_ids: Sequence[int], browser: str) -> set[int]:
    if not call_ids:
        return set()
    try:
        holders = conn.mget([ringing_key(i) for i in call_ids])
    except redis.RedisError as exc:
        raise StateUnavailable(str(exc)) from exc
    return {
        call_id
        for call_id, holder in zip(call_ids, holders, strict=True)
        if holder is not None and _text(holder) != browser
    }


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# --- the transport ---------------------------------------------------------------------------


class AppTransport(httpx.BaseTransport):
    """Carries the simulator's requests into this process's ASGI app: the whole app (its
    middleware, the signature check, the handlers), not a function of it, so the requests are
    exactly what Twilio would send to the public URL. Works wherever the app runs (uvicorn, the
    test client), whatever its public URL resolves to.

    Called from a sync handler, which holds one of the web process's few worker threads
    (``HOTLINE_WEB_THREADS``), it runs each request on an event loop of its own, whose webhook
    handlers get threads of their own: on the app's loop they would wait for the very threads
    the simulator's pages hold, forever (with one thread, or as many simulator users as
    threads)."""

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with anyio.from_thread.start_blocking_portal() as portal:
            return portal.call(self._send, request)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._asgi.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )


# --- what the page reads ---------------------------------------------------------------------


def outbound_call_sid(call: OutboundCall) -> str:
    """The CallSid Twilio would have given an offline call: stable for the row, so the status
    callback's log tells whether the call was answered or declined already."""
    seed = f"offline-call:{call.id}:{call.to_number}:{call.url}"
    return "CA" + hashlib.sha256(seed.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WaitingCall:
    call: OutboundCall
    ticket_number: str


def waiting_calls(session: Session) -> list[WaitingCall]:
    """Calls the offline adapter placed that nobody answered or declined yet, newest first."""
    rows = session.exec(
        select(OutboundCall, Ticket.number)
        .join(Ticket, col(Ticket.id) == col(OutboundCall.ticket_id), isouter=True)
        .where(OutboundCall.provider == "offline", OutboundCall.status == "queued")
        .order_by(col(OutboundCall.id).desc())
        .limit(LIST_LIMIT * 3)
    ).all()
    sids = {outbound_call_sid(call): call.id for call, _ in rows}
    heard = set(session.exec(select(CallLog.call_sid).where(col(CallLog.call_sid).in_(sids))).all())
    return [
        WaitingCall(call, number or "")
        for call, number in rows
        if outbound_call_sid(call) not in heard
    ][:LIST_LIMIT]


@dataclass(frozen=True)
class PlacedCall:
    """An outbound call as plain values: read, then the transaction ends before the simulator
    calls the webhooks (on SQLite an open one would hold the lock they need)."""

    id: int
    to_number: str
    from_number: str
    url: str
    waiting: bool
    ticket_number: str
    call_sid: str


def placed_call(session: Session, call_id: int) -> PlacedCall | None:
    found = session.exec(
        select(OutboundCall, Ticket.number)
        .join(Ticket, col(Ticket.id) == col(OutboundCall.ticket_id), isouter=True)
        .where(OutboundCall.id == call_id)
    ).first()
    if found is None:
        return None
    call, number = found
    sid = outbound_call_sid(call)
    heard = session.exec(select(CallLog.id).where(CallLog.call_sid == sid)).first() is not None
    return PlacedCall(
        id=call_id,
        to_number=call.to_number,
        from_number=call.from_number,
        url=call.url,
        waiting=call.provider == "offline" and call.status == "queued" and not heard,
        ticket_number=number or "",
        call_sid=sid,
    )


def texts_to(session: Session, phones: Sequence[str], since: datetime) -> list[OutboundMessage]:
    """What the offline adapter recorded for the simulator's numbers since it started."""
    if not phones:
        return []
    return list(
        session.exec(
            select(OutboundMessage)
            .where(
                col(OutboundMessage.to_number).in_(list(phones)),
                OutboundMessage.provider == "offline",
                col(OutboundMessage.created_at) >= since,
            )
            .order_by(col(OutboundMessage.id).desc())
            .limit(LIST_LIMIT)
        ).all()
    )


def ticket_of_call(session: Session, call_sid: str) -> Ticket | None:
    """The case a call opened, as the dialogue remembers it (or its end was logged with)."""
    ticket_id = session.exec(
        select(DialogueState.ticket_id).where(DialogueState.key == store.call_key(call_sid))
    ).first()
    if ticket_id is None:
        ticket_id = session.exec(
            select(CallLog.ticket_id)
            .where(CallLog.call_sid == call_sid, col(CallLog.ticket_id).is_not(None))
            .order_by(col(CallLog.id).desc())
        ).first()
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def ticket_by_number(session: Session, number: str) -> Ticket | None:
    return session.exec(select(Ticket).where(Ticket.number == number)).first()
