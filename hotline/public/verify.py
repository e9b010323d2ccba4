"""Spam resistance for the public forms, without third-party CAPTCHAs:

- a signed, time-stamped form token: a form posted sooner than a person could fill it, or
  hours later, or with a forged token, is refused;
- rate limits per client address and per phone number (Redis counters with a window);
- a one-time SMS code to the phone given: nothing is opened until the code comes back.

Pending requests wait in Redis (they are not cases yet) with their code's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
from sqlmodel import Session

from tickets import telephony
from tickets.repository import ticket_repository

FORM_MIN_SECONDS = 3
FORM_MAX_SECONDS = 2 * 3600
CODE_TTL_SECONDS = 600
CODE_ATTEMPTS = 5
# (limit, window seconds) for code requests.
ADDRESS_LIMIT = (10, 3600)
PHONE_LIMIT = (3, 3600)
PREFIX = "pub:"


class Refused(Exception):
    """The request is refused; ``reason`` is a translation key suffix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _sign(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()[:32]


def form_token(secret: bytes, purpose: str, *, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    return f"{issued}.{_sign(secret, f'{purpose}.{issued}')}"


def check_form_token(secret: bytes, purpose: str, token: str, *, now: float | None = None) -> None:
    issued_text, _, signature = token.partition(".")
    if not issued_text.isdigit() or not hmac.compare_digest(
        signature, _sign(secret, f"{purpose}.{issued_text}")
    ):
        raise Refused("form_invalid")
    age = (now if now is not None else time.time()) - int(issued_text)
    if age < FORM_MIN_SECONDS:
        raise Refused("too_fast")
    if age > FORM_MAX_SECONDS:
        raise Refused("form_expired")


def _within_limit(conn: redis.Redis, key: str, limit: tuple[int, int]) -> bool:
    count, window = limit
    used = int(conn.incr(PREFIX + key))
    if used == 1:
        conn.expire(PREFIX + key, window)
    return used <= count


def check_rate(conn: redis.Redis, address: str, phone: str) -> None:
    if not _within_limit(conn, f"rate:addr:{address}", ADDRESS_LIMIT):
        raise Refused("rate_limited")
    if not _within_limit(conn, f"rate:phone:{phone}", PHONE_LIMIT):
        raise Refused("rate_limited")


@dataclass(frozen=True)
class Pending:
    id: str
    phone: str
    kind: str
    payload: dict[str, Any]


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def start(
    session: Session,
    conn: redis.Redis,
    *,
    phone: str,
    kind: str,
    payload: dict[str, Any],
    language: str,
) -> str:
    """Keep the request pending and text a 6-digit code to ``phone`` (recorded in the caller's
    transaction); returns the pending request's id."""
    code = f"{secrets.randbelow(10**6):06d}"
    pending_id = secrets.token_urlsafe(16)
    record = {"phone": phone, "kind": kind, "payload": payload, "code": _digest(code), "tries": 0}
    conn.set(PREFIX + f"code:{pending_id}", json.dumps(record), ex=CODE_TTL_SECONDS)
    firm = ticket_repository.firm_by_phone(session, phone)
    if language == "en":
        body = f"SME hotline: your confirmation code is {code} (valid 10 minutes)."
    else:
        body = f"【中小企业服务热线】您的验证码是{code}，10分钟内有效。"
    telephony.current().sms_firm(session, firm, to=phone, body=body, purpose="web_code")
    return pending_id


def peek(conn: redis.Redis, pending_id: str) -> Pending | None:
    raw = conn.get(PREFIX + f"code:{pending_id}")
    if raw is None:
        return None
    record = json.loads(raw)
    return Pending(pending_id, record["phone"], record["kind"], record["payload"])


def confirm(conn: redis.Redis, pending_id: str, code: str) -> Pending:
    """The pending request, once, if ``code`` is right; wrong codes count, and after
    :data:`CODE_ATTEMPTS` the request is dropped."""
    key = PREFIX + f"code:{pending_id}"
    raw = conn.get(key)
    if raw is None:
        raise Refused("code_expired")
    record = json.loads(raw)
    if not hmac.compare_digest(record["code"], _digest(code.strip())):
        record["tries"] += 1
        if record["tries"] >= CODE_ATTEMPTS:
            conn.delete(key)
            raise Refused("code_expired")
        ttl = conn.ttl(key)
        conn.set(key, json.dumps(record), ex=max(int(ttl), 1))
        raise Refused("code_wrong")
    # One use: whoever deletes it first acts on it.
    if not conn.delete(key):
        raise Refused("code_expired")
    return Pending(pending_id, record["phone"], record["kind"], record["payload"])
