"""The public forms that open cases: ``/navigate`` (describe a need, see who serves it, open a
ticket) and ``/complaints/new`` (an online complaint for supervisors). Both are confirmed by an
SMS code at ``/confirm/{id}`` and guarded by :mod:`hotline.public.verify`."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

import routing
from hotline.deps import RedisDep, SessionDep, SettingsDep
from hotline.public import verify
from hotline.settings import Settings
from hotline.web.auth import client_address
from hotline.web.render import language, render
from kb import subscriptions
from kb.service import catalogue_service
from tickets.models import Channel, Role, TicketKind
from tickets.numbers import normalise as normalise_number
from tickets.phones import normalise_phone
from tickets.repository import ticket_repository
from tickets.service import Actor, ticket_service

router = APIRouter(tags=["public pages"])
PUBLIC_ACTOR = Actor("web:public", Role.system)
MAX_TEXT = 2000


def _secret(settings: Settings) -> bytes:
    return hmac.new(settings.auth_token.encode(), b"public forms v1", hashlib.sha256).digest()


def _phone(raw: str) -> str | None:
    """A mainland mobile number in E.164 (the SMS code needs a mobile), else None."""
    phone = normalise_phone(raw) if raw.strip() else None
    return phone if phone and re.fullmatch(r"\+861[3-9]\d{9}", phone) else None


# --- complaints ------------------------------------------------------------------------------


def _complaint_form(
    request: Request, settings: Settings, *, error: str = "", values: dict[str, str] | None = None
) -> Response:
    context = {
        "token": verify.form_token(_secret(settings), "complaint"),
        "error": error,
        "values": values or {"phone": "", "ticket": "", "text": ""},
    }
    return render(request, "public/complaint.html", context, status=422 if error else 200)


@router.get("/complaints/new", response_class=HTMLResponse)
def complaint_form(request: Request, settings: SettingsDep) -> Response:
    return _complaint_form(request, settings)


@router.post("/complaints/new", response_class=HTMLResponse)
def complaint_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    conn: RedisDep,
    form_token: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    ticket: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> Response:
    values = {"phone": phone, "ticket": ticket, "text": text[:MAX_TEXT]}
    number: str | None = None
    try:
        if website:  # a field people never see: only robots fill it
            raise verify.Refused("form_invalid")
        verify.check_form_token(_secret(settings), "complaint", form_token)
        e164 = _phone(phone)
        if e164 is None:
            raise verify.Refused("phone_invalid")
        if not text.strip() or len(text) > MAX_TEXT:
            raise verify.Refused("text_required")
        if ticket.strip():
            number = normalise_number(ticket)
            if number is None or ticket_repository.by_number(session, number) is None:
                raise verify.Refused("ticket_unknown")
        verify.check_rate(conn, client_address(request), e164)
    except verify.Refused as exc:
        return _complaint_form(request, settings, error=exc.reason, values=values)
    pending = verify.start(
        session,
        conn,
        phone=e164,
        kind="complaint",
        payload={"text": text.strip(), "ticket": number, "language": language(request)},
        language=language(request),
    )
    session.commit()
    return render(request, "public/confirm.html", {"pending": pending, "error": ""})


# --- navigation ------------------------------------------------------------------------------


def _suggest(session: Session, category: str, district: str | None) -> dict[str, Any]:
    decision = routing.match(session, category=category, place=district)
    alternatives = [c for c in decision.candidates if c.institution_id != decision.institution_id]
    return {"decision": decision, "alternatives": alternatives[:2]}


@router.get("/navigate", response_class=HTMLResponse)
def navigate(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    need: str = "",
    category: str = "",
    district: str = "",
) -> Response:
    repo = catalogue_service.repository
    categories = repo.categories(session)
    districts = repo.districts(session)
    context: dict[str, Any] = {
        "need": need[:MAX_TEXT],
        "categories": categories,
        "districts": districts,
        "category": "",
        "district": district,
        "suggestion": None,
        "token": verify.form_token(_secret(settings), "navigate"),
        "error": "",
        "phone": "",
    }
    if need.strip():
        classification = routing.classify(need[:MAX_TEXT])
        chosen = category if category in {c.key for c in categories} else None
        chosen = chosen or classification.category
        if district not in {d.code for d in districts}:
            place = routing.locate(need[:MAX_TEXT])
            district = place.district_code if place else ""
        context.update(category=chosen or "", district=district)
        if chosen:
            context["suggestion"] = _suggest(session, chosen, district or None)
    return render(request, "public/navigate.html", context)


@router.post("/navigate/open", response_class=HTMLResponse)
def navigate_open(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    conn: RedisDep,
    form_token: Annotated[str, Form()] = "",
    need: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "",
    district: Annotated[str, Form()] = "",
    institution_id: Annotated[int, Form()] = 0,
    phone: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",
) -> Response:
    try:
        if website:
            raise verify.Refused("form_invalid")
        verify.check_form_token(_secret(settings), "navigate", form_token)
        e164 = _phone(phone)
        if e164 is None:
            raise verify.Refused("phone_invalid")
        if not need.strip() or len(need) > MAX_TEXT:
            raise verify.Refused("text_required")
        if catalogue_service.repository.category(session, category) is None:
            raise verify.Refused("form_invalid")
        institution = catalogue_service.repository.institution(session, institution_id)
        if institution is None or not institution.active:
            raise verify.Refused("form_invalid")
        verify.check_rate(conn, client_address(request), e164)
    except verify.Refused as exc:
        return render(
            request, "public/error.html", {"reason": exc.reason, "back": "/navigate"}, status=422
        )
    pending = verify.start(
        session,
        conn,
        phone=e164,
        kind="service",
        payload={
            "text": need.strip(),
            "category": category,
            "district": district or None,
            "institution_id": institution_id,
            "language": language(request),
        },
        language=language(request),
    )
    session.commit()
    return render(request, "public/confirm.html", {"pending": pending, "error": ""})


# --- targeted information: subscriptions ----------------------------------------------------


def _subscribe_form(
    request: Request, session: Session, settings: Settings, *, error: str = ""
) -> Response:
    repo = catalogue_service.repository
    context = {
        "token": verify.form_token(_secret(settings), "subscribe"),
        "categories": repo.categories(session),
        "districts": repo.districts(session),
        "error": error,
    }
    return render(request, "public/subscribe.html", context, status=422 if error else 200)


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    return _subscribe_form(request, session, settings)


@router.post("/subscribe", response_class=HTMLResponse)
def subscribe_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    conn: RedisDep,
    form_token: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    category: Annotated[list[str] | None, Form()] = None,
    district: Annotated[list[str] | None, Form()] = None,
    website: Annotated[str, Form()] = "",
) -> Response:
    repo = catalogue_service.repository
    categories = [c for c in category or [] if repo.category(session, c) is not None]
    districts = [d for d in district or [] if repo.district(session, d) is not None]
    try:
        if website:
            raise verify.Refused("form_invalid")
        verify.check_form_token(_secret(settings), "subscribe", form_token)
        e164 = _phone(phone)
        if e164 is None:
            raise verify.Refused("phone_invalid")
        if not categories:
            raise verify.Refused("category_required")
        verify.check_rate(conn, client_address(request), e164)
    except verify.Refused as exc:
        return _subscribe_form(request, session, settings, error=exc.reason)
    pending = verify.start(
        session,
        conn,
        phone=e164,
        kind="subscribe",
        payload={"categories": categories, "districts": districts},
        language=language(request),
    )
    session.commit()
    return render(request, "public/confirm.html", {"pending": pending, "error": ""})


# --- confirmation ----------------------------------------------------------------------------


@router.post("/confirm/{pending_id}", response_class=HTMLResponse)
def confirm(
    request: Request,
    pending_id: str,
    session: SessionDep,
    conn: RedisDep,
    code: Annotated[str, Form()] = "",
) -> Response:
    try:
        pending = verify.confirm(conn, pending_id, code)
    except verify.Refused as exc:
        status = 422 if exc.reason == "code_wrong" else 410
        return render(
            request,
            "public/confirm.html",
            {"pending": pending_id, "error": exc.reason},
            status=status,
        )
    payload = pending.payload
    lang = str(payload.get("language") or "zh")
    if pending.kind == "subscribe":
        subscriptions.subscribe(
            session, pending.phone, payload["categories"], payload["districts"], channel="web"
        )
        session.commit()
        return render(request, "public/subscribed.html", {})
    if pending.kind == "complaint":
        summary = str(payload["text"])
        if payload.get("ticket"):
            summary += f"\n[{payload['ticket']}]"
        result = ticket_service.intake(
            session,
            actor=PUBLIC_ACTOR,
            channel=Channel.web,
            caller_phone=pending.phone,
            summary=summary,
            language=lang,
            kind=TicketKind.complaint,
        )
    else:
        result = ticket_service.intake(
            session,
            actor=PUBLIC_ACTOR,
            channel=Channel.web,
            caller_phone=pending.phone,
            summary=str(payload["text"]),
            language=lang,
            category=str(payload["category"]),
            district_code=payload.get("district"),
        )
        if not result.follow_up:
            ticket_service.dispatch(
                session,
                result.ticket,
                actor=PUBLIC_ACTOR,
                institution_id=int(payload["institution_id"]),
            )
    session.commit()
    return render(
        request,
        "public/opened.html",
        {"number": result.ticket.number, "kind": pending.kind, "follow_up": result.follow_up},
    )
