"""The SMS dialogue: a text in, a ticket opened and routed, a reply out.

A text is handled in two steps, so that a flood of texts (a policy announcement) is taken in as
fast as the database can store rows, and none is lost to Twilio's webhook timeout:

- the webhook stores it with the job that answers it (:func:`accept_text`), in one transaction,
  wakes the workers' outbox relay and answers Twilio with empty TwiML. A repeated delivery of a
  MessageSid stores nothing (the unique key on the message is the claim);
- the job (:func:`answer_text_job`, the outbox task ``sms_answer``, on the ``high`` queue)
  answers the sender's waiting texts in the order they arrived, each in the job's transaction:
  the case, the reply stored on the message, and the reply sent through the telephony port (the
  REST API), which records it as an outbound message. A job delivered twice, or a text already
  answered by the job of a later one, changes nothing.

What a text can be, checked in this order:

- a keyword: ``STOP``/``UNSUBSCRIBE``/``退订``/``TD`` (and Twilio's other opt-out words) opt the
  sender out of every later message; ``START``/``订阅`` opt back in; ``HELP``/``帮助`` gets a
  short guide; ``查询``/``CX``/``STATUS`` + a ticket number gets the ticket's status, only on the
  phone that opened it; ``投诉``/``COMPLAINT`` + text opens a complaint for supervisors;
- the district the hotline asked for in its previous reply (the conversation is kept per
  sender for 30 minutes);
- a need: classified, located, opened (or linked to the same open request) and routed. When
  the district is neither in the text nor in the firm's profile, the case is opened at once
  (nothing is lost if the sender never answers) and the reply asks for the district.

Replies fit three UCS-2 segments. An opted-out sender still gets their case opened, but no
reply: Twilio's own opt-out handling (``OptOutType``) has already answered its keywords.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

import routing
from ivr_flows import store
from ivr_flows.models import DialogueState
from ivr_flows.segments import MAX_REPLY_SEGMENTS, segments
from ivr_flows.texts import text
from kb import subscriptions
from kb.db import execute_alone, utcnow
from kb.repository import catalogue_repository
from tickets import telephony
from tickets.models import (
    Channel,
    Firm,
    InboundMessage,
    OutboxMessage,
    Ticket,
    TicketKind,
    TicketState,
)
from tickets.numbers import find_in_text, normalise
from tickets.phones import mask_phone, normalise_phone
from tickets.repository import ticket_repository
from tickets.service import Actor, JobOutcome, ticket_service

log = logging.getLogger(__name__)

SMS_ACTOR = Actor("system:sms")
MAX_BODY_CHARS = 2000
ANSWER_TASK = "sms_answer"
REPLY_PURPOSE = "sms_reply"
DISTRICT_ATTEMPTS = 2

# Twilio's default opt-out, opt-in and help keywords, and the Chinese carriers' ones.
STOP_WORDS = {
    "STOP": "en",
    "STOPALL": "en",
    "UNSUBSCRIBE": "en",
    "CANCEL": "en",
    "END": "en",
    "QUIT": "en",
    "OPTOUT": "en",
    "退订": "zh",
    "TD": "zh",
    "退订短信": "zh",
}
START_WORDS = {"START": "en", "UNSTOP": "en", "SUBSCRIBE": "en", "订阅": "zh", "恢复订阅": "zh"}
HELP_WORDS = {"HELP": "en", "INFO": "en", "帮助": "zh", "?": "zh", "？": "zh"}
_STATUS = re.compile(r"^(查询|CX|STATUS)(?![A-Z])[\s:：]*(.*)$", re.IGNORECASE | re.DOTALL)
_COMPLAINT = re.compile(r"^(投诉|COMPLAINT|COMPLAIN)(?![A-Z])[\s:：,，]*(.*)$", re.IGNORECASE)
_STATUS_LANGUAGE = {"查询": "zh", "CX": "zh", "STATUS": "en"}


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    from_number: str
    to_number: str
    body: str
    account_sid: str = ""
    num_media: int = 0
    # Set by Twilio when its Advanced Opt-Out handled the text (STOP, START or HELP) and
    # already answered it.
    opt_out_type: str = ""


@dataclass(frozen=True)
class SmsReply:
    body: str
    ticket_number: str | None


@dataclass(frozen=True)
class _Answer:
    reply: str
    ticket: Ticket | None = None
    # The reply confirms an opt-out: the one text an opted-out sender gets.
    confirms_opt_out: bool = False


# psycopg's placeholders: run through the driver (kb.db.execute_alone), as its own transaction.
_ACCEPT_POSTGRESQL = f"""
    WITH stored AS (
        INSERT INTO inbound_message (message_sid, account_sid, from_number, to_number, body,
                                     num_media, opt_out_type, received_at, reply)
        VALUES (%(message_sid)s, %(account_sid)s, %(from_number)s, %(to_number)s, %(body)s,
                %(num_media)s, %(opt_out_type)s, %(now)s, '')
        ON CONFLICT (message_sid) DO NOTHING
        RETURNING id
    ), queued AS (
        INSERT INTO outbox (task, payload, queue, created_at, result)
        SELECT '{ANSWER_TASK}',
               CASE WHEN %(request_id)s::text IS NULL THEN json_build_object('message_id', id)
                    ELSE json_build_object('message_id', id, 'request_id', %(request_id)s::text)
               END,
               'high', %(now)s, ''
        FROM stored
    )
    SELECT id FROM stored
"""


def accept_text(
    session: Session,
    sms: InboundSms,
    *,
    request_id: str | None = None,
    now: datetime | None = None,
) -> int | None:
    """Store a text and the job that answers it, together; return the message's id, or None
    when this MessageSid was stored before (a repeated delivery: nothing is written). The job
    carries ``request_id`` (the webhook's) into its log lines, like every outbox job.

    Every text of a flood comes through here, so it is written for its cost: on PostgreSQL one
    statement run through the driver as its own transaction (the session is not used); on
    SQLite two statements in the session's transaction, which the caller commits. The job is
    not relayed by the web process: the caller wakes the workers' relay
    (:func:`tickets.outbox.wake_relay`)."""
    values: dict[str, Any] = {
        "message_sid": sms.message_sid,
        "account_sid": sms.account_sid,
        "from_number": sms.from_number,
        "to_number": sms.to_number,
        # NUL cannot be stored in PostgreSQL text and never carries meaning in an SMS.
        "body": sms.body.replace("\x00", "")[:MAX_BODY_CHARS],
        "num_media": sms.num_media,
        "opt_out_type": sms.opt_out_type,
    }
    moment = now or utcnow()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        row = execute_alone(
            bind.engine, _ACCEPT_POSTGRESQL, {**values, "now": moment, "request_id": request_id}
        )
        return None if row is None else int(row["id"])
    messages = cast(Table, InboundMessage.__table__)  # type: ignore[attr-defined]
    connection = session.connection()
    stored = connection.execute(
        sqlite_insert(messages)
        .values(**values, received_at=moment, reply="")
        .on_conflict_do_nothing(index_elements=["message_sid"])
        .returning(messages.c.id)
    ).first()
    if stored is None:
        return None
    connection.execute(
        insert(cast(Table, OutboxMessage.__table__)).values(  # type: ignore[attr-defined]
            task=ANSWER_TASK,
            payload={"message_id": stored.id} | ({"request_id": request_id} if request_id else {}),
            queue="high",
            created_at=moment,
            result="",
        )
    )
    return int(stored.id)


def reply_to(session: Session, message_sid: str) -> str | None:
    """The reply a stored text got ("" when none was sent), once its job has answered it;
    None before (or for a MessageSid never stored)."""
    message = ticket_repository.inbound_message(session, message_sid)
    if message is None or message.answered_at is None:
        return None
    return message.reply


def answer_text_job(session: Session, payload: dict[str, Any], now: datetime) -> JobOutcome:
    """The outbox task ``sms_answer``: answer the text, after the same sender's earlier texts
    that still wait (their own jobs then find them answered). Runs in the job's transaction.

    The sender's waiting texts are locked in order, so two jobs for one sender take turns: the
    second waits for the first's commit, then finds what it answered (PostgreSQL re-reads a
    locked row before handing it over)."""
    message_id = int(payload["message_id"])
    sender = (
        select(InboundMessage.from_number).where(InboundMessage.id == message_id).scalar_subquery()
    )
    waiting = session.exec(
        select(InboundMessage)
        .where(
            InboundMessage.from_number == sender,
            col(InboundMessage.answered_at).is_(None),
            col(InboundMessage.id) <= message_id,
        )
        .order_by(col(InboundMessage.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    if not waiting or waiting[-1].id != message_id:
        # Answered before (by its own job delivered twice, or a later text's job), or gone.
        gone = session.get(InboundMessage, message_id) is None
        return JobOutcome("obsolete: no such message" if gone else "already answered")
    *earlier, own = waiting
    for text_message in earlier:
        # An earlier text that cannot be answered (its own job fails too, and stays in RQ's
        # failed registry for someone to look at) must not hold up every later one.
        try:
            with session.begin_nested():
                answer_text(session, text_message, now=now)
        except SQLAlchemyError:
            log.exception(
                "sms %s could not be answered; answering the later text %s",
                text_message.message_sid,
                own.message_sid,
            )
    reply = answer_text(session, own, now=now)
    return JobOutcome("answered", {"texts": len(waiting), "ticket": reply.ticket_number})


def answer_text(session: Session, message: InboundMessage, *, now: datetime) -> SmsReply:
    """Answer one stored text: act on it, store the reply on it and send the reply (a sender
    who opted out gets none, but for the confirmation of their STOP)."""
    answer = _answer(session, message, now)
    ticket = answer.ticket
    message.reply = answer.reply
    message.ticket_id = ticket.id if ticket else None
    message.answered_at = now
    session.add(message)
    if answer.reply:
        telephony.current().sms_firm(
            session,
            ticket_repository.firm_by_phone(
                session, normalise_phone(message.from_number) or message.from_number
            ),
            to=message.from_number,
            body=answer.reply,
            purpose=REPLY_PURPOSE,
            ticket_id=ticket.id if ticket else None,
            despite_opt_out=answer.confirms_opt_out,
            from_number=message.to_number or None,
        )
    session.flush()
    log.info(
        "sms %s from %s -> case %s",
        message.message_sid,
        mask_phone(message.from_number),
        ticket.number if ticket else "-",
    )
    return SmsReply(body=answer.reply, ticket_number=ticket.number if ticket else None)


def _keyword(body: str) -> str:
    """The text as a keyword: full-width folded, punctuation and spaces dropped, upper case."""
    folded = unicodedata.normalize("NFKC", body).strip().upper()
    return re.sub(r"[\s.!。！,，]+", "", folded)


def _answer(session: Session, message: InboundMessage, now: datetime) -> _Answer:
    body = message.body
    phone = normalise_phone(message.from_number) or message.from_number
    # Looked up once here; the paths below that need a firm where none was found make it.
    firm = ticket_repository.firm_by_phone(session, phone)
    word = _keyword(body)

    if word in STOP_WORDS:
        firm = firm or ticket_service.create_firm(session, phone, language=STOP_WORDS[word])
        _set_opt_out(session, firm, True)
        store.end_state(session, store.sms_key(phone))
        reply = "" if message.opt_out_type else text("sms_texts", "opted_out", STOP_WORDS[word])
        return _Answer(reply, confirms_opt_out=True)
    if word in START_WORDS:
        firm = firm or ticket_service.create_firm(session, phone, language=START_WORDS[word])
        _set_opt_out(session, firm, False)
        reply = "" if message.opt_out_type else text("sms_texts", "opted_in", START_WORDS[word])
        return _Answer(reply)
    if word in HELP_WORDS:
        return _Answer("" if message.opt_out_type else text("sms_texts", "help", HELP_WORDS[word]))

    opted_out = firm is not None and firm.sms_opted_out
    # 订阅 融资 / SUB financing, 退订 融资 / UNSUB financing: targeted information by category.
    subscription_reply = subscriptions.handle_sms(session, phone, body)
    if subscription_reply is not None:
        return _Answer("" if opted_out else subscription_reply)
    answer = _request(session, phone, body, now, firm)
    # The case is kept; only the reply is withheld from a sender who opted out.
    return _Answer("", answer.ticket) if opted_out else answer


def _set_opt_out(session: Session, firm: Firm, opted_out: bool) -> None:
    firm.sms_opted_out = opted_out
    session.add(firm)
    session.flush()


def _request(session: Session, phone: str, body: str, now: datetime, firm: Firm | None) -> _Answer:
    status = _STATUS.match(body.strip())
    if status:
        language = _STATUS_LANGUAGE.get(status.group(1).upper(), "zh")
        return _status(session, phone, status.group(2), language)
    complaint = _COMPLAINT.match(body.strip())
    if complaint:
        return _need(session, phone, body, now, firm, force_complaint=True)
    if not body.strip():
        return _Answer(text("sms_texts", "empty", routing.classify(body).language))

    # A text dialogue is only ever started for a sender already on file (_await_district runs
    # after the firm is made, and firms are kept): a sender who is not has none to continue.
    state = store.load_state(session, store.sms_key(phone), now=now) if firm else None
    if state is not None and state.data.get("awaiting") == "district":
        answered = _district_answer(session, state, firm, body, now)
        if answered is not None:
            return answered
    return _need(session, phone, body, now, firm)


def _status(session: Session, phone: str, rest: str, language: str) -> _Answer:
    number = (find_in_text(rest) or normalise(rest)) if rest.strip() else None
    ticket: Ticket | None
    if number:
        ticket = ticket_repository.by_number(session, number)
    elif not rest.strip():
        # "查询" alone: the sender's latest case.
        ticket = session.exec(
            select(Ticket)
            .where(Ticket.caller_phone == phone)
            .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
        ).first()
    else:
        ticket = None
    if ticket is None or ticket.caller_phone != phone:
        # The same answer for "no such ticket" and "not yours": numbers cannot be probed.
        return _Answer(text("sms_texts", "status_unknown", language))
    institution = (
        catalogue_repository.institution(session, ticket.institution_id)
        if ticket.institution_id
        else None
    )
    served = ""
    if institution is not None and ticket.state not in (TicketState.new, TicketState.cancelled):
        served = text(
            "sms_texts",
            "status_institution",
            language,
            institution_name=institution.name_zh if language == "zh" else institution.name_en,
            phone=institution.phone,
        )
    reply = text(
        "sms_texts",
        "status",
        language,
        number=ticket.number,
        state=text("sms_texts", f"state_{ticket.state.value}", language),
        institution=served,
    )
    if segments(reply) > MAX_REPLY_SEGMENTS:
        reply = text(
            "sms_texts",
            "status",
            language,
            number=ticket.number,
            state=text("sms_texts", f"state_{ticket.state.value}", language),
            institution="",
        )
    return _Answer(reply, ticket)


def _need(
    session: Session,
    phone: str,
    body: str,
    now: datetime,
    firm: Firm | None,
    *,
    force_complaint: bool = False,
) -> _Answer:
    classification = routing.classify(body)
    language = classification.language
    place = routing.locate(body)
    firm_is_new = firm is None
    if firm is None:
        # _answer looked the sender up in this transaction and found none: made here, with
        # the district the text names (no second lookup, no later update).
        firm = ticket_service.create_firm(
            session, phone, language=language, district_code=place.district_code if place else None
        )
    elif place is not None:
        firm.district_code = place.district_code
        session.add(firm)
    district_code = firm.district_code
    cluster_code = place.code if place and place.kind == "cluster" else None

    complaint = force_complaint or classification.complaint
    kind = TicketKind.complaint if complaint else TicketKind.service
    decision = None
    if not complaint and classification.category is not None and district_code is not None:
        # Routed before the ticket is opened: opening it takes the day's ticket-number lock,
        # held until commit, and every text opening a ticket waits for it. What routing reads
        # (the catalogue, the institutions' load) does not depend on this ticket.
        decision = routing.match(
            session, category=classification.category, place=district_code, cluster=cluster_code
        )
    # A repeat of the firm's open request is added to it, not opened as a duplicate.
    intake = ticket_service.intake(
        session,
        actor=SMS_ACTOR,
        channel=Channel.sms,
        caller_phone=phone,
        summary=body,
        language=language,
        kind=kind,
        category=None if complaint else classification.category,
        district_code=district_code,
        cluster_code=cluster_code,
        classification=classification.to_dict(),
        firm=firm,
        firm_is_new=firm_is_new,
        now=now,
    )
    ticket = intake.ticket
    if intake.follow_up:
        return _Answer(text("sms_texts", "follow_up", language, number=ticket.number), ticket)
    if kind == TicketKind.complaint:
        return _Answer(text("sms_texts", "complaint", language, number=ticket.number), ticket)
    if classification.category is None:
        reply = text("sms_texts", "unclassified", language, number=ticket.number)
        return _Answer(reply, ticket)
    if district_code is None:
        _await_district(session, phone, ticket, language, now)
        category = catalogue_repository.category(session, classification.category)
        assert category is not None
        reply = text(
            "sms_texts",
            "ask_district",
            language,
            number=ticket.number,
            category=category.name_zh if language == "zh" else category.name_en.lower(),
        )
        return _Answer(reply, ticket)
    return _Answer(_dispatch(session, ticket, language, now, decision), ticket)


def _await_district(
    session: Session, phone: str, ticket: Ticket, language: str, now: datetime
) -> None:
    key = store.sms_key(phone)
    state = store.load_state(session, key, now=now) or store.create_state(
        session, key, flow="sms", phone=phone, language=language, ttl=store.SMS_TTL, now=now
    )
    store.save_state(
        session,
        state,
        data={"awaiting": "district", "ticket_id": ticket.id, "attempts": 0},
        language=language,
        ttl=store.SMS_TTL,
        now=now,
    )


def _district_answer(
    session: Session, state: DialogueState, firm: Firm | None, body: str, now: datetime
) -> _Answer | None:
    """The reply to "which district?"; None when the text is a new need instead."""
    ticket = ticket_repository.by_id(session, int(state.data.get("ticket_id") or 0))
    if ticket is None or ticket.state != TicketState.new:
        store.end_state(session, state.key)
        return None
    category = routing.classify(body).category
    if category is not None and category != ticket.category:
        # Another need, not the answer: it is handled as such; the first case stays open
        # (new) for an agent to route.
        store.end_state(session, state.key)
        return None
    place = routing.locate(body)
    attempts = int(state.data.get("attempts") or 0) + 1
    if place is None:
        if attempts < DISTRICT_ATTEMPTS:
            store.save_state(
                session,
                state,
                data={**state.data, "attempts": attempts},
                ttl=store.SMS_TTL,
                now=now,
            )
            return _Answer(text("sms_texts", "ask_district_again", ticket.language), ticket)
    store.end_state(session, state.key)
    if place is not None:
        ticket.district_code = place.district_code
        ticket.cluster_code = place.code if place.kind == "cluster" else None
        session.add(ticket)
        if firm is not None:
            firm.district_code = place.district_code
            session.add(firm)
        session.flush()
    # Asked twice without an answer: the municipal platform takes it rather than nobody.
    return _Answer(_dispatch(session, ticket, ticket.language, now), ticket)


def _dispatch(
    session: Session,
    ticket: Ticket,
    language: str,
    now: datetime,
    decision: routing.RoutingDecision | None = None,
) -> str:
    assert ticket.category is not None
    # No live contact by text, so no restriction to who is open now: the nearest qualified
    # institution serves it in its hours.
    decision = decision or routing.match(
        session, category=ticket.category, place=ticket.district_code, cluster=ticket.cluster_code
    )
    # Read before the dispatch, whose last statement locks the institution's row until the
    # commit (see TicketService._after_handover): the next text for it waits less.
    contact = catalogue_repository.service_contact(
        session, decision.institution_id, ticket.category
    )
    assert contact is not None and contact.category_zh is not None
    ticket_service.dispatch(session, ticket, actor=SMS_ACTOR, decision=decision, now=now)
    zh = language == "zh"
    return _fit(
        language,
        number=ticket.number,
        category=contact.category_zh if zh else (contact.category_en or "").lower(),
        institution=contact.institution_zh if zh else contact.institution_en,
        phone=contact.phone,
        hours=contact.hours_zh if zh else contact.hours_en,
    )


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
