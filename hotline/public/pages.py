"""Public pages, no login, server-rendered (they work without JavaScript), zh by default and en
with ``?lang=en``: the service directory with each institution's five publics and published
performance, the knowledge base, and the one-time service evaluation."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

import redis
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from hotline.deps import RedisDep, SessionDep, SettingsDep
from hotline.web.render import language, render
from kb import articles
from kb.db import utcnow
from kb.models import Recognition
from kb.service import catalogue_service
from tickets import metrics
from tickets.errors import TicketError
from tickets.models import Role
from tickets.revisit import InvalidSurveyToken, outcome_codes
from tickets.service import Actor, ticket_service

log = logging.getLogger(__name__)

router = APIRouter(tags=["public pages"])

# Performance is published only once an institution has this many cases in the window.
MIN_PUBLISHED_CASES = 10
PERFORMANCE_WINDOW = timedelta(days=365)
# The published figures move slowly (a year's cases) and cost a scan of that year's tickets and
# revisits: computed for every institution at once, kept in Redis (shared by all web processes)
# for a few minutes.
PERFORMANCE_CACHE_KEY = "hotline:directory:performance:v1"
PERFORMANCE_TTL = timedelta(minutes=5)
SURVEY_ACTOR = Actor("web:evaluation", Role.system)
EVALUATION_OUTCOMES = ("met", "partly", "not_met")


@router.get("/kb", response_class=HTMLResponse)
def kb_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    q: str = "",
    category: str = "",
) -> Response:
    repo = catalogue_service.repository
    known = {c.key for c in repo.categories(session)}
    found = articles.search(
        session,
        q[:200] or None,
        category=category if category in known else None,
        today=datetime.now(settings.tz).date(),
    )
    return render(
        request,
        "public/kb.html",
        {
            "q": q,
            "category": category,
            "categories": repo.categories(session),
            "articles": found,
        },
    )


@router.get("/directory", response_class=HTMLResponse)
def directory(
    request: Request,
    session: SessionDep,
    category: str = "",
    district: str = "",
    recognition: str = "",
) -> Response:
    repo = catalogue_service.repository
    categories = repo.categories(session)
    districts = repo.districts(session)
    found = repo.institutions(
        session,
        category=category if category in {c.key for c in categories} else None,
        district=district if district in {d.code for d in districts} else None,
        active_only=True,
    )
    if recognition in {r.value for r in Recognition}:
        found = [i for i in found if i.recognition.value == recognition]
    return render(
        request,
        "public/directory.html",
        {
            "categories": categories,
            "districts": districts,
            "recognitions": [r.value for r in Recognition],
            "category": category,
            "district": district,
            "recognition": recognition,
            "institutions": found,
        },
    )


def published_performance(
    session: Session, connection: redis.Redis
) -> dict[int, metrics.GroupMeasures]:
    """Every institution's measures over the last 12 months, for those with enough cases to
    publish; from the cache while it lasts, else computed and cached. A Redis outage costs
    speed, not the page."""
    try:
        cached = connection.get(PERFORMANCE_CACHE_KEY)
    except redis.RedisError:
        log.warning("performance cache unavailable; computing", exc_info=True)
        cached = None
    if cached is not None:
        return {
            int(key): metrics.GroupMeasures(**values) for key, values in json.loads(cached).items()
        }
    until = utcnow()
    measured = metrics.compute(session, until - PERFORMANCE_WINDOW, until, by="institution")
    published = {
        key: found
        for key, found in measured.items()
        if isinstance(key, int) and found.volume >= MIN_PUBLISHED_CASES
    }
    payload = json.dumps({str(key): asdict(found) for key, found in published.items()})
    try:
        connection.set(PERFORMANCE_CACHE_KEY, payload, ex=PERFORMANCE_TTL)
    except redis.RedisError:
        log.warning("could not cache the published performance", exc_info=True)
    return published


@router.get("/directory/{code}", response_class=HTMLResponse)
def institution_page(
    request: Request, code: str, session: SessionDep, connection: RedisDep
) -> Response:
    repo = catalogue_service.repository
    institution = repo.institution_by_code(session, code)
    if institution is None or not institution.active:
        raise HTTPException(404, "no such institution")
    assert institution.id is not None
    lang = language(request)
    keys = repo.categories_of(session, [institution.id]).get(institution.id, [])
    names = []
    for key in keys:
        found = repo.category(session, key)
        if found is not None:
            names.append(found.name_zh if lang == "zh" else found.name_en)
    published = published_performance(session, connection).get(institution.id)
    return render(
        request,
        "public/institution.html",
        {
            "institution": institution,
            "name": institution.name_zh if lang == "zh" else institution.name_en,
            "category_names": names,
            "performance": published,
            "min_cases": MIN_PUBLISHED_CASES,
        },
    )


@router.get("/revisit/survey", include_in_schema=False)
def survey_link(token: str = "") -> Response:
    """The link in the revisit SMS (``tickets``' survey link) leads to the evaluation page."""
    return RedirectResponse(f"/evaluate/{quote(token, safe='')}", status_code=307)


def _outcomes(lang: str) -> list[tuple[str, str]]:
    codes = outcome_codes()
    return [(c, codes[c].zh if lang == "zh" else codes[c].en) for c in EVALUATION_OUTCOMES]


@router.get("/evaluate/{token}", response_class=HTMLResponse)
def evaluate_form(request: Request, token: str, session: SessionDep) -> Response:
    try:
        ticket, _row = ticket_service.redeem_survey(session, token)
    except InvalidSurveyToken:
        return render(request, "public/evaluate.html", {"state": "invalid"}, status=410)
    return render(
        request,
        "public/evaluate.html",
        {
            "state": "form",
            "token": token,
            "number": ticket.number,
            "outcomes": _outcomes(language(request)),
            "error": False,
        },
    )


@router.post("/evaluate/{token}", response_class=HTMLResponse)
def evaluate_submit(
    request: Request,
    token: str,
    session: SessionDep,
    outcome: Annotated[str, Form()] = "",
    satisfaction: Annotated[str, Form()] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        ticket, _row = ticket_service.redeem_survey(session, token)
    except InvalidSurveyToken:
        return render(request, "public/evaluate.html", {"state": "invalid"}, status=410)
    score = int(satisfaction) if satisfaction.isdigit() else 0
    if outcome not in EVALUATION_OUTCOMES or not 1 <= score <= 5:
        context = {
            "state": "form",
            "token": token,
            "number": ticket.number,
            "outcomes": _outcomes(language(request)),
            "error": True,
        }
        return render(request, "public/evaluate.html", context, status=422)
    try:
        ticket_service.record_revisit(
            session,
            ticket,
            actor=SURVEY_ACTOR,
            outcome=outcome,
            satisfaction=score,
            comment=comment.strip() or None,
        )
        session.commit()
    except TicketError:
        # Answered meanwhile (another tab, a revisit call): one rating per ticket.
        session.rollback()
        return render(request, "public/evaluate.html", {"state": "invalid"}, status=410)
    return render(request, "public/evaluate.html", {"state": "done"})
