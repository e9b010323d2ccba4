"""Texts the hotline sends on its own (after a call): the ticket confirmation with the
institution's five publics in short, the complaint acknowledgement."""

from __future__ import annotations

import re

from sqlmodel import Session

from ivr_flows.segments import segments
from ivr_flows.texts import text
from kb.models import Institution
from kb.repository import catalogue_repository
from tickets.models import Ticket, TicketKind

# The five publics do not fit the three segments of a reply; a confirmation may take four.
MAX_NOTICE_SEGMENTS = 4
PUBLICS = ("content", "process", "standards", "fees", "hours")
_CLAUSE = re.compile(r"[；;。]|(?<=\D)[，,](?=\D)")


def _first_clause(value: str) -> str:
    value = value.strip()
    parts = [p.strip() for p in _CLAUSE.split(value) if p.strip()]
    return parts[0] if parts else value


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: max(limit - 1, 1)] + "…"


def five_publics(institution: Institution, language: str) -> dict[str, str]:
    return {
        name: _first_clause(str(getattr(institution, f"{name}_{language}") or "-"))
        for name in PUBLICS
    }


def ticket_sms(session: Session, ticket: Ticket, purpose: str) -> str:
    language = ticket.language if ticket.language in ("zh", "en") else "zh"
    if purpose == "complaint_ack" or ticket.kind == TicketKind.complaint:
        return text("sms_texts", "complaint_ack", language, number=ticket.number)
    institution = (
        catalogue_repository.institution(session, ticket.institution_id)
        if ticket.institution_id
        else None
    )
    category = catalogue_repository.category(session, ticket.category) if ticket.category else None
    if institution is None or category is None:
        return text("sms_texts", "voice_unrouted", language, number=ticket.number)
    values = {
        "number": ticket.number,
        "category": category.name_zh if language == "zh" else category.name_en.lower(),
        "institution": institution.name_zh if language == "zh" else institution.name_en,
        "phone": institution.phone,
    }
    publics = five_publics(institution, language)
    # Shorten every public evenly until the whole fits; the name and phone stay whole.
    for limit in (60, 40, 30, 24, 18, 14, 10, 8, 6):
        body = text(
            "sms_texts",
            "voice_confirmation",
            language,
            **values,
            **{k: _cut(v, limit) for k, v in publics.items()},
        )
        if segments(body) <= MAX_NOTICE_SEGMENTS:
            return body
    return body
