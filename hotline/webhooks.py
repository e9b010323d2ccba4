"""Twilio webhooks. Thin: verify, parse, call the flow, commit, answer TwiML."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.messaging_response import MessagingResponse

from hotline.deps import SessionDep, TwilioForm
from ivr_flows.sms import DuplicateDelivery, InboundSms, handle_inbound_sms, stored_reply
from ivr_flows.texts import text

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

TWIML = "application/xml"


def _twiml_message(body: str) -> Response:
    response = MessagingResponse()
    if body:
        response.message(body)
    return Response(content=str(response), media_type=TWIML)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@router.post("/sms", response_class=Response, summary="Inbound SMS (Twilio Messaging webhook)")
def inbound_sms(form: TwilioForm, session: SessionDep) -> Response:
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid or not form.get("From"):
        return Response(
            content="missing MessageSid or From", status_code=400, media_type="text/plain"
        )
    sms = InboundSms(
        message_sid=sid,
        from_number=form["From"],
        to_number=form.get("To", ""),
        body=form.get("Body", ""),
        account_sid=form.get("AccountSid", ""),
        num_media=_int(form.get("NumMedia")),
        opt_out_type=form.get("OptOutType", ""),
    )
    try:
        reply = handle_inbound_sms(session, sms)
        session.commit()
    except DuplicateDelivery:
        session.rollback()
        found = stored_reply(session, sid)
        return _twiml_message(found.body if found else "")
    except SQLAlchemyError:
        session.rollback()
        log.exception("inbound SMS %s could not be stored", sid)
        apology = " ".join(text("sms_texts", "unavailable", lang) for lang in ("zh", "en"))
        return _twiml_message(apology)
    return _twiml_message(reply.body)
