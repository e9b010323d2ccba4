"""Read-only catalogue API and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from hotline.api_errors import Message, described, unknown_value
from hotline.deps import RedisDep, SessionDep
from kb.models import Tier
from kb.schemas import CategoryPublic, DistrictPublic, InstitutionPublic
from kb.service import UnknownValue, catalogue_service

router = APIRouter(prefix="/api", tags=["catalogue"])
health_router = APIRouter(tags=["health"])
# Ids are 32-bit on PostgreSQL; a larger one names nothing, and SQLite cannot even bind it.
ID_MAX = 2**31 - 1


@router.get("/categories", response_model=list[CategoryPublic])
def list_categories(session: SessionDep) -> list[CategoryPublic]:
    return [
        CategoryPublic.model_validate(c, from_attributes=True)
        for c in catalogue_service.repository.categories(session)
    ]


@router.get("/districts", response_model=list[DistrictPublic])
def list_districts(session: SessionDep) -> list[DistrictPublic]:
    return [
        DistrictPublic.model_validate(d, from_attributes=True)
        for d in catalogue_service.repository.districts(session)
    ]


@router.get("/institutions", response_model=list[InstitutionPublic])
def list_institutions(
    session: SessionDep,
    category: str | None = None,
    district: str | None = None,
    tier: Tier | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[InstitutionPublic]:
    try:
        if category is not None:
            category = catalogue_service.require_category(session, category).key
        if district is not None:
            district = catalogue_service.require_district(session, district).code
    except UnknownValue as exc:
        raise unknown_value(exc) from None
    found = catalogue_service.repository.institutions(
        session, category=category, district=district, tier=tier, limit=limit, offset=offset
    )
    return catalogue_service.public(session, found)


@router.get(
    "/institutions/{institution_id}",
    response_model=InstitutionPublic,
    responses=described(404, Message, "No institution with that id"),
)
def get_institution(
    institution_id: Annotated[int, Path(ge=1, le=ID_MAX)], session: SessionDep
) -> InstitutionPublic:
    found = catalogue_service.repository.institution(session, institution_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no institution with id {institution_id}")
    return catalogue_service.public(session, [found])[0]


@health_router.get(
    "/healthz",
    responses={503: {"description": "The database or Redis is unreachable (same body)"}},
)
def healthz(session: SessionDep, redis: RedisDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status_code=200 if healthy else 503,
    )
