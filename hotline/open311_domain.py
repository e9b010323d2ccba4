"""Open311 GeoReport v2 mapped onto the hotline's domain: the eight categories are the services,
tickets are the service requests, institutions are the agencies responsible.

Only what the standard lists leaves here: no phone number, name or e-mail of a requester is
ever part of a response, and only requests that came in through Open311 are listed.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from hotline.open311_models import Open311ApiKey
from kb.db import as_utc, utcnow
from kb.models import Category, District, Institution
from kb.schemas import LAT_RANGE, LON_RANGE
from tickets.models import Channel, Ticket, TicketKind, TicketState
from tickets.phones import normalise_phone

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
OPEN311_ACTOR_PREFIX = "open311:"

# Ticket states a requester sees as still being worked on; every other state is closed.
OPEN_STATES = frozenset(
    {
        TicketState.new,
        TicketState.dispatched,
        TicketState.accepted,
        TicketState.in_progress,
        TicketState.reopened,
        TicketState.escalated,
        TicketState.declined,
    }
)
STATUS_NOTES = {
    TicketState.new: "Received; being assigned to a service institution.",
    TicketState.dispatched: "Sent to a service institution; waiting for it to accept.",
    TicketState.accepted: "Accepted by the service institution.",
    TicketState.in_progress: "The service institution is working on it.",
    TicketState.reopened: "Reopened; the service institution is working on it again.",
    TicketState.escalated: "Escalated to the supervising platform.",
    TicketState.declined: "Declined by an institution; being assigned to another.",
    TicketState.resolved: "Resolved; the hotline will call the firm back to confirm.",
    TicketState.revisit_pending: "Resolved; the hotline will call the firm back to confirm.",
    TicketState.closed: "Closed.",
    TicketState.cancelled: "Cancelled.",
}
CLOSURE_NOTES = {
    "revisit_met": "Closed: the firm confirmed its need was met.",
    "revisit_refused": "Closed after the revisit.",
    "revisit_unreachable": "Closed: the firm could not be reached for the revisit.",
    "supervisor": "Closed by a supervisor.",
    "spam": "Cancelled as spam.",
    "duplicate": "Cancelled: duplicate of another request.",
    "withdrawn": "Cancelled: withdrawn by the requester.",
}
# A long run of digits in a description is most likely a phone or ID number: not published.
_DIGITS = re.compile(r"\+?\d[\d\s-]{6,}\d")


class Open311Error(Exception):
    """An error the standard's error list carries: HTTP status and description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# --- API keys ------------------------------------------------------------------------------


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, name: str) -> str:
    """A new key for ``name``; only its digest is stored, the key itself is returned once."""
    name = name.strip()
    if not name:
        raise ValueError("a key needs a name")
    existing = session.exec(select(Open311ApiKey).where(Open311ApiKey.name == name)).first()
    if existing is not None and existing.revoked_at is None:
        raise ValueError(f"an active key named {name!r} exists; revoke it first")
    key = "o311_" + secrets.token_urlsafe(32)
    if existing is not None:
        existing.key_sha256 = _digest(key)
        existing.revoked_at = None
        existing.created_at = utcnow()
        existing.last_used_at = None
        session.add(existing)
    else:
        session.add(Open311ApiKey(name=name, key_sha256=_digest(key)))
    session.flush()
    return key


def revoke_key(session: Session, name: str) -> bool:
    found = session.exec(select(Open311ApiKey).where(Open311ApiKey.name == name)).first()
    if found is None or found.revoked_at is not None:
        return False
    found.revoked_at = utcnow()
    session.add(found)
    session.flush()
    return True


def authenticate(session: Session, key: str | None) -> Open311ApiKey:
    if not key:
        raise Open311Error(403, "api_key is required")
    found = session.exec(
        select(Open311ApiKey).where(Open311ApiKey.key_sha256 == _digest(key))
    ).first()
    if found is None or found.revoked_at is not None:
        raise Open311Error(403, "Invalid api_key")
    found.last_used_at = utcnow()
    session.add(found)
    return found


# --- services ------------------------------------------------------------------------------


def _name(category: Category, locale: str) -> str:
    return category.name_en if locale == "en" else category.name_zh


def service_list(session: Session, locale: str) -> list[dict[str, Any]]:
    categories = session.exec(select(Category).order_by(col(Category.dtmf))).all()
    return [
        {
            "service_code": c.key,
            "service_name": _name(c, locale),
            "description": c.description_en if locale == "en" else c.description_zh,
            "metadata": False,
            "type": "realtime",
            "keywords": ", ".join(_keywords(c)),
            "group": "SME public services" if locale == "en" else "中小企业公共服务",
        }
        for c in categories
    ]


def _keywords(category: Category) -> list[str]:
    words = [category.key, category.name_zh, category.name_en.lower()]
    seen: list[str] = []
    for word in words:
        if word not in seen:
            seen.append(word)
    return seen


def service_definition(session: Session, code: str) -> dict[str, Any]:
    """The definition of a service: no extra attributes (every service has metadata=false)."""
    if session.get(Category, code) is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    return {"service_code": code, "attributes": []}


# --- places --------------------------------------------------------------------------------


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def district_at(session: Session, lat: float, lon: float) -> District:
    """The district whose centre is nearest the point; the point must lie in the city."""
    if not (LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LON_RANGE[0] <= lon <= LON_RANGE[1]):
        raise Open311Error(400, "lat/long is outside Chongqing")
    districts = session.exec(select(District)).all()
    if not districts:
        raise Open311Error(400, "no districts are loaded")
    return min(districts, key=lambda d: _km(lat, lon, d.lat, d.lon))


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRequest:
    service_code: str
    description: str
    lat: float | None
    long: float | None
    address_string: str
    phone: str | None
    media_url: str


def parse_new_request(fields: dict[str, str]) -> NewRequest:
    code = (fields.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    lat_raw, long_raw = fields.get("lat", "").strip(), fields.get("long", "").strip()
    lat = long = None
    if lat_raw or long_raw:
        try:
            lat, long = float(lat_raw), float(long_raw)
        except ValueError:
            raise Open311Error(400, "lat and long must both be decimal degrees") from None
        if not (math.isfinite(lat) and math.isfinite(long)):
            raise Open311Error(400, "lat and long must be finite numbers")
    address = (fields.get("address_string") or "").strip()
    if lat is None and not address:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    phone_raw = (fields.get("phone") or "").strip()
    phone = None
    if phone_raw:
        phone = normalise_phone(phone_raw)
        if phone is None:
            raise Open311Error(400, "phone is not a phone number")
    description = (fields.get("description") or "").strip()
    if len(description) > 4000:
        raise Open311Error(400, "description is longer than 4000 characters")
    return NewRequest(
        service_code=code,
        description=description,
        lat=lat,
        long=long,
        address_string=address[:256],
        phone=phone,
        media_url=(fields.get("media_url") or "").strip()[:512],
    )


def open311_classification(request: NewRequest, key: Open311ApiKey) -> dict[str, Any]:
    """What the ticket keeps of the Open311 request (no personal data)."""
    return {
        "source": "open311",
        "open311": {
            "client": key.name,
            "lat": request.lat,
            "long": request.long,
            "address_string": request.address_string,
            "media_url": request.media_url,
        },
    }


def _redact(text: str) -> str:
    return _DIGITS.sub("***", text)


def _iso(value: datetime | None, zone: ZoneInfo) -> str | None:
    return as_utc(value).astimezone(zone).isoformat(timespec="seconds") if value else None


def status_of(ticket: Ticket) -> str:
    return "open" if ticket.state in OPEN_STATES else "closed"


def status_notes(ticket: Ticket) -> str:
    if ticket.closure is not None and ticket.closure.value in CLOSURE_NOTES:
        return CLOSURE_NOTES[ticket.closure.value]
    return STATUS_NOTES.get(ticket.state, "")


def request_view(
    ticket: Ticket,
    *,
    category: Category | None,
    district: District | None,
    institution: Institution | None,
    zone: ZoneInfo,
    locale: str,
) -> dict[str, Any]:
    o311 = dict(ticket.classification.get("open311") or {})
    address = o311.get("address_string") or ""
    if not address and district is not None:
        address = district.name_en if locale == "en" else district.name_zh
    agency = ""
    if institution is not None:
        agency = institution.name_en if locale == "en" else institution.name_zh
    return {
        "service_request_id": ticket.number,
        "status": status_of(ticket),
        "status_notes": status_notes(ticket),
        "service_name": _name(category, locale) if category else "",
        "service_code": ticket.category or "",
        "description": _redact(ticket.summary),
        "agency_responsible": agency,
        "service_notice": "",
        "requested_datetime": _iso(ticket.created_at, zone),
        "updated_datetime": _iso(ticket.updated_at, zone),
        "expected_datetime": _iso(ticket.resolve_due_at, zone),
        "address": address,
        "address_id": "",
        "zipcode": "",
        "lat": o311.get("lat"),
        "long": o311.get("long"),
        "media_url": o311.get("media_url") or "",
    }


def parse_datetime(value: str, name: str, zone: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} is not an ISO 8601 date and time") from None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def find_requests(
    session: Session,
    *,
    ids: Sequence[str] = (),
    service_codes: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Iterable[str] = (),
    now: datetime | None = None,
) -> list[Ticket]:
    """Open311 tickets by the standard's filters. ``ids`` override every other filter;
    otherwise the window defaults to the last 90 days and may span at most 90 days."""
    query = select(Ticket).where(
        Ticket.channel == Channel.open311, Ticket.kind == TicketKind.service
    )
    if ids:
        query = query.where(col(Ticket.number).in_(list(ids)))
        return list(session.exec(query.order_by(col(Ticket.created_at).desc())).all())
    else:
        now = now or utcnow()
        end = as_utc(end) if end else now
        start = as_utc(start) if start else end - MAX_SPAN
        if start > end:
            raise Open311Error(400, "start_date is after end_date")
        if end - start > MAX_SPAN:
            raise Open311Error(400, "start_date to end_date may span at most 90 days")
        query = query.where(col(Ticket.created_at) >= start, col(Ticket.created_at) <= end)
    if service_codes:
        query = query.where(col(Ticket.category).in_(list(service_codes)))
    wanted = {s.strip() for s in statuses if s.strip()}
    if wanted - {"open", "closed"}:
        raise Open311Error(400, "status must be open and/or closed")
    if wanted == {"open"}:
        query = query.where(col(Ticket.state).in_([s.value for s in OPEN_STATES]))
    elif wanted == {"closed"}:
        query = query.where(col(Ticket.state).not_in([s.value for s in OPEN_STATES]))
    query = query.order_by(col(Ticket.created_at).desc()).limit(MAX_RESULTS)
    return list(session.exec(query).all())


def request_views(
    session: Session, tickets: Sequence[Ticket], zone: ZoneInfo, locale: str
) -> list[dict[str, Any]]:
    return [
        request_view(
            t,
            category=session.get(Category, t.category) if t.category else None,
            district=session.get(District, t.district_code) if t.district_code else None,
            institution=session.get(Institution, t.institution_id) if t.institution_id else None,
            zone=zone,
            locale=locale,
        )
        for t in tickets
    ]


# --- rendering -----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _element(child, key, inner)
    elif isinstance(value, list):
        item_name = {"formats": "format", "endpoints": "endpoint", "attributes": "attribute"}
        for inner in value:
            _element(child, item_name.get(name, "item"), inner)
    else:
        child.text = _text(value)


def to_xml(root: str, item: str | None, payload: Any) -> bytes:
    """``<root><item>…</item>…</root>`` for a list, ``<root>…</root>`` for a mapping."""
    element = ET.Element(root)
    if item is not None:
        for entry in payload:
            child = ET.SubElement(element, item)
            for key, value in entry.items():
                _element(child, key, value)
    else:
        for key, value in payload.items():
            _element(element, key, value)
    body: bytes = ET.tostring(element, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


# --- creating a request ----------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    number: str
    notice: str


def submit_request(
    session: Session, fields: dict[str, str], *, now: datetime | None = None
) -> Submitted:
    """Authenticate, validate, place, then open the ticket (or add to the firm's open one) and
    dispatch it; flushes, the caller commits."""
    import routing
    from tickets.service import Actor, ticket_service

    key = authenticate(session, fields.get("api_key"))
    request = parse_new_request(fields)
    category = session.get(Category, request.service_code)
    if category is None:
        raise Open311Error(404, f"service_code {request.service_code!r} not found")
    cluster_code: str | None = None
    if request.lat is not None and request.long is not None:
        district = district_at(session, request.lat, request.long)
        district_code = district.code
    else:
        place = routing.locate(request.address_string)
        if place is None:
            raise Open311Error(400, "address_string names no place in Chongqing")
        district_code = place.district_code
        cluster_code = place.code if place.kind == "cluster" else None
    summary = request.description or (request.address_string or category.name_zh)
    language = "en" if summary.isascii() else "zh"
    actor = Actor(OPEN311_ACTOR_PREFIX + key.name)
    result = ticket_service.intake(
        session,
        actor=actor,
        channel=Channel.open311,
        caller_phone=request.phone or "",
        summary=summary,
        language=language,
        kind=TicketKind.service,
        category=category.key,
        district_code=district_code,
        cluster_code=cluster_code,
        classification=open311_classification(request, key),
        now=now,
    )
    ticket = result.ticket
    if result.follow_up:
        return Submitted(ticket.number, "Added to an open request of the same firm.")
    decision = routing.match(
        session, category=category.key, place=district_code, cluster=cluster_code
    )
    ticket_service.dispatch(session, ticket, actor=actor, decision=decision, now=now)
    return Submitted(ticket.number, "Sent to a service institution.")
