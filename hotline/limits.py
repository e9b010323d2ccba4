"""Limits and failure answers at the edge.

- :class:`BodySizeLimit` refuses a request body over :data:`MAX_BODY_BYTES` with 413, from its
  ``Content-Length`` before reading anything, or while reading a body sent without one. Twilio's
  largest webhook (an SMS of 1,600 characters with ten media URLs) is a few KiB.
- :func:`install_database_error_handlers`: when the database is unreachable or locked, a
  Twilio webhook still answers TwiML with 200 (an apology: Twilio would otherwise play its own
  error to the caller), and everything else answers 503 with a plain message and
  ``Retry-After``, instead of a 500 and a traceback. The pool drops dead connections on the
  error, so the next request after the database is back succeeds without a restart.
- :func:`value_not_storable`: a value the database cannot take (an id past its integer range,
  a NUL character on PostgreSQL) is the client's error: 422, not 500.
- An exception raised after the whole response was sent (e.g. the session's clean-up meeting a
  connection the database dropped) is logged, not re-raised: the client already has its answer.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twilio.twiml.messaging_response import MessagingResponse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_SECONDS = 5
# Webhooks whose caller is a message, not a call: their apology is an SMS (or nothing).
_MESSAGE_HOOKS = ("/twilio/sms",)
_SILENT_HOOKS = ("/twilio/message-status",)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "bad Content-Length\n")
                    return
                if declared > self.max_bytes:
                    await self._refuse(send, 413, self._message())
                    return
        received = 0
        started = finished = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send, 413, self._message())
        except Exception:
            # The client already has its whole answer (e.g. the session's clean-up after the
            # response met a connection the database had dropped): log, do not re-raise into
            # the server, which can no longer answer anything.
            if not finished:
                raise
            log.exception("error after the response to %s was sent", scope.get("path"))

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes\n"

    @staticmethod
    async def _refuse(send: Send, status: int, text: str) -> None:
        body = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _twilio_apology(path: str) -> Response:
    from ivr_flows import calls
    from ivr_flows.texts import text

    if path.startswith(_SILENT_HOOKS):
        body = str(MessagingResponse())
    elif path.startswith(_MESSAGE_HOOKS):
        reply = MessagingResponse()
        reply.message(" ".join(text("sms_texts", "unavailable", lang) for lang in ("zh", "en")))
        body = str(reply)
    else:
        body = calls.apology()
    return Response(content=body, media_type="application/xml")


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.error(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        type(getattr(exc, "orig", None) or exc).__name__,
    )
    if request.url.path.startswith("/twilio/"):
        return _twilio_apology(request.url.path)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def value_not_storable(request: Request, exc: Exception) -> Response:
    """The database refused a value the request carried (an id past the integer range, a NUL
    character in text on PostgreSQL): the client's input, not a server fault. Answered in
    FastAPI's validation-error shape, as the OpenAPI document promises for 422."""
    log.warning(
        "value refused by the database on %s %s: %s",
        request.method,
        request.url.path,
        type(getattr(exc, "orig", None) or exc).__name__,
    )
    if request.url.path.startswith("/twilio/"):
        return _twilio_apology(request.url.path)
    return JSONResponse(
        {
            "detail": [
                {
                    "loc": ["request"],
                    "msg": "a value is out of range or contains characters that cannot be "
                    "stored (such as NUL)",
                    "type": "value_error",
                }
            ]
        },
        status_code=422,
    )


def install_database_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DataError, value_not_storable)
    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)
    app.add_exception_handler(PoolTimeout, database_unavailable)
