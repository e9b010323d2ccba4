"""Choosing who serves a classified need: the right institution, near the firm, with room.

The network is tried in a fixed order of tiers; the first that can serve takes the case:

1. **cluster window** — a firm inside an industrial cluster whose window platform is qualified
   for the category (and active, under capacity, open when ``at`` is given) is served there;
2. **institution** — else the service institution with the lowest *score* among those
   qualified, active and under capacity within ``radius_km`` of the firm;
3. **district window** — else the firm's district window platform;
4. **municipal** — else the municipal platform, which is always qualified; it is also the answer
   when the firm's location is unknown. A decision is never empty.

The score is an *effective distance* in kilometres; lower is better::

    score = distance_km + LOAD_KM · load − QUALITY_KM · quality

    load    = open_cases / capacity                       in [0, 1)
    quality = clamp((posterior − prior) / 2, −1, 1)       in [−1, 1], 0 = neutral
    posterior = (W · prior + n · mean) / (W + n)          Bayesian mean satisfaction (1..5)

with ``LOAD_KM = 4`` and ``QUALITY_KM = 2`` (:class:`RoutingPolicy`), and ``W = 10`` revisits'
worth of prior (routing.quality). Distance dominates: between two institutions, load and quality
together make at most ``LOAD_KM + 2 · QUALITY_KM`` = 8 km of difference, so one more than 8 km
nearer always wins, while among neighbours the emptier and better-rated one is preferred. The firm's
location is its coordinates when known, else its cluster's centroid, else its district's.
Ties break by institution code. Every term of the chosen institution's score is a reason.

``candidates`` are the next options in exactly this order (the rest of the cluster windows,
the best-scored institutions, the district window, the municipal platform): the first is what
a referral (``exclude=[chosen]``) would pick.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from kb.service import catalogue_service
from routing.decision import Candidate, Reason, RoutingDecision
from routing.geo import haversine_km
from routing.index import (
    Catalogue,
    ClusterEntry,
    DatabaseLiveStates,
    DistrictEntry,
    InstitutionEntry,
    LiveState,
    LiveStates,
    MemoryLiveStates,
    StaleCatalogue,
    catalogue_cache,
)
from routing.quality import NEUTRAL, QualityTable, current_table

__all__ = ["NoMunicipalPlatform", "RoutingPolicy", "haversine_km", "match", "match_by_scan"]

Search = Callable[[Catalogue, str, float, float, float], Iterator[tuple[float, InstitutionEntry]]]


class NoMunicipalPlatform(RuntimeError):
    """The catalogue lacks the municipal platform, the network's last resort."""


@dataclass(frozen=True)
class RoutingPolicy:
    radius_km: float = 30.0
    load_km: float = 4.0  # what a full institution adds to its distance
    quality_km: float = 2.0  # what the best (worst) measured quality takes off (adds)
    candidates: int = 5  # how many runners-up a decision lists
    timezone: str = "Asia/Shanghai"  # office hours are local time

    def score(self, distance_km: float, load: float, quality: float) -> float:
        return distance_km + self.load_km * load - self.quality_km * quality


DEFAULT_POLICY = RoutingPolicy()

# Why an option was passed over; the words go into reasons.
REFUSALS: dict[str, tuple[str, str]] = {
    "excluded": ("已被排除（转介）", "excluded (referred on)"),
    "not_qualified": ("不具备该类别服务资格", "not qualified for the category"),
    "inactive": ("已停用", "inactive"),
    "full": ("已满负荷", "at capacity"),
    "closed": ("当前不在办公时间", "closed at this time"),
}


@dataclass(frozen=True)
class _Option:
    entry: InstitutionEntry
    distance_km: float | None
    state: LiveState
    load: float
    quality: float
    satisfaction: float
    revisits: int
    score: float

    @property
    def rank(self) -> tuple[float, str]:
        return self.score, self.entry.code


@dataclass(frozen=True)
class _Request:
    category: str
    place: Any
    lat: float | None
    lon: float | None
    cluster: str | None
    exclude: tuple[int, ...]
    at: datetime | None
    policy: RoutingPolicy


@dataclass(frozen=True)
class _Where:
    district: DistrictEntry | None
    cluster: ClusterEntry | None
    lat: float | None
    lon: float | None
    source: str  # coordinates | cluster | district | unknown
    district_inferred: bool = False


@dataclass
class _Census:
    """What the search for service institutions met within the radius."""

    options: list[_Option]
    seen: int
    refused: Counter[str]


def match(
    source: Session | Catalogue,
    *,
    category: str,
    place: Any = None,
    lat: float | None = None,
    lon: float | None = None,
    cluster: str | None = None,
    exclude: Iterable[int] = (),
    at: datetime | None = None,
    quality: QualityTable | None = None,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> RoutingDecision:
    """Who serves ``category`` for a firm at ``place`` (a district code, or an object with
    ``district_code`` and optionally ``kind == "cluster"`` and ``code``) or at ``lat``/``lon``.

    ``source`` is a database session (the catalogue is then cached per database and live loads
    are read from it) or a :class:`Catalogue` (its own load table is used). ``exclude`` lists
    institution ids that declined; ``at`` restricts the choice to institutions open then (naive
    datetimes are local time). ``quality`` defaults to the registered provider's table with a
    session, neutral otherwise. Raises ``kb.service.UnknownValue`` for an unknown category,
    district or cluster and ``ValueError`` for half or impossible coordinates.
    """
    request = _Request(category, place, lat, lon, cluster, tuple(exclude), at, policy)
    states: LiveStates
    if isinstance(source, Catalogue):
        states = MemoryLiveStates(source)
        return _decide(source, states, quality or NEUTRAL, Catalogue.nearest, request)
    table = quality or current_table(source)
    try:
        catalogue = catalogue_cache.get(source)
        states = DatabaseLiveStates(source, catalogue)
        return _decide(catalogue, states, table, Catalogue.nearest, request)
    except StaleCatalogue:
        catalogue_cache.invalidate(source)
        catalogue = catalogue_cache.get(source)
        states = DatabaseLiveStates(source, catalogue)
        return _decide(catalogue, states, table, Catalogue.nearest, request)


def match_named(
    session: Session,
    *,
    category: str,
    district: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    cluster: str | None = None,
    exclude: Iterable[int] = (),
    at: datetime | None = None,
    timezone: str = DEFAULT_POLICY.timezone,
) -> RoutingDecision:
    """:func:`match` for callers that name things as people do (the API, the CLI): the category
    by key and the district by code, Chinese, short or English name. Raises
    ``kb.service.UnknownValue`` (with suggestions) for a name it does not know."""
    category_key = catalogue_service.require_category(session, category).key
    district_code = catalogue_service.require_district(session, district).code if district else None
    return match(
        session,
        category=category_key,
        place=district_code,
        lat=lat,
        lon=lon,
        cluster=cluster,
        exclude=exclude,
        at=at,
        policy=RoutingPolicy(timezone=timezone),
    )


def match_by_scan(
    catalogue: Catalogue,
    *,
    category: str,
    place: Any = None,
    lat: float | None = None,
    lon: float | None = None,
    cluster: str | None = None,
    exclude: Iterable[int] = (),
    at: datetime | None = None,
    quality: QualityTable | None = None,
    policy: RoutingPolicy = DEFAULT_POLICY,
) -> RoutingDecision:
    """:func:`match` reading every institution instead of the spatial index: the reference the
    benchmark and the property tests hold the index to."""
    request = _Request(category, place, lat, lon, cluster, tuple(exclude), at, policy)
    return _decide(
        catalogue, MemoryLiveStates(catalogue), quality or NEUTRAL, Catalogue.scan, request
    )


# -- the decision --------------------------------------------------------------------------------


def _decide(
    catalogue: Catalogue,
    states: LiveStates,
    table: QualityTable,
    search: Search,
    request: _Request,
) -> RoutingDecision:
    policy = request.policy
    wanted = catalogue.require_category(request.category)
    where = _locate(catalogue, request.place, request.lat, request.lon, request.cluster)
    excluded = frozenset(int(i) for i in request.exclude)
    local = _local_time(request.at, policy.timezone)
    if not catalogue.municipal:
        raise NoMunicipalPlatform("the catalogue has no municipal platform")

    known = where.source != "unknown"
    cluster_windows = catalogue.cluster_windows.get(where.cluster.code, []) if where.cluster else []
    district_windows = (
        catalogue.district_windows.get(where.district.code, []) if where.district and known else []
    )
    # The fixed tiers' live state is read with the first of the search's own reads (or the
    # cluster window's, when there is one).
    states.want(e.id for e in [*cluster_windows, *district_windows, *catalogue.municipal])

    def judge(entry: InstitutionEntry, distance: float | None) -> _Option | str:
        return _judge(entry, distance, wanted.key, excluded, local, states, table, policy)

    reasons = [
        Reason(
            "category",
            f"服务类别：{wanted.name_zh}",
            f"category: {wanted.name_en or wanted.key}",
            wanted.key,
        ),
        _location_reason(where),
    ]
    if where.district_inferred and where.district is not None:
        reasons.append(
            Reason(
                "district_inferred",
                f"按坐标推定所在区县：{where.district.name_zh}（最近的区县中心）",
                f"district inferred from the coordinates: {where.district.name_en} "
                "(nearest district centre)",
                where.district.code,
            )
        )
    if excluded:
        codes = ", ".join(
            catalogue.institutions[i].code if i in catalogue.institutions else str(i)
            for i in sorted(excluded)
        )
        reasons.append(
            Reason("excluded", f"已排除（转介）：{codes}", f"excluded (referral): {codes}", codes)
        )
    if local is not None:
        stamp = local.strftime("%Y-%m-%d %H:%M")
        reasons.append(
            Reason(
                "open_now",
                f"仅考虑 {stamp}（{policy.timezone}）正在办公的机构",
                f"only institutions open at {local:%a} {stamp} ({policy.timezone}) are considered",
                local.isoformat(),
            )
        )

    # 1. the cluster window
    ranked: list[_Option] = []
    window_refusals: list[tuple[InstitutionEntry, str]] = []
    for entry in cluster_windows:
        verdict = judge(entry, _distance(where, entry))
        if isinstance(verdict, _Option):
            ranked.append(verdict)
        else:
            window_refusals.append((entry, verdict))
    ranked.sort(key=lambda o: o.rank)
    tier_reasons: list[Reason] = []
    if where.cluster is not None:
        tier_reasons.append(_cluster_reason(where.cluster, ranked, window_refusals))

    # 2. the best-scored service institutions within the radius
    census = _Census([], 0, Counter())
    if known:
        assert where.lat is not None and where.lon is not None
        census = _search_services(
            catalogue,
            search,
            states,
            judge,
            wanted.key,
            where.lat,
            where.lon,
            excluded,
            need=policy.candidates + 1,
            policy=policy,
            table=table,
        )
        if not ranked:
            tier_reasons.append(
                _services_reason(catalogue, search, wanted.key, where, census, policy)
            )
        ranked.extend(census.options)
    else:
        tier_reasons.append(
            Reason(
                "location_unknown",
                "企业位置未知，无法就近派单",
                "the firm's location is unknown, so no institution can be chosen by distance",
            )
        )

    # 3. the district window
    if known:
        district_options = []
        district_refusals: list[tuple[InstitutionEntry, str]] = []
        for entry in district_windows:
            verdict = judge(entry, _distance(where, entry))
            if isinstance(verdict, _Option):
                district_options.append(verdict)
            else:
                district_refusals.append((entry, verdict))
        district_options.sort(key=lambda o: o.rank)
        if not ranked:
            tier_reasons.append(_district_reason(where, district_options, district_refusals))
        ranked.extend(district_options)

    # 4. the municipal platform: always qualified, never excluded, taken even when full
    municipal_entry = next(
        (e for e in catalogue.municipal if (s := states.get(e.id)) is not None and s.active),
        catalogue.municipal[0],
    )
    municipal_distance = _distance(where, municipal_entry)
    municipal = _evaluate(municipal_entry, municipal_distance, states, table, policy)
    if not ranked:
        tier_reasons.append(
            Reason(
                "municipal_fallback",
                "由市级平台兜底（市级平台始终具备资格）",
                "the municipal platform takes the case (it is always qualified)",
                municipal_entry.code,
            )
        )
        if municipal_entry.id in excluded:
            tier_reasons.append(
                Reason(
                    "municipal_not_excludable",
                    "市级平台是最后一道保障，不能排除",
                    "the municipal platform is the last resort and cannot be excluded",
                )
            )
        if local is not None and not _is_open(municipal_entry, local):
            tier_reasons.append(
                Reason(
                    "municipal_closed",
                    "市级平台当前不在办公时间，开放后回电",
                    "the municipal platform is closed now; it calls back when it opens",
                )
            )
    ranked.append(municipal)

    chosen = ranked[0]
    reasons.extend(tier_reasons)
    reasons.extend(_term_reasons(chosen, policy))
    inputs = {
        "category": wanted.key,
        "district": where.district.code if where.district else None,
        "cluster": where.cluster.code if where.cluster else None,
        "lat": where.lat,
        "lon": where.lon,
        "location": where.source,
        "exclude": sorted(excluded),
        "at": local.isoformat() if local is not None else None,
        "radius_km": policy.radius_km,
    }
    return RoutingDecision(
        institution_id=chosen.entry.id,
        tier=chosen.entry.tier,
        distance_km=chosen.distance_km,
        score=chosen.score,
        reasons=reasons,
        candidates=[_candidate(o) for o in ranked[1 : 1 + policy.candidates]],
        inputs=inputs,
        institution_code=chosen.entry.code,
        name_zh=chosen.entry.name_zh,
        name_en=chosen.entry.name_en,
    )


def _search_services(
    catalogue: Catalogue,
    search: Search,
    states: LiveStates,
    judge: Callable[[InstitutionEntry, float | None], _Option | str],
    category: str,
    lat: float,
    lon: float,
    excluded: frozenset[int],
    *,
    need: int,
    policy: RoutingPolicy,
    table: QualityTable,
) -> _Census:
    """The ``need`` best options, reading institutions nearest first and stopping once the next
    one's distance, less the largest quality bonus anyone has, already exceeds the ``need``-th
    best score: load only adds, so no farther institution can rank among them."""
    best: list[_Option] = []
    keys: list[tuple[float, str]] = []
    refused: Counter[str] = Counter()
    seen = 0
    pending: list[tuple[float, InstitutionEntry]] = []
    batch = states.batch

    def settle() -> None:
        states.fetch(entry.id for _distance, entry in pending)
        for distance, entry in pending:
            verdict = judge(entry, distance)
            if isinstance(verdict, str):
                refused[verdict] += 1
                continue
            at = bisect.bisect(keys, verdict.rank)
            keys.insert(at, verdict.rank)
            best.insert(at, verdict)
            del keys[need:], best[need:]
        pending.clear()

    most_quality_takes_off = policy.quality_km * table.best_quality
    for distance, entry in search(catalogue, category, lat, lon, policy.radius_km):
        if len(best) >= need and distance - most_quality_takes_off > best[-1].score:
            break
        seen += 1
        if entry.id in excluded:  # no need to read its live state
            refused["excluded"] += 1
            continue
        pending.append((distance, entry))
        if len(pending) >= batch:
            settle()
    settle()
    return _Census(best, seen, refused)


def _judge(
    entry: InstitutionEntry,
    distance: float | None,
    category: str,
    excluded: frozenset[int],
    local: datetime | None,
    states: LiveStates,
    table: QualityTable,
    policy: RoutingPolicy,
) -> _Option | str:
    """The option, or the code of the reason it cannot serve now."""
    if entry.id in excluded:
        return "excluded"
    if not entry.qualified_for(category):
        return "not_qualified"
    state = states.get(entry.id)
    if state is None or not state.active:
        return "inactive"
    if not state.has_room:
        return "full"
    if local is not None and not _is_open(entry, local):
        return "closed"
    return _evaluate(entry, distance, states, table, policy)


def _evaluate(
    entry: InstitutionEntry,
    distance: float | None,
    states: LiveStates,
    table: QualityTable,
    policy: RoutingPolicy,
) -> _Option:
    state = states.get(entry.id) or LiveState(0, 0, False)
    load = state.load
    quality = table.quality(entry.id)
    return _Option(
        entry=entry,
        distance_km=distance,
        state=state,
        load=load,
        quality=quality,
        satisfaction=table.posterior(entry.id),
        revisits=table.revisits(entry.id),
        score=policy.score(distance or 0.0, load, quality),
    )


def _is_open(entry: InstitutionEntry, local: datetime) -> bool:
    return entry.hours is not None and entry.hours.is_open(local)


def _distance(where: _Where, entry: InstitutionEntry) -> float | None:
    if where.lat is None or where.lon is None:
        return None
    return haversine_km(where.lat, where.lon, entry.lat, entry.lon)


def _local_time(at: datetime | None, timezone: str) -> datetime | None:
    if at is None:
        return None
    zone = ZoneInfo(timezone)
    return at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)


def _locate(
    catalogue: Catalogue, place: Any, lat: float | None, lon: float | None, cluster: str | None
) -> _Where:
    district_code: str | None = None
    cluster_code = cluster
    if isinstance(place, str):
        district_code = place
    elif place is not None:
        kind = getattr(place, "kind", None)
        district_code = getattr(place, "district_code", None)
        if kind == "cluster" and cluster_code is None:
            cluster_code = getattr(place, "code", None)
        elif kind == "district" and district_code is None:
            district_code = getattr(place, "code", None)
    found_cluster = catalogue.require_cluster(cluster_code) if cluster_code else None
    district = catalogue.require_district(district_code) if district_code else None
    if district is None and found_cluster is not None:
        district = catalogue.districts.get(found_cluster.district_code)

    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    if lat is not None and lon is not None:
        on_earth = -90 <= lat <= 90 and -180 <= lon <= 180
        if not (math.isfinite(lat) and math.isfinite(lon) and on_earth):
            raise ValueError(f"no such place: lat {lat}, lon {lon}")
        if district is None:
            nearest = catalogue.nearest_district(lat, lon)
            return _Where(nearest, found_cluster, lat, lon, "coordinates", district_inferred=True)
        return _Where(district, found_cluster, lat, lon, "coordinates")
    if found_cluster is not None:
        return _Where(district, found_cluster, found_cluster.lat, found_cluster.lon, "cluster")
    if district is not None:
        return _Where(district, None, district.lat, district.lon, "district")
    return _Where(None, None, None, None, "unknown")


# -- reasons -------------------------------------------------------------------------------------


def _location_reason(where: _Where) -> Reason:
    if where.source == "coordinates":
        text = f"{where.lat:.4f}, {where.lon:.4f}"
        return Reason("location", f"企业坐标 {text}", f"the firm's coordinates {text}", text)
    if where.source == "cluster" and where.cluster is not None:
        return Reason(
            "location",
            f"企业位置取{where.cluster.name_zh}中心",
            f"the firm's location taken as the centre of {where.cluster.name_en}",
            f"cluster:{where.cluster.code}",
        )
    if where.source == "district" and where.district is not None:
        return Reason(
            "location",
            f"企业位置取{where.district.name_zh}中心",
            f"the firm's location taken as the centre of {where.district.name_en}",
            f"district:{where.district.code}",
        )
    return Reason("location", "企业位置未知", "the firm's location is unknown", None)


def _refusal_text(refusals: list[tuple[InstitutionEntry, str]]) -> tuple[str, str, str]:
    zh = "；".join(f"{e.name_zh}{REFUSALS[code][0]}" for e, code in refusals)
    en = "; ".join(f"{e.name_en} is {REFUSALS[code][1]}" for e, code in refusals)
    return zh, en, ",".join(code for _e, code in refusals)


def _cluster_reason(
    cluster: ClusterEntry, options: list[_Option], refusals: list[tuple[InstitutionEntry, str]]
) -> Reason:
    if options:
        return Reason(
            "cluster_window_first",
            f"企业位于{cluster.name_zh}，由园区窗口平台优先服务",
            f"the firm is in {cluster.name_en}; its cluster window platform serves it first",
            cluster.code,
        )
    if not refusals:
        return Reason(
            "no_cluster_window",
            f"{cluster.name_zh}没有窗口服务平台",
            f"{cluster.name_en} has no window platform",
            cluster.code,
        )
    zh, en, codes = _refusal_text(refusals)
    return Reason(
        "cluster_window_unavailable",
        f"园区窗口平台不能受理：{zh}",
        f"the cluster window cannot take it: {en}",
        codes,
    )


def _services_reason(
    catalogue: Catalogue,
    search: Search,
    category: str,
    where: _Where,
    census: _Census,
    policy: RoutingPolicy,
) -> Reason:
    radius = policy.radius_km
    if census.options:
        return Reason(
            "nearest_qualified",
            f"{radius:g} 公里内综合得分最优的合格服务机构",
            f"the best-scored qualified institution within {radius:g} km",
            radius,
        )
    # Inactive institutions are not qualified (rule 1): they are not counted as refusing.
    counts = Counter({code: n for code, n in census.refused.items() if code != "inactive"})
    available = census.seen - census.refused["inactive"]
    if available:
        zh = "，".join(f"{n} 家{REFUSALS[code][0]}" for code, n in sorted(counts.items()))
        en = ", ".join(f"{n} {REFUSALS[code][1]}" for code, n in sorted(counts.items()))
        code = "all_full" if set(counts) == {"full"} else "none_available"
        return Reason(
            code,
            f"{radius:g} 公里内 {available} 家合格服务机构均不能受理（{zh}）",
            f"none of the {available} qualified institutions within {radius:g} km can take it "
            f"({en})",
            available,
        )
    assert where.lat is not None and where.lon is not None
    beyond = next(iter(search(catalogue, category, where.lat, where.lon, math.inf)), None)
    if beyond is None:
        return Reason(
            "none_qualified",
            "没有具备该类别资格的服务机构",
            "no service institution is qualified for the category",
            None,
        )
    distance, entry = beyond
    return Reason(
        "none_within_radius",
        f"{radius:g} 公里内没有合格服务机构（最近的{entry.name_zh}在 {distance:.1f} 公里外）",
        f"no qualified institution within {radius:g} km (the nearest, {entry.name_en}, is "
        f"{distance:.1f} km away)",
        round(distance, 3),
    )


def _district_reason(
    where: _Where, options: list[_Option], refusals: list[tuple[InstitutionEntry, str]]
) -> Reason:
    assert where.district is not None
    district = where.district
    if options:
        return Reason(
            "district_window_fallback",
            f"由企业所在区县（{district.name_zh}）窗口平台兜底",
            f"the window platform of the firm's district ({district.name_en}) takes it",
            district.code,
        )
    if not refusals:
        return Reason(
            "no_district_window",
            f"{district.name_zh}没有窗口服务平台",
            f"{district.name_en} has no window platform",
            district.code,
        )
    zh, en, codes = _refusal_text(refusals)
    return Reason(
        "district_window_unavailable",
        f"区县窗口平台不能受理：{zh}",
        f"the district window cannot take it: {en}",
        codes,
    )


def _term_reasons(chosen: _Option, policy: RoutingPolicy) -> list[Reason]:
    """One reason per term of the score, so the record shows how the number was made."""
    state = chosen.state
    load_km = policy.load_km * chosen.load
    quality_km = policy.quality_km * chosen.quality
    distance = chosen.distance_km
    if distance is None:
        distance_reason = Reason("distance", "距离未知（按 0 计）", "distance unknown (taken as 0)")
    else:
        distance_reason = Reason(
            "distance",
            f"距离 {distance:.1f} 公里",
            f"distance {distance:.1f} km",
            round(distance, 3),
        )
    quality_shift = -quality_km + 0.0  # + 0.0 turns -0.0 into 0.0 for display
    if chosen.revisits:
        quality_reason = Reason(
            "quality",
            f"回访满意度 {chosen.satisfaction:.2f}/5（{chosen.revisits} 次回访，"
            f"{quality_shift:+.2f} 公里）",
            f"revisit satisfaction {chosen.satisfaction:.2f}/5 from {chosen.revisits} revisits "
            f"({quality_shift:+.2f} km)",
            round(chosen.satisfaction, 3),
        )
    else:
        quality_reason = Reason(
            "quality",
            "尚无回访记录，服务质量按中性计（±0 公里）",
            "no revisit yet, so quality counts as neutral (±0 km)",
            round(chosen.satisfaction, 3),
        )
    return [
        distance_reason,
        Reason(
            "load",
            f"当前负荷 {state.open_cases}/{state.capacity}（+{load_km:.2f} 公里）",
            f"current load {state.open_cases}/{state.capacity} (+{load_km:.2f} km)",
            round(chosen.load, 4),
        ),
        quality_reason,
        Reason(
            "score",
            f"综合得分 = 距离 + {policy.load_km:g}×负荷 − {policy.quality_km:g}×质量 = "
            f"{chosen.score:.2f}（越小越优）",
            f"score = distance + {policy.load_km:g} km × load − {policy.quality_km:g} km × "
            f"quality = {chosen.score:.2f} km (lower is better)",
            round(chosen.score, 3),
        ),
    ]


def _candidate(option: _Option) -> Candidate:
    entry = option.entry
    return Candidate(
        institution_id=entry.id,
        code=entry.code,
        name_zh=entry.name_zh,
        name_en=entry.name_en,
        tier=entry.tier,
        distance_km=option.distance_km,
        score=option.score,
        load=option.load,
        satisfaction=option.satisfaction,
    )
