"""The SMS dialogue: a text in, a ticket opened and routed, a reply out.

The webhook is thin; everything a text does happens here, over one database session that the
caller commits. Deliveries are idempotent on Twilio's MessageSid: the stored reply is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

import routing
from ivr_flows.segments import MAX_REPLY_SEGMENTS, segments
from ivr_flows.texts import text
from kb.repository import catalogue_repository
from tickets.models import Channel, InboundMessage, TicketKind
from tickets.phones import normalise_phone
from tickets.repository import ticket_repository
from tickets.service import Actor, ticket_service

SMS_ACTOR = Actor("system:sms")
MAX_BODY_CHARS = 2000


class DuplicateDelivery(Exception):
    """Another delivery of the same MessageSid got there first; re-read its reply."""


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    from_number: str
    to_number: str
    body: str
    account_sid: str = ""
    num_media: int = 0


@dataclass(frozen=True)
class SmsReply:
    body: str
    ticket_number: str | None
    repeated: bool


def stored_reply(session: Session, message_sid: str) -> SmsReply | None:
    message = ticket_repository.inbound_message(session, message_sid)
    if message is None:
        return None
    number = None
    if message.ticket_id is not None:
        ticket = ticket_repository.by_id(session, message.ticket_id)
        number = ticket.number if ticket else None
    return SmsReply(body=message.reply, ticket_number=number, repeated=True)


def handle_inbound_sms(session: Session, sms: InboundSms) -> SmsReply:
    previous = stored_reply(session, sms.message_sid)
    if previous is not None:
        return previous
    body = sms.body[:MAX_BODY_CHARS]
    message = InboundMessage(
        message_sid=sms.message_sid,
        account_sid=sms.account_sid,
        from_number=sms.from_number,
        to_number=sms.to_number,
        body=body,
        num_media=sms.num_media,
    )
    session.add(message)
    try:
        session.flush()
    except IntegrityError as exc:
        raise DuplicateDelivery(sms.message_sid) from exc

    reply, ticket_id, number = _answer(session, sms.from_number, body)
    message.reply = reply
    message.ticket_id = ticket_id
    session.add(message)
    session.flush()
    return SmsReply(body=reply, ticket_number=number, repeated=False)


def _answer(session: Session, sender: str, body: str) -> tuple[str, int | None, str | None]:
    classification = routing.classify(body)
    language = classification.language
    if not body.strip():
        return text("sms_texts", "empty", language), None, None

    phone = normalise_phone(sender) or sender
    firm = ticket_service.find_or_create_firm(session, phone, language=language)
    place = routing.locate(body)
    district_code = place.district_code if place else firm.district_code
    cluster_code = place.code if place and place.kind == "cluster" else None
    if place is not None:
        firm.district_code = place.district_code
        session.add(firm)

    kind = TicketKind.complaint if classification.complaint else TicketKind.service
    ticket = ticket_service.open_ticket(
        session,
        actor=SMS_ACTOR,
        channel=Channel.sms,
        caller_phone=phone,
        summary=body,
        language=language,
        kind=kind,
        category=classification.category,
        district_code=district_code,
        cluster_code=cluster_code,
        classification=classification.to_dict(),
        firm=firm,
    )
    if kind == TicketKind.complaint:
        return (
            text("sms_texts", "complaint", language, number=ticket.number),
            ticket.id,
            ticket.number,
        )
    if classification.category is None:
        reply = text("sms_texts", "unclassified", language, number=ticket.number)
        return reply, ticket.id, ticket.number

    decision = routing.match(
        session, category=classification.category, place=district_code, cluster=cluster_code
    )
    ticket_service.dispatch(session, ticket, actor=SMS_ACTOR, decision=decision)
    institution = catalogue_repository.institution(session, decision.institution_id)
    category = catalogue_repository.category(session, classification.category)
    assert institution is not None and category is not None
    reply = _fit(
        language,
        number=ticket.number,
        category=category.name_zh if language == "zh" else category.name_en.lower(),
        institution=institution.name_zh if language == "zh" else institution.name_en,
        phone=institution.phone,
        hours=institution.hours_zh if language == "zh" else institution.hours_en,
    )
    return reply, ticket.id, ticket.number


def _fit(language: str, **values: str) -> str:
    """The dispatched reply within three segments: shorten the hours, then the name."""
    reply = text("sms_texts", "dispatched", language, **values)
    if segments(reply) <= MAX_REPLY_SEGMENTS:
        return reply
    values["hours"] = values["hours"].split(";")[0].split("；")[0]
    reply = text("sms_texts", "dispatched", language, **values)
    name = values["institution"]
    while segments(reply) > MAX_REPLY_SEGMENTS and len(name) > 4:
        name = name[:-2]
        values["institution"] = name + "…"
        reply = text("sms_texts", "dispatched", language, **values)
    return reply
