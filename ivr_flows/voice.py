"""The main hotline's actions (flow_main.yaml): understand, confirm, locate, open, route, hand over.

Each action reads Twilio's result for its step, changes the case and the call's state, and
returns an outcome; the flow file says which step follows each outcome.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

import routing
from ivr_flows import casework
from ivr_flows.engine import Input, Registry, Turn
from ivr_flows.jobs import queue_ticket_sms
from ivr_flows.speech import need_hints, spell_ticket, yes_or_no
from kb.models import Category, Institution
from kb.repository import catalogue_repository
from tickets.models import Channel, TicketKind

MAX_NEED_CHARS = 500


def _category(session: Session, key: str) -> Category | None:
    return catalogue_repository.category(session, key)


def _remember_category(turn: Turn, category: Category, source: str) -> None:
    turn.data["category"] = category.key
    turn.data["category_source"] = source
    turn.vars["category"] = category.key
    turn.vars["category_name"] = {"zh": category.name_zh, "en": category.name_en.lower()}


def _remember_place(turn: Turn, place: Any) -> None:
    turn.data["district"] = place.district_code
    turn.data["cluster"] = place.code if place.kind == "cluster" else None


def remember_ticket(turn: Turn, ticket_id: int, number: str) -> None:
    turn.data["ticket_id"] = ticket_id
    turn.vars["ticket_number"] = number
    turn.vars["ticket_spoken"] = {
        "zh": spell_ticket(number, "zh"),
        "en": spell_ticket(number, "en"),
    }


def need_text(data: dict[str, Any]) -> str:
    return " / ".join(data.get("need") or [])


# --- actions ---------------------------------------------------------------------------------


def understand_need(turn: Turn, reply: Input) -> str:
    if reply.digits:
        return "keys"
    if not reply.speech:
        return "unheard"
    heard = reply.speech[:MAX_NEED_CHARS]
    turn.data.setdefault("need", []).append(heard)
    result = routing.classify(heard)
    turn.data["classification"] = result.to_dict()
    place = routing.locate(heard)
    if place is not None:
        _remember_place(turn, place)
    if result.complaint:
        return "complaint"
    if result.category is not None:
        found = _category(turn.session, result.category)
        if found is not None:
            _remember_category(turn, found, "speech")
            return "understood"
    # Some evidence but no clear winner: the menu settles it; no evidence at all is a
    # transcript the recogniser got wrong, worth one more try.
    return "unsure" if result.evidence else "unheard"


def confirm_category(turn: Turn, reply: Input) -> str:
    if reply.digits:
        return {"1": "yes", "2": "no"}.get(reply.digits, "unclear")
    answer = yes_or_no(reply.speech, turn.language) if reply.speech else None
    if answer is None:
        return "unclear"
    return "yes" if answer else "no"


def prepare_menu(turn: Turn) -> None:
    categories = catalogue_repository.categories(turn.session)
    menu: dict[str, str] = {}
    for language, separator in (("zh", "，"), ("en", "; ")):
        items = [
            turn.flow.prompt(
                "menu_item",
                language,
                {
                    "name": c.name_zh if language == "zh" else c.name_en.lower(),
                    "key": str(c.dtmf),
                },
            )
            for c in categories
        ]
        menu[language] = separator.join(items) + ("。" if language == "zh" else ".")
    turn.vars["menu"] = menu


def choose_category(turn: Turn, reply: Input) -> str:
    if reply.digits == "0":
        turn.data["category"] = None
        turn.vars["category"] = ""
        return "agent"
    if reply.digits == "9":
        return "repeat"
    if reply.digits.isdigit():
        for category in catalogue_repository.categories(turn.session):
            if str(category.dtmf) == reply.digits:
                _remember_category(turn, category, "keypad")
                return "chosen"
    return "invalid"


def find_place(turn: Turn, _reply: Input) -> str:
    if turn.data.get("district") or not turn.data.get("category"):
        # No category: an agent will talk to the caller anyway, so do not make them say it now.
        return "known"
    firm = casework.firm_for(turn.session, turn.caller, turn.language) if turn.caller else None
    if firm is not None and firm.district_code:
        turn.data["district"] = firm.district_code
        turn.data["cluster"] = firm.cluster_code
        return "known"
    return "unknown"


def locate_place(turn: Turn, reply: Input) -> str:
    if not reply.speech:
        return "unclear"
    turn.data.setdefault("place_heard", []).append(reply.speech[:200])
    place = routing.locate(reply.speech)
    if place is None:
        return "unclear"
    _remember_place(turn, place)
    return "found"


def open_ticket(turn: Turn, _reply: Input) -> str:
    """Open the case with what is known (category, place), route it when the category is
    known, and queue the SMS confirmation (through the outbox, in the case's transaction)."""
    ticket_id = open_from_call(
        turn.session, turn.data, phone=turn.caller, language=turn.language, now=turn.now
    )
    _announce(turn, ticket_id)
    queue_ticket_sms(turn.session, ticket_id, "voice_confirmation")
    return "routed" if turn.data.get("institution_id") else "unrouted"


def open_from_call(
    session: Session,
    data: dict[str, Any],
    *,
    phone: str,
    language: str,
    now: datetime,
    abandoned: bool = False,
) -> int:
    """The case of a main-line call, from the call's state. Shared by the dialogue and by the
    end-of-call handling (a caller who hangs up after stating the need still gets a case)."""
    if data.get("ticket_id"):
        return int(data["ticket_id"])
    category = data.get("category")
    summary = need_text(data)
    if not summary and category:
        found = _category(session, category)
        summary = f"电话按键选择：{found.name_zh}" if found else category
    classification = dict(data.get("classification") or {})
    classification["source"] = data.get("category_source") or "speech"
    if abandoned:
        classification["abandoned_at_step"] = data.get("step")
    ticket, follow_up = casework.open_case(
        session,
        actor=casework.VOICE_ACTOR,
        channel=Channel.voice,
        phone=phone,
        language=language,
        summary=summary or "电话来电（未说明需求）",
        now=now,
        category=category,
        district_code=data.get("district"),
        cluster_code=data.get("cluster"),
        classification=classification,
    )
    assert ticket.id is not None
    data["ticket_id"] = ticket.id
    data["ticket_number"] = ticket.number
    data["follow_up"] = follow_up
    if follow_up:
        # The same need is already open: the caller is told its number and may still be put
        # through to the institution that has it.
        data["institution_id"] = ticket.institution_id
    elif category:
        institution = casework.route_case(
            session,
            ticket,
            actor=casework.VOICE_ACTOR,
            category=category,
            district_code=data.get("district"),
            cluster_code=data.get("cluster"),
            now=now,
        )
        data["institution_id"] = institution.id
    if abandoned:
        casework.note(
            session,
            ticket.id,
            actor=casework.VOICE_ACTOR,
            action="follow_up",
            data={"reason": "caller_hung_up", "step": data.get("step")},
            text="来电者在流程结束前挂机，已按其所述需求建单。",
        )
    return ticket.id


def _announce(turn: Turn, ticket_id: int) -> None:
    number = str(turn.data.get("ticket_number") or "")
    remember_ticket(turn, ticket_id, number)
    turn.vars["category"] = turn.data.get("category") or ""
    institution_id = turn.data.get("institution_id")
    if institution_id:
        institution = catalogue_repository.institution(turn.session, int(institution_id))
        if institution is not None:
            _remember_institution(turn, institution)


def _remember_institution(turn: Turn, institution: Institution) -> None:
    turn.vars["institution_name"] = casework.names(institution)
    turn.vars["institution_phone"] = institution.phone
    turn.vars["institution_code"] = institution.code


def _zone(turn: Turn) -> ZoneInfo:
    return ZoneInfo(str(turn.config.get("timezone") or "Asia/Shanghai"))


def office_hours(turn: Turn, _reply: Input) -> str:
    institution_id = turn.data.get("institution_id")
    institution = (
        catalogue_repository.institution(turn.session, int(institution_id))
        if institution_id
        else None
    )
    if institution is None:
        return "closed"
    return "open" if casework.is_open(institution, turn.now, _zone(turn)) else "closed"


def dial_result(turn: Turn, reply: Input) -> str:
    answered = reply.dial_status in ("completed", "answered")
    ticket_id = turn.data.get("ticket_id")
    if ticket_id:
        casework.note(
            turn.session,
            int(ticket_id),
            actor=casework.VOICE_ACTOR,
            action="transfer",
            data={
                "status": reply.dial_status or "unknown",
                "duration": reply.params.get("DialCallDuration", ""),
                "institution_id": turn.data.get("institution_id"),
            },
            text="来电已转接机构" if answered else "转接机构未接通",
        )
    return "answered" if answered else "unanswered"


def queue_result(turn: Turn, reply: Input) -> str:
    return "bridged" if reply.queue_result in ("bridged", "bridging-in-process") else "unavailable"


def save_voicemail(turn: Turn, reply: Input) -> str:
    ticket_id = turn.data.get("ticket_id")
    if not reply.recording_url or not ticket_id:
        return "empty"
    casework.note(
        turn.session,
        int(ticket_id),
        actor=casework.VOICE_ACTOR,
        action="voicemail",
        data={
            "recording_url": reply.recording_url,
            "recording_sid": reply.recording_sid,
            "duration": reply.recording_duration,
        },
        text="来电留言",
    )
    turn.data["voicemail"] = reply.recording_url
    return "saved"


def open_complaint(turn: Turn, _reply: Input) -> str:
    ticket, _ = casework.open_case(
        turn.session,
        actor=casework.VOICE_ACTOR,
        channel=Channel.voice,
        phone=turn.caller,
        language=turn.language,
        summary=need_text(turn.data),
        now=turn.now,
        kind=TicketKind.complaint,
        classification=dict(turn.data.get("classification") or {}),
    )
    assert ticket.id is not None
    turn.data["ticket_number"] = ticket.number
    remember_ticket(turn, ticket.id, ticket.number)
    queue_ticket_sms(turn.session, ticket.id, "complaint_ack")
    return "opened"


# --- speech hints ----------------------------------------------------------------------------


def hints_need(turn: Turn) -> list[str]:
    return list(need_hints(turn.language))


def hints_districts(turn: Turn) -> list[str]:
    found: list[str] = []
    for district in catalogue_repository.districts(turn.session):
        if turn.language == "zh":
            found += [district.name_zh, district.short_zh]
        else:
            found += [district.name_en, district.name_en.split(" ")[0]]
    for cluster in catalogue_repository.clusters(turn.session):
        found.append(cluster.name_zh if turn.language == "zh" else cluster.name_en)
    return found


def hints_yes_no(turn: Turn) -> list[str]:
    return ["是", "对", "不是", "确认"] if turn.language == "zh" else ["yes", "no", "correct"]


REGISTRY = Registry(
    actions={
        "understand_need": understand_need,
        "confirm_category": confirm_category,
        "choose_category": choose_category,
        "find_place": find_place,
        "locate_place": locate_place,
        "open_ticket": open_ticket,
        "office_hours": office_hours,
        "dial_result": dial_result,
        "queue_result": queue_result,
        "save_voicemail": save_voicemail,
        "open_complaint": open_complaint,
    },
    prepares={"menu": prepare_menu},
    hints={"need": hints_need, "districts": hints_districts, "yes_no": hints_yes_no},
)
