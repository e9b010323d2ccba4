"""The monitoring line's actions (flow_monitor.yaml): a checked ticket number, a recorded
complaint, a complaint ticket for supervisors linked to the ticket complained about."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from ivr_flows import casework
from ivr_flows.engine import Input, Registry, Turn
from ivr_flows.jobs import queue_ticket_sms
from ivr_flows.speech import spell_ticket, ticket_from_keys, ticket_from_speech, yes_or_no
from ivr_flows.voice import remember_ticket
from tickets.models import Channel, TicketKind
from tickets.repository import ticket_repository


def take_ticket_number(turn: Turn, reply: Input) -> str:
    if not reply.digits and not reply.speech:
        # The pound key alone, or silence: no ticket number to give.
        return "none"
    if reply.speech and yes_or_no(reply.speech, turn.language) is False:
        return "none"
    number = ticket_from_keys(reply.digits) if reply.digits else ticket_from_speech(reply.speech)
    if number is None:
        return "invalid"
    related = ticket_repository.by_number(turn.session, number)
    if related is None:
        return "invalid"
    turn.data["related_ticket_id"] = related.id
    turn.vars["related_number"] = related.number
    turn.vars["related_spoken"] = {
        "zh": spell_ticket(related.number, "zh"),
        "en": spell_ticket(related.number, "en"),
    }
    return "found"


def save_complaint(turn: Turn, reply: Input) -> str:
    if not reply.recording_url:
        return "empty"
    ticket_id = open_complaint_from_call(
        turn.session,
        turn.data,
        phone=turn.caller,
        language=turn.language,
        now=turn.now,
        recording_url=reply.recording_url,
        recording_sid=reply.recording_sid,
        duration=reply.recording_duration,
    )
    remember_ticket(turn, ticket_id, str(turn.data["ticket_number"]))
    queue_ticket_sms(turn.session, ticket_id, "complaint_ack")
    return "saved"


def open_complaint_from_call(
    session: Session,
    data: dict[str, Any],
    *,
    phone: str,
    language: str,
    now: Any,
    recording_url: str = "",
    recording_sid: str = "",
    duration: int = 0,
    callback: bool = False,
) -> int:
    """A complaint ticket (supervisors only) linked to the ticket complained about. Without a
    recording (the caller hung up first) it is a callback task for a supervisor."""
    if data.get("ticket_id"):
        return int(data["ticket_id"])
    related_id = data.get("related_ticket_id")
    if callback:
        summary = "监督电话来电者未留下投诉内容即挂机，请监督员回电。"
    else:
        summary = "监督电话录音投诉（见录音）"
    ticket, _ = casework.open_case(
        session,
        actor=casework.MONITOR_ACTOR,
        channel=Channel.monitor,
        phone=phone,
        language=language,
        summary=summary,
        now=now,
        kind=TicketKind.complaint,
        classification={"source": "monitor_line", "callback": callback},
        related_ticket_id=int(related_id) if related_id else None,
    )
    assert ticket.id is not None
    data["ticket_id"] = ticket.id
    data["ticket_number"] = ticket.number
    if recording_url:
        casework.note(
            session,
            ticket.id,
            actor=casework.MONITOR_ACTOR,
            action="voicemail",
            data={
                "recording_url": recording_url,
                "recording_sid": recording_sid,
                "duration": duration,
            },
            text="监督电话投诉录音",
        )
    return ticket.id


def hints_ticket(turn: Turn) -> list[str]:
    if turn.language == "zh":
        return ["没有", "工单号", "C Q", "零", "一", "二", "三", "四", "五", "六", "七", "八", "九"]
    return [
        "no",
        "ticket",
        "C Q",
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]


REGISTRY = Registry(
    actions={"take_ticket_number": take_ticket_number, "save_complaint": save_complaint},
    hints={"ticket": hints_ticket},
)
