"""``GET /api/kb``: search the knowledge base (policy notices and FAQs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from hotline.api_errors import Message, described, unknown_value
from hotline.deps import SessionDep, SettingsDep
from kb import articles
from kb.articles import ArticlePublic
from kb.service import UnknownValue, catalogue_service

router = APIRouter(prefix="/api", tags=["knowledge base"])


@router.get("/kb", response_model=list[ArticlePublic])
def search_kb(
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: str | None = None,
    district: str | None = None,
    include_expired: bool = True,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ArticlePublic]:
    try:
        if category:
            category = catalogue_service.require_category(session, category).key
        if district:
            district = catalogue_service.require_district(session, district).code
    except UnknownValue as exc:
        raise unknown_value(exc) from None
    today = datetime.now(settings.tz).date()
    return articles.search(
        session,
        q,
        category=category or None,
        district=district or None,
        include_expired=include_expired,
        today=today,
        limit=limit,
    )


@router.get(
    "/kb/{slug}",
    response_model=ArticlePublic,
    responses=described(404, Message, "No article with that slug"),
)
def get_article(slug: str, session: SessionDep, settings: SettingsDep) -> ArticlePublic:
    found = articles.get_article(session, slug)
    if found is None:
        raise HTTPException(404, f"no article {slug!r}")
    return articles.to_public(found, datetime.now(settings.tz).date())
