"""Properties of routing.match over generated in-memory catalogues (no database).

Each example draws a small catalogue over Chongqing's real districts (institutions bunched
around district centres, some sharing a spot so ties happen, random qualifications, loads,
hours and activity) and a request, then checks the rules against a scan written here."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.hours import parse_hours
from kb.service import default_data_dir
from routing.geo import haversine_km
from routing.index import Catalogue, InstitutionEntry
from routing.match import RoutingPolicy, match, match_by_scan
from routing.quality import QualityTable

CATEGORIES = (
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
)
with (default_data_dir() / "districts.csv").open(encoding="utf-8") as handle:
    DISTRICTS: list[dict[str, Any]] = [
        {"code": r["code"], "name_en": r["name_en"], "lat": float(r["lat"]), "lon": float(r["lon"])}
        for r in csv.DictReader(handle)
    ]
HOURS = (
    "24h",
    "mon-fri 09:00-17:00",
    "mon-fri 09:00-12:00,14:00-17:30; sat 09:00-12:00",
    "sat,sun 10:00-16:00",
    "mon,wed,fri 08:30-12:00",
)
MOMENTS = (
    datetime(2026, 11, 30, 10, 0),  # Monday morning
    datetime(2026, 11, 28, 11, 0),  # Saturday morning
    datetime(2026, 12, 2, 13, 0),  # Wednesday lunch
    datetime(2026, 11, 29, 3, 0),  # Sunday night
)
LOAD_KM, QUALITY_KM = 4.0, 2.0
CODE_PRIME = 997
LEGAL = frozenset({"legal"})


@dataclass(frozen=True)
class World:
    catalogue: Catalogue
    rows: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    region: list[dict[str, Any]]


@dataclass(frozen=True)
class Request:
    category: str
    place: str | None
    lat: float | None
    lon: float | None
    cluster: str | None
    exclude: tuple[int, ...]
    at: datetime | None
    quality: QualityTable
    policy: RoutingPolicy

    def kwargs(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "place": self.place,
            "lat": self.lat,
            "lon": self.lon,
            "cluster": self.cluster,
            "exclude": self.exclude,
            "at": self.at,
            "quality": self.quality,
            "policy": self.policy,
        }


# Strategies built once: building one per draw costs far more than drawing from it.
A_DISTRICT = st.sampled_from(DISTRICTS)
OFFSET = st.floats(-1.0, 1.0, allow_nan=False)
# Loads: mostly some room, sometimes full, now and then a capacity of zero.
CAPACITY = st.sampled_from([0, 1, 2, 3, 4, 4])
OPEN_CASES = st.sampled_from([0, 0, 0, 1, 2, 3, 4])
ACTIVE = st.sampled_from([True, True, True, False])
SOME_HOURS = st.sampled_from(HOURS)
QUALIFICATIONS = st.sets(st.sampled_from(CATEGORIES), min_size=1, max_size=4)
REGIONS = st.lists(A_DISTRICT, min_size=1, max_size=3, unique_by=lambda d: d["code"])
WINDOWED = st.sampled_from([True, True, True, False])
PLACE_KINDS = st.sampled_from(["district"] * 3 + ["point"] * 3 + ["cluster"] * 3 + ["nowhere"])
RATED = st.sampled_from([True, False, False, False])
SATISFACTION = st.floats(1, 5)
REVISITS = st.integers(0, 300)


def near(draw: st.DrawFn, centre: dict[str, Any], spread: float) -> tuple[float, float]:
    dlat, dlon = draw(OFFSET) * spread, draw(OFFSET) * spread
    return round(centre["lat"] + dlat, 4), round(centre["lon"] + dlon, 4)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Most of the action in a region of one to three districts, so that requests there meet
    crowds, ties, full and closed institutions, cluster and district windows."""
    region = draw(REGIONS)
    in_region = st.sampled_from(region)
    clusters = []
    for number in range(draw(st.integers(0, 3))):
        home = draw(in_region)
        lat, lon = near(draw, home, 0.1)
        clusters.append(
            {
                "code": f"cluster-{number}",
                "name_en": f"Park {number}",
                "district_code": home["code"],
                "lat": lat,
                "lon": lon,
            }
        )
    size = draw(st.sampled_from([30, 60, 10, 0]))
    # Codes in an order unrelated to ids, so that ties must be broken by code, not by id:
    # multiplying by a unit modulo a prime permutes the ids.
    scramble = draw(st.integers(1, CODE_PRIME - 1))
    # Institutions sharing a spot make ties (and crowds that test the search's stopping rule).
    spots = [near(draw, draw(in_region), 0.1) for _ in range(2)]
    a_spot = st.sampled_from(spots)
    rows: list[dict[str, Any]] = []

    def add(tier: str, district_code: str, lat: float, lon: float, **extra: Any) -> None:
        capacity = draw(CAPACITY)
        rows.append(
            {
                "id": len(rows) + 1,
                "code": f"i-{(len(rows) + 1) * scramble % CODE_PRIME:04d}",
                "name_zh": "机构",
                "name_en": "Institution",
                "tier": tier,
                "district_code": district_code,
                "cluster_code": None,
                "lat": lat,
                "lon": lon,
                "capacity": capacity,
                "open_cases": min(capacity, draw(OPEN_CASES)),
                "active": draw(ACTIVE),
                "hours": draw(SOME_HOURS),
                "categories": sorted(draw(QUALIFICATIONS)),
                **extra,
            }
        )

    for _ in range(size):
        home = draw(st.one_of(in_region, in_region, in_region, A_DISTRICT))
        lat, lon = draw(a_spot) if draw(st.booleans()) else near(draw, home, 0.2)
        add("institution", home["code"], lat, lon)
    for cluster in clusters:
        if draw(WINDOWED):
            home_code, lat, lon = cluster["district_code"], cluster["lat"], cluster["lon"]
            add("cluster_window", home_code, lat, lon, cluster_code=cluster["code"])
    # Most districts of the region have a window platform; firms elsewhere fall through.
    for home in region:
        if draw(WINDOWED):
            add("district_window", home["code"], home["lat"], home["lon"], categories=CATEGORIES)
    centre = next(d for d in DISTRICTS if d["code"] == "yuzhong")
    add("municipal", "yuzhong", centre["lat"], centre["lon"], categories=CATEGORIES)
    catalogue = Catalogue.from_rows(
        categories=CATEGORIES, districts=DISTRICTS, clusters=clusters, institutions=rows
    )
    return World(catalogue, rows, clusters, region)


@st.composite
def requests(draw: st.DrawFn, world: World) -> Request:
    place: str | None = None
    lat: float | None = None
    lon: float | None = None
    cluster: str | None = None
    in_region = st.sampled_from(world.region)
    where = draw(PLACE_KINDS)
    if where == "district":
        place = draw(in_region)["code"]
    elif where == "point" or (where == "cluster" and not world.clusters):
        lat, lon = near(draw, draw(in_region), 0.1)
    elif where == "cluster":
        chosen = draw(st.sampled_from(world.clusters))
        cluster = chosen["code"]
        place = chosen["district_code"] if draw(st.booleans()) else None
    ids = [row["id"] for row in world.rows]
    exclude = tuple(draw(st.sets(st.sampled_from(ids), max_size=4))) if ids else ()
    ratings = {row["id"]: (draw(SATISFACTION), draw(REVISITS)) for row in world.rows if draw(RATED)}
    return Request(
        category=draw(st.sampled_from(CATEGORIES)),
        place=place,
        lat=lat,
        lon=lon,
        cluster=cluster,
        exclude=exclude,
        at=draw(st.none() | st.sampled_from(MOMENTS)),
        quality=QualityTable.from_ratings(ratings),
        policy=RoutingPolicy(
            radius_km=draw(st.sampled_from([8.0, 30.0, 30.0, 120.0])),
            candidates=draw(st.sampled_from([1, 2, 5])),
        ),
    )


# -- an oracle from the rules ------------------------------------------------------------------


def firm_location(world: World, request: Request) -> tuple[float, float] | None:
    if request.lat is not None and request.lon is not None:
        return request.lat, request.lon
    if request.cluster is not None:
        cluster = next(c for c in world.clusters if c["code"] == request.cluster)
        return cluster["lat"], cluster["lon"]
    if request.place is not None:
        home = next(d for d in DISTRICTS if d["code"] == request.place)
        return home["lat"], home["lon"]
    return None


def eligible(row: dict[str, Any], request: Request) -> bool:
    """Rule 1 (and 5, 6): qualified, active, with room, not excluded, open when asked."""
    open_now = request.at is None or parse_hours(row["hours"]).is_open(request.at)
    return (
        request.category in row["categories"]
        and row["active"]
        and row["open_cases"] < row["capacity"]
        and row["id"] not in request.exclude
        and open_now
    )


def score(row: dict[str, Any], request: Request, distance: float) -> float:
    load = row["open_cases"] / row["capacity"]
    return distance + LOAD_KM * load - QUALITY_KM * request.quality.quality(row["id"])


def best_services(world: World, request: Request) -> list[tuple[float, str, dict[str, Any]]]:
    location = firm_location(world, request)
    if location is None:
        return []
    found = []
    for row in world.rows:
        if row["tier"] != "institution" or not eligible(row, request):
            continue
        distance = haversine_km(*location, row["lat"], row["lon"])
        if distance <= request.policy.radius_km:
            found.append((score(row, request, distance), row["code"], row))
    return sorted(found, key=lambda item: item[:2])


def row_of(world: World, institution_id: int) -> dict[str, Any]:
    return next(row for row in world.rows if row["id"] == institution_id)


# -- properties --------------------------------------------------------------------------------

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_the_index_decides_exactly_as_a_scan_of_everything(data: st.DataObject) -> None:
    world = data.draw(worlds())
    request = data.draw(requests(world))
    assert match(world.catalogue, **request.kwargs()) == match_by_scan(
        world.catalogue, **request.kwargs()
    )


@SETTINGS
@given(data=st.data())
def test_the_choice_follows_the_rules(data: st.DataObject) -> None:
    world = data.draw(worlds())
    request = data.draw(requests(world))
    decision = match(world.catalogue, **request.kwargs())
    chosen = row_of(world, decision.institution_id)
    services = best_services(world, request)
    cluster_windows = [
        row
        for row in world.rows
        if row["tier"] == "cluster_window"
        and request.cluster is not None
        and row["cluster_code"] == request.cluster
        and eligible(row, request)
    ]
    assert decision.tier == chosen["tier"]

    if cluster_windows:  # rule 2
        assert chosen in cluster_windows
    elif services:  # rule 3: nothing beats it under the documented score
        best_score, best_code, best_row = services[0]
        assert chosen is best_row
        assert decision.score == best_score
        for other_score, other_code, _row in services[1:]:
            assert (other_score, other_code) > (decision.score, chosen["code"])
    elif chosen["tier"] == "district_window":  # rule 4
        assert eligible(chosen, request)
        assert chosen["district_code"] == decision.inputs["district"]
    else:
        assert chosen["tier"] == "municipal"
        windows = [
            row
            for row in world.rows
            if row["tier"] == "district_window"
            and row["district_code"] == decision.inputs["district"]
            and eligible(row, request)
        ]
        assert not windows or firm_location(world, request) is None

    # The runners-up: each could serve, ranked, none excluded, no repeats.
    ranked_services = [c for c in decision.candidates if c.tier == "institution"]
    assert [c.code for c in ranked_services] == [
        code for _score, code, _row in services if code != chosen["code"]
    ][: len(ranked_services)]
    seen = {decision.institution_id}
    for candidate in decision.candidates:
        assert candidate.institution_id not in seen
        seen.add(candidate.institution_id)
        if candidate.tier != "municipal":
            assert eligible(row_of(world, candidate.institution_id), request)


@SETTINGS
@given(data=st.data())
def test_referral_picks_the_first_candidate(data: st.DataObject) -> None:
    world = data.draw(worlds())
    request = data.draw(requests(world))
    decision = match(world.catalogue, **request.kwargs())
    if decision.tier == "municipal" or not decision.candidates:
        return
    again = dict(request.kwargs(), exclude=(*request.exclude, decision.institution_id))
    referred = match(world.catalogue, **again)
    assert referred.institution_id == decision.candidates[0].institution_id
    assert referred.score == decision.candidates[0].score


@SETTINGS
@given(data=st.data())
def test_loads_change_the_choice_only_through_the_load_table(data: st.DataObject) -> None:
    """The in-memory update hook: filling the chosen institution moves the case elsewhere."""
    world = data.draw(worlds())
    request = data.draw(requests(world))
    decision = match(world.catalogue, **request.kwargs())
    if decision.tier == "municipal":
        return
    row = row_of(world, decision.institution_id)
    world.catalogue.set_open_cases(decision.institution_id, row["capacity"])
    after = match(world.catalogue, **request.kwargs())
    assert after.institution_id != decision.institution_id
    world.catalogue.set_open_cases(decision.institution_id, row["open_cases"])
    assert match(world.catalogue, **request.kwargs()) == decision


@st.composite
def crowds(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Points bunched around a few centres, as institutions are around district seats."""
    centres = draw(st.lists(A_DISTRICT, min_size=1, max_size=4))
    spread = draw(st.sampled_from([0.01, 0.1, 0.5, 2.0]))
    size = draw(st.integers(0, 300))
    return [near(draw, centres[i % len(centres)], spread) for i in range(size)]


@settings(max_examples=200, deadline=None)
@given(
    points=crowds(),
    query=st.tuples(st.floats(27.0, 33.0), st.floats(104.0, 111.0)),
    max_km=st.sampled_from([0.5, 5.0, 30.0, math.inf]),
)
def test_nearest_yields_what_a_sort_yields(
    points: list[tuple[float, float]], query: tuple[float, float], max_km: float
) -> None:
    entries = [
        InstitutionEntry(
            i, f"c{i:03d}", "", "", "institution", "yuzhong", None, lat, lon, LEGAL, None
        )
        for i, (lat, lon) in enumerate(points, 1)
    ]
    catalogue = Catalogue(categories=[], districts=[], clusters=[], institutions=entries)
    by_index = [(d, e.code) for d, e in catalogue.nearest("legal", *query, max_km)]
    by_scan = [(d, e.code) for d, e in catalogue.scan("legal", *query, max_km)]
    assert by_index == by_scan


@given(
    mean=st.floats(1, 5),
    count=st.integers(0, 10_000),
    others=st.dictionaries(st.integers(2, 50), st.tuples(st.floats(1, 5), st.integers(0, 50))),
)
def test_quality_is_bounded_and_neutral_without_revisits(
    mean: float, count: int, others: dict[int, tuple[float, int]]
) -> None:
    table = QualityTable.from_ratings({1: (mean, count), **others})
    assert -1.0 <= table.quality(1) <= 1.0
    assert table.quality(999) == 0.0
    if count == 0:
        assert table.quality(1) == 0.0
    more = QualityTable.from_ratings(
        {1: (mean, count + 100), **others}, prior_mean=table.prior_mean
    )
    # More revisits pull the estimate towards the institution's own mean.
    assert abs(more.posterior(1) - mean) <= abs(table.posterior(1) - mean) + 1e-9


# -- examples a random catalogue may rarely draw -----------------------------------------------


def tiny_world(*rows: dict[str, Any]) -> Catalogue:
    """A few institutions in Yuzhong plus the municipal platform."""
    centre = next(d for d in DISTRICTS if d["code"] == "yuzhong")
    city = {
        "id": 999,
        "code": "muni",
        "tier": "municipal",
        "district_code": "yuzhong",
        "lat": centre["lat"],
        "lon": centre["lon"],
        "capacity": 1000,
        "hours": "24h",
        "categories": CATEGORIES,
    }
    defaults = {"tier": "institution", "district_code": "yuzhong", "capacity": 10}
    return Catalogue.from_rows(
        categories=CATEGORIES,
        districts=DISTRICTS,
        institutions=[city, *({**defaults, "hours": "24h", **row} for row in rows)],
    )


def test_ties_break_by_code_not_by_id() -> None:
    spot = {"lat": 29.56, "lon": 106.57, "categories": ["legal"]}
    world = tiny_world({"id": 1, "code": "inst-b", **spot}, {"id": 2, "code": "inst-a", **spot})
    decision = match(world, category="legal", lat=29.57, lon=106.57)
    assert decision.institution_code == "inst-a"
    assert [c.code for c in decision.candidates] == ["inst-b", "muni"]


def test_a_farther_better_rated_institution_is_not_cut_off_by_the_search() -> None:
    """The search may stop early only once even the best quality could not rank a farther
    institution among the best; here the third-nearest ranks second."""

    def east_of_firm(km: float) -> float:
        return 106.57 + km / (111.195 * math.cos(math.radians(29.56)))

    world = tiny_world(
        {"id": 1, "code": "near", "lat": 29.56, "lon": east_of_firm(1.0), "categories": ["legal"]},
        {"id": 2, "code": "mid", "lat": 29.56, "lon": east_of_firm(2.0), "categories": ["legal"]},
        {"id": 3, "code": "far", "lat": 29.56, "lon": east_of_firm(3.5), "categories": ["legal"]},
    )
    quality = QualityTable.from_ratings({3: (5.0, 100_000)}, prior_mean=3.0)
    policy = RoutingPolicy(candidates=1)
    decision = match(world, category="legal", lat=29.56, lon=106.57, quality=quality, policy=policy)
    assert decision.institution_code == "near"
    assert [c.code for c in decision.candidates] == ["far"]
