"""/supervisor/notices: targeted information for supervisors and admins. Pick a knowledge-base
article and an audience (categories, districts), see how many firms it would reach (opted-out
numbers left out) and the SMS it would send, publish it, and follow each notice's fan-out
(sent, delivered, failed, skipped) as the workers send it.

Every page works without JavaScript; with htmx the audience count follows the form and the
progress refreshes itself until the notice is done.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from hotline.deps import RedisDep, SessionDep, SettingsDep
from hotline.public import notices
from hotline.public.models import Notice
from hotline.web import queries
from hotline.web.auth import CsrfUser, WebUser, ensure_role, require
from hotline.web.render import render
from kb import articles
from kb.models import Article
from tickets.models import Role

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PUBLISHER_ROLES = (Role.supervisor, Role.admin)
Publisher = Annotated[WebUser, Depends(require(*PUBLISHER_ROLES))]
POLL_SECONDS = 2
MAX_CHOICES = 50  # more categories or districts than exist is not a choice, it is noise

Choices = Annotated[list[str], Query(max_length=MAX_CHOICES)]


def _clean(values: list[str]) -> list[str]:
    return [v.strip() for v in values if v.strip()][:MAX_CHOICES]


def _form_context(
    session: Session,
    today: datetime,
    *,
    article: str = "",
    categories: list[str] | None = None,
    districts: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "articles": articles.search(session, today=today.date(), include_expired=False, limit=200),
        "names": queries.names(session),
        "chosen": {
            "article": article,
            "categories": categories or [],
            "districts": districts or [],
        },
        "notices": notices.recent(session),
    }


def _error(exc: notices.NoticeError) -> dict[str, str]:
    return {"code": exc.code, "value": exc.value}


@router.get("/supervisor/notices", response_class=HTMLResponse)
def notices_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: Publisher
) -> HTMLResponse:
    context = _form_context(session, datetime.now(settings.tz))
    return render(request, "notices.html", {**context, "error": None})


@router.get("/supervisor/notices/audience", response_class=HTMLResponse)
def audience(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Publisher,
    article: str = "",
    category: Choices = [],  # noqa: B006 - FastAPI copies query defaults
    district: Choices = [],  # noqa: B006
) -> HTMLResponse:
    """The audience count for the form as it stands (htmx swaps it in as the form changes)."""
    context: dict[str, Any] = {"draft": None, "error": None}
    if article:
        try:
            context["draft"] = notices.draft(
                session,
                article,
                today=datetime.now(settings.tz).date(),
                categories=_clean(category),
                districts=_clean(district),
            )
        except notices.NoticeError as exc:
            context["error"] = _error(exc)
    return render(request, "notices_audience.html", context)


@router.get("/supervisor/notices/new", response_class=HTMLResponse)
def confirm(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Publisher,
    article: str = "",
    category: Choices = [],  # noqa: B006
    district: Choices = [],  # noqa: B006
) -> HTMLResponse:
    """The notice as it would go out, with its audience's size, and the button that sends it."""
    now = datetime.now(settings.tz)
    categories, districts = _clean(category), _clean(district)
    try:
        found = notices.draft(
            session, article, today=now.date(), categories=categories, districts=districts
        )
    except notices.NoticeError as exc:
        context = _form_context(
            session, now, article=article, categories=categories, districts=districts
        )
        return render(request, "notices.html", {**context, "error": _error(exc)}, status=422)
    return render(
        request,
        "notices_confirm.html",
        {"draft": found, "names": queries.names(session), "slug": article},
    )


@router.post("/supervisor/notices", response_model=None)
def publish(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    connection: RedisDep,
    user: CsrfUser,
    article: Annotated[str, Form(max_length=96)] = "",
    category: Annotated[list[str], Form(max_length=MAX_CHOICES)] = [],  # noqa: B006
    district: Annotated[list[str], Form(max_length=MAX_CHOICES)] = [],  # noqa: B006
) -> Response:
    ensure_role(user, *PUBLISHER_ROLES)
    now = datetime.now(settings.tz)
    categories, districts = _clean(category), _clean(district)
    try:
        notice = notices.publish(
            session,
            article,
            actor=user.actor,
            today=now.date(),
            categories=categories,
            districts=districts,
        )
        session.commit()
    except notices.NoticeError as exc:
        session.rollback()
        context = _form_context(
            session, now, article=article, categories=categories, districts=districts
        )
        return render(request, "notices.html", {**context, "error": _error(exc)}, status=422)
    assert notice.id is not None
    if notice.recipients:
        try:
            notices.enqueue(connection, notice.id)
        except redis.RedisError:
            # Committed but not queued: the workers' maintenance queues it once Redis answers.
            log.warning("notice %s: not queued now (Redis); the workers will", notice.id)
    return RedirectResponse(f"/supervisor/notices/{notice.id}", status_code=303)


def _notice(session: Session, notice_id: int) -> tuple[Notice, Article] | None:
    notice = session.get(Notice, notice_id)
    if notice is None:
        return None
    article = session.get(Article, notice.article_id)
    assert article is not None
    return notice, article


@router.get("/supervisor/notices/{notice_id}", response_class=HTMLResponse)
def notice_page(
    request: Request, notice_id: int, session: SessionDep, user: Publisher
) -> HTMLResponse:
    found = _notice(session, notice_id)
    if found is None:
        return render(request, "error.html", {"message": "error.not_found"}, status=404)
    notice, article = found
    return render(
        request,
        "notice.html",
        {
            "notice": notice,
            "article": article,
            "state": notices.progress(session, notice_id),
            "names": queries.names(session),
            "poll": POLL_SECONDS,
        },
    )


@router.get("/supervisor/notices/{notice_id}/progress", response_class=HTMLResponse)
def notice_progress(
    request: Request, notice_id: int, session: SessionDep, user: Publisher
) -> HTMLResponse:
    found = _notice(session, notice_id)
    if found is None:
        return render(request, "error.html", {"message": "error.not_found"}, status=404)
    notice, _article = found
    return render(
        request,
        "notice_progress.html",
        {"notice": notice, "state": notices.progress(session, notice_id), "poll": POLL_SECONDS},
    )
