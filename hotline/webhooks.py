"""Twilio webhooks. Thin: verify, parse, call the flow, commit, answer TwiML."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session
from twilio.twiml.messaging_response import MessagingResponse

from hotline.deps import TwilioForm
from hotline.logging_setup import current_request_id
from ivr_flows.sms import InboundSms, accept_text
from ivr_flows.texts import text
from kb.db import get_engine
from tickets import outbox
from tickets.models import Firm, InboundMessage
from tickets.phones import normalise_phone

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

TWIML = "application/xml"
_MESSAGES = InboundMessage.__table__.c  # type: ignore[attr-defined]
# The form fields stored as they come, and the most of each the table holds (Twilio's own
# values are far shorter: a longer one is not from Twilio).
_STORED_FIELDS = {
    "MessageSid": _MESSAGES.message_sid.type.length,
    "AccountSid": _MESSAGES.account_sid.type.length,
    "From": _MESSAGES.from_number.type.length,
    "To": _MESSAGES.to_number.type.length,
    "OptOutType": _MESSAGES.opt_out_type.type.length,
}
_FIRM_PHONE_LENGTH = Firm.__table__.c.phone.type.length  # type: ignore[attr-defined]
# What every text taken in gets back: built once, not per request.
_TAKEN = str(MessagingResponse())


def sms_unavailable() -> Response:
    """The reply to a text the hotline could not take (its database away), in both languages:
    this webhook's, and the fallback URL's when Twilio gave up on it."""
    response = MessagingResponse()
    response.message(" ".join(text("sms_texts", "unavailable", lang) for lang in ("zh", "en")))
    return Response(content=str(response), media_type=TWIML)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _bad_request(reason: str) -> Response:
    return Response(content=reason, status_code=400, media_type="text/plain")


@router.post("/sms", response_class=Response, summary="Inbound SMS (Twilio Messaging webhook)")
def inbound_sms(request: Request, form: TwilioForm) -> Response:
    """Store the text and the job that answers it, and answer Twilio at once with empty TwiML:
    the reply is sent by a worker through the REST API (see ivr_flows.sms)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or not form.get("From"):
        return _bad_request("missing MessageSid or From")
    for field, limit in _STORED_FIELDS.items():
        value = sid if field == "MessageSid" else form.get(field, "")
        if len(value) > limit:
            return _bad_request(f"{field} longer than {limit} characters")
        if "\x00" in value:
            # PostgreSQL cannot store it; no Twilio value has one.
            return _bad_request(f"{field} contains a NUL character")
    # The sender is filed as a firm's phone (as normalised, or as it came): a From that cannot
    # be would fail the text's job every time, and hold up the sender's later texts behind it.
    sender = normalise_phone(form["From"]) or form["From"]
    if len(sender) > _FIRM_PHONE_LENGTH:
        return _bad_request(f"From is not a phone number (longer than {_FIRM_PHONE_LENGTH})")
    sms = InboundSms(
        message_sid=sid,
        from_number=form["From"],
        to_number=form.get("To", ""),
        body=form.get("Body", ""),
        account_sid=form.get("AccountSid", ""),
        num_media=_int(form.get("NumMedia")),
        opt_out_type=form.get("OptOutType", ""),
    )
    # Its own session rather than SessionDep: on PostgreSQL accept_text does not use it, and
    # FastAPI's handling of a generator dependency costs more than the session.
    with Session(get_engine()) as session:
        try:
            stored = accept_text(session, sms, request_id=current_request_id())
            session.commit()
        except Exception:
            session.rollback()
            log.exception("inbound SMS %s could not be stored", sid)
            return sms_unavailable()
    if stored is not None:
        outbox.wake_relay(request.app.state.redis)
    return Response(content=_TAKEN, media_type=TWIML)
