"""The revisit call's actions (flow_revisit.yaml), recorded through tickets' revisit functions."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlmodel import Session

from ivr_flows import casework
from ivr_flows.engine import Input, Registry, Turn
from ivr_flows.speech import small_number, spell_ticket
from kb.repository import catalogue_repository
from tickets.errors import TicketError
from tickets.models import Ticket
from tickets.numbers import normalise
from tickets.repository import ticket_repository
from tickets.service import ticket_service

log = logging.getLogger(__name__)

NEED_MET_KEYS = {"1": "met", "2": "partly", "3": "not_met"}
# Chinese phrases as substrings, longest meaning first: "没有解决" must not be read as "解决",
# nor "不满足" as "满足". English by whole words.
NEED_MET_ZH = (
    ("部分", "partly"),
    ("没有解决", "not_met"),
    ("没解决", "not_met"),
    ("未解决", "not_met"),
    ("不满足", "not_met"),
    ("没满足", "not_met"),
    ("没有", "not_met"),
    ("解决", "met"),
    ("满足", "met"),
    ("是的", "met"),
)
NEED_MET_EN = {
    "partly": "partly",
    "partially": "partly",
    "some": "partly",
    "no": "not_met",
    "not": "not_met",
    "yes": "met",
    "yeah": "met",
}


def ticket_of(session: Session, number: str | None) -> Ticket | None:
    canonical = normalise(number or "")
    return ticket_repository.by_number(session, canonical) if canonical else None


def answered(turn: Turn, reply: Input) -> str:
    ticket = ticket_of(turn.session, turn.query.get("ticket"))
    if ticket is None or ticket.id is None:
        return "unknown"
    turn.language = ticket.language if ticket.language in ("zh", "en") else "zh"
    turn.data["revisit_ticket_id"] = ticket.id
    turn.vars["ticket_number"] = ticket.number
    category = catalogue_repository.category(turn.session, ticket.category or "")
    turn.vars["category_name"] = (
        {"zh": category.name_zh, "en": category.name_en.lower()}
        if category
        else {"zh": "服务", "en": "service"}
    )
    turn.vars["ticket_spoken"] = {
        "zh": spell_ticket(ticket.number, "zh"),
        "en": spell_ticket(ticket.number, "en"),
    }
    # Answering-machine detection (machine_start, machine_end_beep, fax, …): nobody to ask.
    if reply.answered_by.startswith("machine") or reply.answered_by == "fax":
        return "machine"
    return "human"


def need_met(turn: Turn, reply: Input) -> str:
    outcome = NEED_MET_KEYS.get(reply.digits)
    if outcome is None and reply.speech:
        heard = reply.speech.lower()
        outcome = next((code for phrase, code in NEED_MET_ZH if phrase in heard), None)
        words = re.findall(r"[a-z]+", heard)
        outcome = outcome or next((NEED_MET_EN[w] for w in words if w in NEED_MET_EN), None)
    if outcome is None:
        return "unclear"
    turn.data["outcome"] = outcome
    return "answered"


def satisfaction(turn: Turn, reply: Input) -> str:
    score = small_number(reply.digits or reply.speech, 1, 5)
    if score is None:
        return "unclear"
    turn.data["satisfaction"] = score
    return "answered"


def save_revisit(turn: Turn, reply: Input) -> str:
    record(turn.session, turn.data, now=turn.now, recording_url=reply.recording_url or None)
    return "saved"


def no_answer(turn: Turn, _reply: Input) -> str:
    unanswered(turn.session, turn.data, now=turn.now)
    return "done"


def record(
    session: Session, data: dict[str, Any], *, now: datetime, recording_url: str | None = None
) -> None:
    """The answers given so far, once per call."""
    ticket = _ticket(session, data)
    if ticket is None or data.get("recorded") or not data.get("outcome"):
        return
    data["recorded"] = True
    try:
        ticket_service.record_revisit(
            session,
            ticket,
            actor=casework.REVISIT_ACTOR,
            outcome=str(data["outcome"]),
            satisfaction=data.get("satisfaction"),
            recording_url=recording_url,
            now=now,
        )
    except TicketError as exc:
        # Recorded by another path meanwhile (an agent, the SMS survey): the caller is thanked
        # all the same, the case keeps what it has.
        log.warning("revisit of %s not recorded: %s", ticket.number, exc)


def unanswered(session: Session, data: dict[str, Any], *, now: datetime) -> None:
    ticket = _ticket(session, data)
    if ticket is None or data.get("recorded"):
        return
    data["recorded"] = True
    try:
        ticket_service.revisit_no_answer(session, ticket, actor=casework.REVISIT_ACTOR, now=now)
    except TicketError as exc:
        log.warning("revisit no-answer of %s not recorded: %s", ticket.number, exc)


def _ticket(session: Session, data: dict[str, Any]) -> Ticket | None:
    if data.get("revisit_ticket_id"):
        return ticket_repository.by_id(session, int(data["revisit_ticket_id"]))
    return ticket_of(session, data.get("revisit_ticket_number"))


def hints_need_met(turn: Turn) -> list[str]:
    if turn.language == "zh":
        return ["解决了", "部分解决", "没有解决", "满足", "没有"]
    return ["yes", "partly", "no"]


def hints_scores(turn: Turn) -> list[str]:
    if turn.language == "zh":
        return ["一分", "二分", "三分", "四分", "五分", "满意", "很满意"]
    return ["one", "two", "three", "four", "five"]


REGISTRY = Registry(
    actions={
        "answered": answered,
        "need_met": need_met,
        "satisfaction": satisfaction,
        "save_revisit": save_revisit,
        "no_answer": no_answer,
    },
    hints={"need_met": hints_need_met, "scores": hints_scores},
)
