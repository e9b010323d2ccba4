"""The supervisors' console: the complaints inbox (review on the ticket page: uphold, which
escalates or reopens the ticket complained about and counts against its institution, or dismiss
with a note)."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from hotline.deps import SessionDep
from hotline.web import charts as charts_mod
from hotline.web import queries
from hotline.web.auth import WebUser, require
from hotline.web.render import render, secure, translator
from kb.db import utcnow
from tickets import metrics
from tickets.models import Role, TicketKind, TicketState
from tickets.phones import mask_phone

router = APIRouter(include_in_schema=False)

Supervisor = Annotated[WebUser, Depends(require(Role.supervisor, Role.admin))]


@router.get("/supervisor/complaints", response_class=HTMLResponse)
def complaints(request: Request, session: SessionDep, user: Supervisor) -> HTMLResponse:
    states = (TicketState.new, TicketState.in_progress)
    pages = [
        queries.queue_page(
            session,
            queries.QueueFilter(state=state, kind=TicketKind.complaint),
            actor_name=user.actor.name,
            limit=100,
        )
        for state in states
    ]
    rows = sorted((row for page in pages for row in page.rows), key=lambda r: r.ticket.id or 0)
    related = queries.related_numbers(session, [row.ticket for row in rows])
    return render(
        request,
        "complaints.html",
        {"rows": rows, "related": related, "names": queries.names(session)},
    )


def _period(request: Request) -> tuple[int, datetime, datetime]:
    raw = request.query_params.get("days", "30")
    days = int(raw) if raw in ("7", "30", "90", "365") else 30
    until = utcnow()
    return days, until - timedelta(days=days), until


def _total(groups: dict[str | int | None, metrics.GroupMeasures]) -> metrics.GroupMeasures:
    total = metrics.GroupMeasures(key="all")
    for measured in groups.values():
        for item in fields(metrics.GroupMeasures):
            if item.type in ("int", int):
                setattr(total, item.name, getattr(total, item.name) + getattr(measured, item.name))
    return total


@router.get("/supervisor/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, user: Supervisor) -> HTMLResponse:
    t = translator(request)
    lang = t.language
    days, since, until = _period(request)
    names = queries.names(session)
    by_category = metrics.compute(session, since, until, by="category")
    by_district = metrics.compute(session, since, until, by="district")
    by_institution = metrics.compute(session, since, until, by="institution")
    institutions = queries.institution_names(
        session, {key for key in by_institution if isinstance(key, int)}
    )

    def inst_name(key: object) -> str:
        found = institutions.get(key) if isinstance(key, int) else None
        if found is None:
            return "—"
        return found.name_zh if lang == "zh" else found.name_en

    total = _total(by_institution)
    rates = total.rates
    charts = [
        charts_mod.bars(
            t("dash.by_category"),
            [(names.category(str(k), lang) or "—", m.volume) for k, m in by_category.items()],
        ),
        charts_mod.bars(
            t("dash.by_district"),
            [(names.district(str(k), lang) or "—", m.volume) for k, m in by_district.items()],
        ),
        charts_mod.bars(
            t("dash.on_time"),
            [(inst_name(k), m.rates["on_time_resolution_rate"]) for k, m in by_institution.items()],
            percent=True,
        ),
        charts_mod.bars(
            t("dash.overall"),
            [
                (t("dash.rate." + name), rates[name])
                for name in (
                    "on_time_acceptance_rate",
                    "on_time_resolution_rate",
                    "revisit_rate",
                    "satisfaction_rate",
                    "demand_satisfaction_rate",
                )
            ],
            percent=True,
        ),
    ]
    league = sorted(
        ((inst_name(k), m) for k, m in by_institution.items() if k is not None),
        key=lambda pair: (
            -(pair[1].rates["on_time_resolution_rate"] or 0.0),
            -(pair[1].rates["satisfaction_rate"] or 0.0),
            -pair[1].volume,
        ),
    )
    return render(
        request,
        "dashboard.html",
        {"charts": charts, "league": league, "days": days, "total": total},
    )


@router.get("/supervisor/export.csv", response_model=None)
def export_csv(request: Request, session: SessionDep, user: Supervisor) -> Response:
    """The period's tickets, one row each; phone numbers masked."""
    days, since, until = _period(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [
            "number",
            "kind",
            "state",
            "channel",
            "category",
            "district",
            "institution_id",
            "caller_phone",
            "created_at",
            "resolved_at",
            "satisfaction",
        ]
    )
    for ticket in queries.tickets_between(session, since, until):
        writer.writerow(
            [
                ticket.number,
                ticket.kind.value,
                ticket.state.value,
                ticket.channel.value,
                ticket.category or "",
                ticket.district_code or "",
                ticket.institution_id or "",
                mask_phone(ticket.caller_phone),
                ticket.created_at.isoformat(),
                ticket.resolved_at.isoformat() if ticket.resolved_at else "",
                ticket.satisfaction if ticket.satisfaction is not None else "",
            ]
        )
    response = Response(
        content="\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="tickets-{days}d.csv"'},
    )
    secure(response, request)
    return response


@router.get("/supervisor/sla", response_class=HTMLResponse)
def sla_board(request: Request, session: SessionDep, user: Supervisor) -> HTMLResponse:
    """Open service tickets, most urgent first; overdue ones marked."""
    page = queries.queue_page(session, queries.QueueFilter(), actor_name=user.actor.name, limit=100)
    institutions = queries.institution_names(
        session, {row.ticket.institution_id for row in page.rows if row.ticket.institution_id}
    )
    return render(
        request,
        "sla.html",
        {
            "page": queries.QueuePage(page.rows, None),
            "names": queries.names(session),
            "institutions": institutions,
            "overdue": sum(1 for row in page.rows if row.overdue),
            "cursor": None,
            "filters": "",
            "rows_path": "/queue/rows",
        },
    )
