"""``GET /api/route``: who would serve a need, and why (routing.match over HTTP)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from hotline.api_errors import Message, described, invalid, unknown_value
from hotline.deps import SessionDep, SettingsDep
from kb.service import UnknownValue
from routing.classify import classify
from routing.match import NoMunicipalPlatform, match_named

router = APIRouter(prefix="/api", tags=["routing"])


class ReasonOut(BaseModel):
    code: str
    zh: str
    en: str
    value: float | str | None = None


class CandidateOut(BaseModel):
    institution_id: int
    code: str
    name_zh: str
    name_en: str
    tier: str
    distance_km: float | None
    score: float
    load: float | None = None
    satisfaction: float | None = None


class RouteOut(BaseModel):
    institution_id: int
    institution_code: str
    name_zh: str
    name_en: str
    tier: str
    distance_km: float | None
    score: float
    reasons: list[ReasonOut]
    candidates: list[CandidateOut]
    inputs: dict[str, Any]


@router.get(
    "/route",
    response_model=RouteOut,
    responses=described(503, Message, "The catalogue has no municipal platform to fall back on"),
)
def route(
    session: SessionDep,
    settings: SettingsDep,
    category: Annotated[str, Query(description="Category key, e.g. financing")],
    district: Annotated[str | None, Query(description="District code or name")] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    cluster: Annotated[str | None, Query(description="Industrial cluster code or name")] = None,
    exclude: Annotated[list[int] | None, Query(description="Institution ids that declined")] = None,
    at: Annotated[
        datetime | None, Query(description="Only institutions open then (ISO; naive = local)")
    ] = None,
) -> RouteOut:
    """The institution that should serve the need, the reasons, and the next best."""
    if (lat is None) != (lon is None):
        missing = "lat" if lat is None else "lon"
        raise invalid(
            ("query", missing), f"{missing} is missing: give both lat and lon, or neither"
        )
    if district is None and lat is None and cluster is None:
        raise invalid(("query", "district"), "give a district, lat and lon, or a cluster")
    try:
        decision = match_named(
            session,
            category=category,
            district=district,
            lat=lat,
            lon=lon,
            cluster=cluster,
            exclude=exclude or (),
            at=at,
            timezone=settings.timezone,
        )
    except UnknownValue as exc:
        raise unknown_value(exc) from None
    except ValueError as exc:
        raise invalid(("query", "lat"), str(exc), value=lat) from None
    except NoMunicipalPlatform as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    return RouteOut.model_validate(decision.to_dict())


class ClassifyIn(BaseModel):
    text: str = Field(max_length=20_000, description="What the caller said or wrote")


class ClassificationOut(BaseModel):
    category: str | None
    confidence: float
    alternatives: list[list[str | float]] = Field(
        description="Every category as [key, score], best first"
    )
    evidence: list[str]
    complaint: bool
    language: str


@router.post("/classify", response_model=ClassificationOut)
def classify_text(body: ClassifyIn) -> ClassificationOut:
    """The category of a need, with confidence, alternatives and the words that decided it."""
    return ClassificationOut.model_validate(classify(body.text).to_dict())
