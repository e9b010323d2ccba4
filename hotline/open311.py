"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) at ``/open311/v2``: every
resource in JSON or XML by its extension. Thin: parse, call :mod:`hotline.open311_domain`,
commit, render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from hotline import open311_domain as domain
from hotline.api_errors import OPEN311_ERRORS
from hotline.deps import SessionDep, SettingsDep
from hotline.open311_domain import Open311Error

router = APIRouter(prefix="/open311/v2", tags=["open311"])
FORMATS = ("json", "xml")
XML_TYPE = "text/xml; charset=utf-8"


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"format {fmt!r} is not supported: use json or xml")
    return fmt


def _error(exc: Open311Error, fmt: str) -> Response:
    errors = [{"code": exc.status, "description": exc.description}]
    if fmt == "xml":
        return Response(domain.to_xml("errors", "error", errors), exc.status, media_type=XML_TYPE)
    return JSONResponse(errors, status_code=exc.status)


def _render(fmt: str, root: str, item: str | None, payload: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(domain.to_xml(root, item, payload), status, media_type=XML_TYPE)
    return JSONResponse(payload, status_code=status)


def _locale(request: Request) -> str:
    return "en" if request.query_params.get("locale", "").lower().startswith("en") else "zh"


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@router.get("/discovery.{fmt}", responses=OPEN311_ERRORS)
def discovery(fmt: str, settings: SettingsDep) -> Response:
    if fmt not in FORMATS:
        return _error(
            Open311Error(404, f"format {fmt!r} is not supported: use json or xml"), "json"
        )
    base = f"{settings.public_base_url}/open311/v2/"
    payload = {
        "changeset": "2026-11-28T00:00:00+08:00",
        "contact": f"SME service hotline {settings.main_number}",
        "key_service": "API keys are issued by the hotline's administrators.",
        "endpoints": [
            {
                "specification": domain.SPECIFICATION,
                "url": base,
                "changeset": "2026-11-28T00:00:00+08:00",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return _render(fmt, "discovery", None, payload)


@router.get("/services.{fmt}", responses=OPEN311_ERRORS)
def services(fmt: str, request: Request, session: SessionDep) -> Response:
    try:
        fmt = _format(fmt)
        return _render(fmt, "services", "service", domain.service_list(session, _locale(request)))
    except Open311Error as exc:
        return _error(exc, fmt if fmt in FORMATS else "json")


@router.get("/services/{code}.{fmt}", responses=OPEN311_ERRORS)
def service_definition(code: str, fmt: str, session: SessionDep) -> Response:
    try:
        fmt = _format(fmt)
        return _render(fmt, "service_definition", None, domain.service_definition(session, code))
    except Open311Error as exc:
        return _error(exc, fmt if fmt in FORMATS else "json")


@router.post("/requests.{fmt}", responses=OPEN311_ERRORS)
async def create_request(fmt: str, request: Request, session: SessionDep) -> Response:
    form = await request.form()
    fields = dict(request.query_params.items())
    fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    response: Response = await run_in_threadpool(_create, session, fmt, fields)
    return response


def _create(session: Session, fmt: str, fields: dict[str, str]) -> Response:
    try:
        fmt = _format(fmt)
        submitted = domain.submit_request(session, fields)
        session.commit()
    except Open311Error as exc:
        return _error(exc, fmt if fmt in FORMATS else "json")
    payload = [
        {
            "service_request_id": submitted.number,
            "service_notice": submitted.notice,
            "account_id": "",
        }
    ]
    return _render(fmt, "service_requests", "request", payload, status=201)


@router.get("/requests.{fmt}", responses=OPEN311_ERRORS)
def list_requests(
    fmt: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    params = request.query_params
    try:
        fmt = _format(fmt)
        zone = settings.tz
        start = params.get("start_date")
        end = params.get("end_date")
        tickets = domain.find_requests(
            session,
            ids=_csv(params.get("service_request_id")),
            service_codes=_csv(params.get("service_code")),
            start=domain.parse_datetime(start, "start_date", zone) if start else None,
            end=domain.parse_datetime(end, "end_date", zone) if end else None,
            statuses=_csv(params.get("status")),
        )
        views = domain.request_views(session, tickets, zone, _locale(request))
        return _render(fmt, "service_requests", "request", views)
    except Open311Error as exc:
        return _error(exc, fmt if fmt in FORMATS else "json")


@router.get("/requests/{number}.{fmt}", responses=OPEN311_ERRORS)
def get_request(
    number: str, fmt: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    try:
        fmt = _format(fmt)
        tickets = domain.find_requests(session, ids=[number])
        if not tickets:
            raise Open311Error(404, f"service_request_id {number!r} not found")
        views = domain.request_views(session, tickets, settings.tz, _locale(request))
        return _render(fmt, "service_requests", "request", views)
    except Open311Error as exc:
        return _error(exc, fmt if fmt in FORMATS else "json")
