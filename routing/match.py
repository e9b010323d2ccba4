"""Choosing who serves a classified need: the first, plain version over the database.

Nearest qualified, active institution with room, by great-circle distance from the firm's
district centroid; else the district window platform; else the municipal platform.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from kb.models import Institution, Tier
from kb.repository import catalogue_repository
from routing.decision import Candidate, Reason, RoutingDecision

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class NoMunicipalPlatform(RuntimeError):
    """The catalogue lacks the municipal platform, the network's last resort."""


def _district_code(place: Any) -> str | None:
    if place is None:
        return None
    if isinstance(place, str):
        return place
    return getattr(place, "district_code", None) or getattr(place, "code", None)


def match(
    session: Session,
    *,
    category: str,
    place: Any = None,
    lat: float | None = None,
    lon: float | None = None,
    cluster: str | None = None,
    exclude: Iterable[int] = (),
    at: datetime | None = None,
) -> RoutingDecision:
    excluded = set(exclude)
    district_code = _district_code(place)
    district = catalogue_repository.district(session, district_code) if district_code else None
    if lat is None or lon is None:
        if district is not None:
            lat, lon = district.lat, district.lon
    inputs = {"category": category, "district": district_code, "lat": lat, "lon": lon,
              "cluster": cluster, "exclude": sorted(excluded)}

    qualified = [
        inst
        for inst in catalogue_repository.institutions(session, category=category, active_only=True)
        if inst.id not in excluded and inst.open_cases < inst.capacity
    ]

    def distance(inst: Institution) -> float | None:
        if lat is None or lon is None:
            return None
        return haversine_km(lat, lon, inst.lat, inst.lon)

    services = sorted(
        (i for i in qualified if i.tier == Tier.institution),
        key=lambda i: (distance(i) or 0.0, i.id or 0),
    )
    reasons = [Reason("category", "服务类别", "category", category)]
    if services and lat is not None:
        chosen = services[0]
        reasons.append(Reason("distance", "距离最近", "nearest qualified", distance(chosen)))
    else:
        windows = [i for i in qualified if i.tier == Tier.district_window
                   and i.district_code == district_code]
        municipal = [i for i in qualified if i.tier == Tier.municipal]
        if windows:
            chosen = windows[0]
            reasons.append(Reason("district_window", "区县窗口平台兜底", "district window fallback"))
        elif municipal:
            chosen = municipal[0]
            reasons.append(Reason("municipal", "市级平台兜底", "municipal platform fallback"))
        else:
            raise NoMunicipalPlatform("no municipal platform in the catalogue")
    assert chosen.id is not None
    candidates = [
        Candidate(i.id or 0, i.code, i.name_zh, i.name_en, i.tier.value, distance(i), 0.0)
        for i in services[1:4]
    ]
    return RoutingDecision(
        institution_id=chosen.id,
        tier=chosen.tier.value,
        distance_km=distance(chosen),
        score=0.0,
        reasons=reasons,
        candidates=candidates,
        inputs=inputs,
    )
