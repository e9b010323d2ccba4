"""Structured logs: one JSON object per line, with the request id, phones and bodies masked and
secrets never written.

:func:`configure_logging` is called at start-up by the app factory and by ``hotline worker``
(``hotline serve`` starts both). It installs one handler on the root logger (replacing the one it
installed before, leaving any other handler alone) and routes uvicorn's loggers through it.

The request id lives in a context variable: the web middleware sets it from ``X-Request-ID`` (or
makes one), outbox rows written during the request carry it in their payload
(``request_id``), and a job that loads its outbox row sets it again in the worker, so one id
follows a call from the webhook to the jobs it caused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit
from weakref import WeakSet

from sqlalchemy import event
from sqlmodel import Session

from tickets.models import OutboxMessage

request_id_var: ContextVar[str | None] = ContextVar("hotline_request_id", default=None)
# The request id of the RQ job running in this process: (job id, request id). Kept beside the
# job rather than in the context variable, so it ends with the job even in a worker that runs
# jobs in its own process (no fork) or in a test.
_job_request_id: tuple[str, str] | None = None


def _current_job_id() -> str | None:
    rq = sys.modules.get("rq")
    if rq is None:
        return None
    job = rq.get_current_job()
    return None if job is None else str(job.id)


def adopt_for_current_job(request_id: str) -> None:
    """Called in a job: its log lines carry ``request_id`` until the job ends."""
    global _job_request_id
    job_id = _current_job_id()
    if job_id is not None:
        _job_request_id = (job_id, request_id)


def current_request_id() -> str | None:
    """The request being served, or the request that caused the job being run."""
    found = request_id_var.get()
    if found is None and _job_request_id is not None:
        if _current_job_id() == _job_request_id[0]:
            return _job_request_id[1]
    return found


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# Fields whose value is what a caller said or wrote: never logged, whatever the logger.
BODY_FIELDS = frozenset(
    {"body", "Body", "text", "SpeechResult", "UnstableSpeechResult", "message_body", "speech"}
)
SECRET_FIELDS = re.compile(r"(token|secret|password|passwd|api_?key|authorization)", re.I)

# E.164 (+ and 8 to 15 digits) and Chinese mobiles (11 digits from 13x..19x), not inside a
# longer run of digits; the last four digits stay, enough to tell two callers apart.
_PHONE = re.compile(r"(?<![\w+])(\+\d{4,11}|(?<!\d)1[3-9]\d{5})(\d{4})(?!\d)")
_INLINE_SECRET = re.compile(
    r"(?i)\b(bearer\s+|(?:auth_?token|api_?key|password|passwd|secret|token)[\"']?\s*[=:]\s*[\"']?)"
    r"[^\s\"'&,;]+"
)
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: m.group(1)[:4] + "****" + m.group(2), text)


class Redactor:
    """Masks phone numbers, inline credentials and the configured secrets in a string."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        # Very short values would mask ordinary words; a real secret is longer.
        self.secrets.update(s for s in secrets if s and len(s) >= 6)
        # The longest first: a secret containing another is masked whole.
        self._longest_first = sorted(self.secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, "[secret]")
        if "://" in text:
            # Only a URL carries a password this way; the pattern costs more than the rest of
            # the line's redaction when run on every line.
            text = _URL_PASSWORD.sub(r"\1***@", text)
        text = _INLINE_SECRET.sub(lambda m: m.group(1) + "[secret]", text)
        return mask_phones(text)

    def value(self, key: str, value: Any) -> Any:
        if key in BODY_FIELDS:
            return "[masked]"
        if SECRET_FIELDS.search(key):
            return "[secret]"
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {str(k): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(message),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = self.redactor.value(key, value)
        if record.exc_info:
            entry["exception"] = self.redactor(
                "".join(traceback.format_exception(*record.exc_info))
            )
        elif record.exc_text:
            entry["exception"] = self.redactor(record.exc_text)
        if record.stack_info:
            entry["stack"] = self.redactor(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _HotlineHandler(logging.StreamHandler[IO[str]]):
    """Marks the handler this module installed, so a second configuration replaces it. Without
    an explicit stream it writes to whatever ``sys.stderr`` is at the time (test runners swap
    it).

    With ``flush_seconds`` > 0, lines below WARNING are kept and written together at most that
    often (by a daemon thread), when 64 KiB are waiting, before a fork, and at exit; a WARNING
    or worse is written at once, after the lines waiting before it. Why: a handler's write is
    a system call that gives up the interpreter lock, and in a web process busy on both cores
    taking it back costs far more than the line: one INFO line per voice step cost 0.12 ms of
    CPU per request written at once, 0.04 ms batched (session 10, bench_webhooks). What a
    killed process (SIGKILL) had not written yet, at most ``flush_seconds`` of INFO lines, is
    lost."""

    def __init__(self, stream: IO[str] | None = None, flush_seconds: float = 0.0) -> None:
        super().__init__(stream or sys.stderr)
        self._follow_stderr = stream is None
        self.flush_seconds = flush_seconds
        self._waiting: list[str] = []
        self._waiting_chars = 0
        self._flusher: threading.Thread | None = None
        self._stopping = threading.Event()
        if flush_seconds > 0:
            _BATCHING.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle with self.lock held.
        if self.flush_seconds <= 0:
            if self._follow_stderr:
                self.stream = sys.stderr
            super().emit(record)
            return
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - as StreamHandler: report, never raise into the caller
            self.handleError(record)
            return
        self._waiting.append(line)
        self._waiting_chars += len(line)
        if record.levelno >= logging.WARNING or self._waiting_chars >= BATCH_CHARS:
            self._write_waiting()
        elif self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        # Every write is flushed where it is made (_write_waiting, StreamHandler.emit).
        self.acquire()
        try:
            self._write_waiting()
        finally:
            self.release()

    def close(self) -> None:
        self._stopping.set()
        self.flush()
        _BATCHING.discard(self)
        super().close()

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        text = "\n".join(self._waiting) + "\n"
        self._waiting.clear()
        self._waiting_chars = 0
        if self._follow_stderr:
            self.stream = sys.stderr
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a closed or full stream must not break the caller
            traceback.print_exc(file=sys.__stderr__)

    def _start_flusher(self) -> None:
        self._flusher = threading.Thread(
            target=self._flush_every, name="hotline-log-flusher", daemon=True
        )
        self._flusher.start()

    def _flush_every(self) -> None:
        while not self._stopping.wait(self.flush_seconds):
            self.flush()

    def _after_fork_in_child(self) -> None:
        # The parent wrote what was waiting just before the fork (see below); the flusher
        # thread did not come along, the next line starts another.
        self._waiting.clear()
        self._waiting_chars = 0
        self._flusher = None


# A batch is written once this much waits, whatever the time.
BATCH_CHARS = 64 * 1024
_BATCHING: WeakSet[_HotlineHandler] = WeakSet()


def _flush_before_fork() -> None:
    for handler in list(_BATCHING):
        handler.flush()


def _reset_after_fork() -> None:
    for handler in list(_BATCHING):
        handler._after_fork_in_child()


# The RQ worker's scheduler forks: without this, a child would write its parent's waiting
# lines a second time.
os.register_at_fork(before=_flush_before_fork, after_in_child=_reset_after_fork)


def secrets_of(settings: Any) -> list[str]:
    """The values that must never appear in a log line: Twilio's token, the metrics token, the
    database and Redis passwords."""
    found: list[str] = []
    for name in ("twilio_auth_token", "metrics_token"):
        value = getattr(settings, name, None)
        if isinstance(value, str):
            found.append(value)
    try:
        found.append(settings.auth_token)
    except Exception:  # noqa: BLE001 - no token readable: nothing to hide
        pass
    for name in ("database_url", "redis_url"):
        url = getattr(settings, name, None)
        if isinstance(url, str) and "@" in url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


def configure_logging(
    level: str | int = "INFO",
    *,
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
    flush_seconds: float = 0.0,
) -> logging.Handler:
    """Install the JSON handler on the root logger (once; a second call replaces it, writing
    what the first still held). ``flush_seconds``: see :class:`_HotlineHandler`."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _HotlineHandler):
            root.removeHandler(existing)
            existing.close()
    handler = _HotlineHandler(stream, flush_seconds)
    handler.setFormatter(JsonFormatter(Redactor(secrets)))
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq.worker", "rq"):
        logger = logging.getLogger(name)
        if name == "uvicorn.access" and access_log_disabled(logger):
            continue
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True
        # The hotline's level governs them too (uvicorn sets its own loggers to INFO).
        logger.setLevel(logging.NOTSET)
    return handler


def access_log_disabled(logger: logging.Logger) -> bool:
    """uvicorn's ``--no-access-log`` leaves its access logger without handlers and cut off
    from the root: routing it through the JSON handler would bring back a line per request
    that the operator turned off (and its cost: a tenth of a trivial request's CPU)."""
    return not logger.handlers and not logger.propagate


def configure_from_settings(settings: Any) -> logging.Handler:
    return configure_logging(
        getattr(settings, "log_level", "INFO"),
        secrets=secrets_of(settings),
        flush_seconds=getattr(settings, "log_flush_seconds", 0.0),
    )


# --- the request id through the outbox (registered on import: web app and worker alike) ---


@event.listens_for(Session, "before_flush")
def _stamp_outbox_rows(session: Session, _context: Any, _instances: Any) -> None:
    """Outbox rows written while serving a request carry its id to the jobs they become."""
    request_id = current_request_id()
    if request_id is None:
        return
    for obj in session.new:
        if isinstance(obj, OutboxMessage) and "request_id" not in (obj.payload or {}):
            obj.payload = {**(obj.payload or {}), "request_id": request_id}


@event.listens_for(OutboxMessage, "load")
def _adopt_request_id(target: OutboxMessage, _context: Any) -> None:
    """In an RQ job, the outbox row it runs gives the job's log lines their request id."""
    request_id = (target.payload or {}).get("request_id")
    if request_id and request_id_var.get() is None:
        adopt_for_current_job(str(request_id))
