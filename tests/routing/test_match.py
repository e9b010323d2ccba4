"""routing.match over the demo catalogue in a real database, one rule at a time.

Expectations come from an oracle written here from the rules (a plain scan of the database),
not from the engine's own index, so a wrong index, a wrong filter or a wrong order shows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from hotline.cli_routing import register
from hotline.settings import Settings
from kb.hours import parse_hours
from kb.models import District, Institution, Tier
from kb.repository import catalogue_repository
from kb.service import UnknownValue, catalogue_service, default_data_dir
from routing.decision import RoutingDecision
from routing.geo import haversine_km
from routing.index import catalogue_cache
from routing.match import RoutingPolicy, match
from routing.quality import QualityTable
from tests.conftest import statements_sent
from tickets.models import Channel, RoutingRecord
from tickets.service import Actor, ticket_service

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
RADIUS_KM = RoutingPolicy().radius_km
TERM_REASONS = ("distance", "load", "quality", "score")


@dataclass(frozen=True)
class Place:
    """Shaped like routing.locate's Place."""

    kind: str
    code: str
    district_code: str


@dataclass(frozen=True)
class Option:
    score: float
    code: str
    id: int
    distance: float


# -- the oracle ----------------------------------------------------------------------------------


def by_code(session: Session, code: str) -> Institution:
    found = catalogue_repository.institution_by_code(session, code)
    assert found is not None, code
    return found


def district(session: Session, code: str) -> District:
    found = catalogue_repository.district(session, code)
    assert found is not None, code
    return found


def oracle(
    session: Session,
    category: str,
    lat: float,
    lon: float,
    *,
    exclude: tuple[int, ...] = (),
    radius: float = RADIUS_KM,
) -> list[Option]:
    """Rules 1 and 3 by hand: every qualified, active service institution with room within the
    radius, best first under score = distance + 4 km × load (quality neutral)."""
    options = []
    for inst in catalogue_repository.institutions(
        session, category=category, tier=Tier.institution, active_only=True
    ):
        assert inst.id is not None
        if inst.open_cases >= inst.capacity or inst.id in exclude:
            continue
        distance = haversine_km(lat, lon, inst.lat, inst.lon)
        if distance <= radius:
            score = distance + 4.0 * inst.open_cases / inst.capacity
            options.append(Option(score, inst.code, inst.id, distance))
    return sorted(options, key=lambda o: (o.score, o.code))


def district_window(session: Session, district_code: str) -> Institution:
    windows = catalogue_repository.institutions(
        session, district=district_code, tier=Tier.district_window
    )
    assert len(windows) == 1
    return windows[0]


def municipal(session: Session) -> Institution:
    return catalogue_repository.institutions(session, tier=Tier.municipal)[0]


def set_open_cases(session: Session, institution_id: int, open_cases: int) -> None:
    session.execute(
        update(Institution)
        .where(col(Institution.id) == institution_id)
        .values(open_cases=open_cases)
    )


def codes(decision: RoutingDecision) -> list[str]:
    return [decision.institution_code] + [c.code for c in decision.candidates]


def reason_codes(decision: RoutingDecision) -> list[str]:
    return [r.code for r in decision.reasons]


def pairs(session: Session) -> Iterator[tuple[str, District, Option, Option]]:
    """(category, district, best, runner-up) over the whole demo catalogue."""
    for category in CATEGORIES:
        for place in catalogue_repository.districts(session):
            ranked = oracle(session, category, place.lat, place.lon)
            if len(ranked) >= 2:
                yield category, place, ranked[0], ranked[1]


# -- rules 1, 3 and 4: qualified, active, with room; nearest; fallbacks ------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_district_gets_the_nearest_qualified_institution_or_its_window(
    session: Session, category: str
) -> None:
    tiers = set()
    for place in catalogue_repository.districts(session):
        decision = match(session, category=category, place=place.code)
        expected = oracle(session, category, place.lat, place.lon)
        tiers.add(decision.tier)
        if expected:
            assert decision.tier == Tier.institution
            assert decision.institution_id == expected[0].id, place.code
            assert decision.distance_km == pytest.approx(expected[0].distance)
            assert decision.score == pytest.approx(expected[0].score)
            # The runners-up are the next best in order, then the window, then the city.
            want = [o.code for o in expected[1 : 1 + len(decision.candidates)]]
            assert [c.code for c in decision.candidates][: len(want)] == want
            assert len(decision.candidates) >= min(3, len(expected) + 1)
        else:
            window = district_window(session, place.code)
            assert decision.institution_id == window.id
            assert decision.tier == Tier.district_window
            assert "none_within_radius" in reason_codes(decision)
            assert [c.tier for c in decision.candidates] == [Tier.municipal]
        for term in TERM_REASONS:
            assert term in reason_codes(decision)
        assert decision.inputs["district"] == place.code
    assert Tier.institution in tiers


def test_chosen_institution_is_qualified(session: Session) -> None:
    for category in CATEGORIES:
        for place in catalogue_repository.districts(session):
            decision = match(session, category=category, place=place.code)
            qualified = catalogue_repository.categories_of(session, [decision.institution_id])
            assert category in qualified[decision.institution_id]
            for candidate in decision.candidates:
                theirs = catalogue_repository.categories_of(session, [candidate.institution_id])
                assert category in theirs[candidate.institution_id]


def test_inactive_institution_is_never_chosen_even_at_its_door(session: Session) -> None:
    inactive = [
        inst
        for inst in catalogue_repository.institutions(session, tier=Tier.institution)
        if not inst.active
    ]
    assert inactive, "the demo catalogue should have inactive institutions"
    for inst in inactive:
        assert inst.id is not None
        for category in catalogue_repository.categories_of(session, [inst.id])[inst.id]:
            decision = match(session, category=category, lat=inst.lat, lon=inst.lon)
            assert inst.code not in codes(decision)


def test_deactivation_is_seen_at_once(session: Session) -> None:
    """``active`` is read live, so even an edit that wrote no change record counts."""
    place = district(session, "jiangbei")
    first = match(session, category="legal", place="jiangbei")
    session.execute(
        update(Institution).where(col(Institution.id) == first.institution_id).values(active=False)
    )
    second = match(session, category="legal", place="jiangbei")
    assert second.institution_id != first.institution_id
    assert first.institution_code not in codes(second)
    assert second.institution_id == oracle(session, "legal", place.lat, place.lon)[0].id


def test_institution_at_capacity_is_skipped_and_loads_are_read_live(session: Session) -> None:
    first = match(session, category="financing", place="yuzhong")
    chosen = by_code(session, first.institution_code)
    set_open_cases(session, first.institution_id, chosen.capacity)
    second = match(session, category="financing", place="yuzhong")
    assert second.institution_id != first.institution_id
    assert first.institution_code not in codes(second)
    # One case freed: it has room again, though its load now counts against it.
    set_open_cases(session, first.institution_id, chosen.capacity - 1)
    third = match(session, category="financing", place="yuzhong")
    assert first.institution_code in codes(third)


def test_one_query_reads_the_live_state_of_everything_a_match_weighs(session: Session) -> None:
    """The fixed tiers (district window, city platform) and the nearest services together:
    loads are read live on every match, so each extra read is paid by every routed case."""
    match(session, category="financing", place="yubei")  # the catalogue is built and cached
    with statements_sent(session.get_bind().engine) as statements:
        decision = match(session, category="financing", place="yubei")
    live_reads = [s for s in statements if "open_cases" in s]
    assert len(live_reads) == 1, statements
    place = district(session, "yubei")
    assert decision.institution_id == oracle(session, "financing", place.lat, place.lon)[0].id


def test_load_weighs_in_among_neighbours(session: Session) -> None:
    found = next(
        (
            (category, place, best, runner_up)
            for category, place, best, runner_up in pairs(session)
            if runner_up.distance - best.distance < 1.0
            and by_code(session, best.code).capacity >= 10
        ),
        None,
    )
    assert found is not None, "the demo catalogue should have close neighbours"
    category, place, best, runner_up = found
    capacity = by_code(session, best.code).capacity
    set_open_cases(session, best.id, capacity - 1)
    decision = match(session, category=category, place=place.code)
    assert decision.institution_id == runner_up.id
    busy = next(c for c in decision.candidates if c.institution_id == best.id)
    assert busy.load == pytest.approx((capacity - 1) / capacity)
    assert busy.score == pytest.approx(best.distance + 4.0 * (capacity - 1) / capacity)


def test_distance_dominates_load_and_quality(session: Session) -> None:
    found = next(
        (
            (category, place, best, runner_up)
            for category, place, best, runner_up in pairs(session)
            if runner_up.distance - best.distance > 8.5
        ),
        None,
    )
    assert found is not None
    category, place, best, runner_up = found
    set_open_cases(session, best.id, by_code(session, best.code).capacity - 1)
    quality = QualityTable.from_ratings(
        {best.id: (1.0, 10_000), runner_up.id: (5.0, 10_000)}, prior_mean=3.0
    )
    decision = match(session, category=category, place=place.code, quality=quality)
    assert decision.institution_id == best.id
    assert decision.reason("quality") is not None
    assert decision.reason("quality").value == pytest.approx(1.0, abs=0.01)  # type: ignore[union-attr]


def test_quality_counts_only_with_enough_revisits(session: Session) -> None:
    found = next(
        (
            (category, place, best, runner_up)
            for category, place, best, runner_up in pairs(session)
            if 0.3 < runner_up.distance - best.distance < 1.5
        ),
        None,
    )
    assert found is not None
    category, place, best, runner_up = found

    def rated(count: int) -> RoutingDecision:
        ratings = {runner_up.id: (5.0, count), best.id: (3.0, count)}
        table = QualityTable.from_ratings(ratings, prior_mean=3.0)
        return match(session, category=category, place=place.code, quality=table)

    assert rated(1).institution_id == best.id  # one revisit is nearly neutral
    many = rated(500)
    assert many.institution_id == runner_up.id
    posterior = (10 * 3.0 + 500 * 5.0) / 510
    quality = many.reason("quality")
    assert quality is not None and quality.value == pytest.approx(posterior, abs=1e-3)
    assert "500" in quality.en
    assert many.score == pytest.approx(runner_up.distance - 2.0 * (posterior - 3.0) / 2.0)


def test_score_reasons_add_up(session: Session) -> None:
    decision = match(session, category="technology", place="shapingba")
    set_open_cases(session, decision.institution_id, 3)
    decision = match(session, category="technology", place="shapingba")
    values = {r.code: r.value for r in decision.reasons}
    assert isinstance(values["distance"], float) and isinstance(values["load"], float)
    capacity = by_code(session, decision.institution_code).capacity
    assert values["load"] == pytest.approx(3 / capacity, abs=1e-4)
    assert values["score"] == pytest.approx(values["distance"] + 4.0 * values["load"], abs=2e-3)
    assert "3/" in decision.reason("load").en  # type: ignore[union-attr]


def test_nothing_within_radius_goes_to_the_district_window(session: Session) -> None:
    place = district(session, "jiangbei")
    nearest = oracle(session, "legal", place.lat, place.lon)[0]
    decision = match(
        session, category="legal", place="jiangbei", policy=RoutingPolicy(radius_km=0.05)
    )
    assert decision.institution_id == district_window(session, "jiangbei").id
    assert decision.tier == Tier.district_window
    why = decision.reason("none_within_radius")
    assert why is not None and why.value == pytest.approx(nearest.distance, abs=1e-3)
    assert "district_window_fallback" in reason_codes(decision)
    assert [c.tier for c in decision.candidates] == [Tier.municipal]


def test_all_full_goes_to_the_district_window_then_the_city(session: Session) -> None:
    place = district(session, "jiangbei")
    nearby = oracle(session, "legal", place.lat, place.lon)
    assert len(nearby) >= 3
    for option in nearby:
        set_open_cases(session, option.id, by_code(session, option.code).capacity)
    decision = match(session, category="legal", place="jiangbei")
    window = district_window(session, "jiangbei")
    assert decision.institution_id == window.id
    full = decision.reason("all_full")
    assert full is not None and full.value == len(nearby)

    assert window.id is not None
    set_open_cases(session, window.id, window.capacity)
    decision = match(session, category="legal", place="jiangbei")
    assert decision.institution_id == municipal(session).id
    assert decision.tier == Tier.municipal
    assert "district_window_unavailable" in reason_codes(decision)
    assert "municipal_fallback" in reason_codes(decision)
    assert decision.candidates == []


def test_unknown_location_goes_to_the_municipal_platform(session: Session) -> None:
    decision = match(session, category="legal")
    assert decision.institution_id == municipal(session).id
    assert decision.tier == Tier.municipal
    assert decision.distance_km is None
    assert "location_unknown" in reason_codes(decision)
    assert "municipal_fallback" in reason_codes(decision)


def test_the_municipal_platform_cannot_be_excluded(session: Session) -> None:
    city = municipal(session)
    assert city.id is not None
    decision = match(session, category="legal", exclude=[city.id])
    assert decision.institution_id == city.id
    assert "municipal_not_excludable" in reason_codes(decision)


# -- rule 2: the cluster window first --------------------------------------------------------


def cluster_window_case(session: Session) -> tuple[Institution, str, str]:
    """A cluster window, a category it serves and one it does not."""
    for window in catalogue_repository.institutions(session, tier=Tier.cluster_window):
        assert window.id is not None
        served = set(catalogue_repository.categories_of(session, [window.id])[window.id])
        others = [c for c in CATEGORIES if c not in served]
        if served and others:
            return window, sorted(served)[0], others[0]
    raise AssertionError("the demo catalogue should have cluster windows")


def test_a_firm_in_a_cluster_is_served_by_its_cluster_window(session: Session) -> None:
    window, served, _ = cluster_window_case(session)
    assert window.cluster_code is not None
    decision = match(
        session, category=served, place=window.district_code, cluster=window.cluster_code
    )
    assert decision.institution_id == window.id
    assert decision.tier == Tier.cluster_window
    assert "cluster_window_first" in reason_codes(decision)
    assert len(decision.candidates) >= 3
    # The same firm outside the cluster is served by a service institution, by distance.
    cluster = catalogue_repository.cluster(session, window.cluster_code)
    assert cluster is not None
    outside = match(session, category=served, lat=cluster.lat, lon=cluster.lon)
    assert outside.tier != Tier.cluster_window
    # routing.locate's Place for a cluster carries the cluster itself.
    located = Place("cluster", window.cluster_code, window.district_code)
    assert match(session, category=served, place=located).institution_id == window.id


def test_cluster_window_not_qualified_passes_to_the_nearest(session: Session) -> None:
    window, _, not_served = cluster_window_case(session)
    assert window.cluster_code is not None
    cluster = catalogue_repository.cluster(session, window.cluster_code)
    assert cluster is not None
    decision = match(session, category=not_served, cluster=window.cluster_code)
    assert decision.tier != Tier.cluster_window
    unavailable = decision.reason("cluster_window_unavailable")
    assert unavailable is not None and unavailable.value == "not_qualified"
    expected = oracle(session, not_served, cluster.lat, cluster.lon)
    if expected:
        assert decision.institution_id == expected[0].id


def test_full_cluster_window_passes_to_the_nearest(session: Session) -> None:
    window, served, _ = cluster_window_case(session)
    assert window.id is not None
    set_open_cases(session, window.id, window.capacity)
    decision = match(session, category=served, cluster=window.cluster_code)
    assert decision.institution_id != window.id
    assert window.code not in codes(decision)
    unavailable = decision.reason("cluster_window_unavailable")
    assert unavailable is not None and unavailable.value == "full"


# -- rule 5: referral --------------------------------------------------------------------------


def test_referral_walks_down_the_candidates(session: Session) -> None:
    decision = match(session, category="management", place="yubei")
    assert len(decision.candidates) >= 3
    declined: list[int] = []
    current = decision
    for candidate in decision.candidates:
        declined.append(current.institution_id)
        current = match(session, category="management", place="yubei", exclude=declined)
        assert current.institution_id == candidate.institution_id
        assert current.score == pytest.approx(candidate.score)
        assert "excluded" in reason_codes(current)
    assert len(set(declined)) == len(declined)


# -- rule 6: who is open now -------------------------------------------------------------------


def is_open(session: Session, code: str, local: datetime) -> bool:
    return parse_hours(by_code(session, code).hours).is_open(local)


def test_at_only_chooses_institutions_open_then(session: Session) -> None:
    monday_morning = datetime(2026, 11, 30, 10, 0)  # naive: local time
    for category in CATEGORIES:
        decision = match(session, category=category, place="yuzhong", at=monday_morning)
        assert is_open(session, decision.institution_code, monday_morning)
        for candidate in decision.candidates:
            assert is_open(session, candidate.code, monday_morning)
        assert "open_now" in reason_codes(decision)


def test_at_skips_the_nearest_when_it_is_closed(session: Session) -> None:
    """Saturday afternoon: most institutions are closed; whoever is chosen must be open."""
    saturday = datetime(2026, 11, 28, 15, 0)
    changed = 0
    for category in CATEGORIES:
        for place in ("jiangbei", "yuzhong", "wanzhou", "shapingba"):
            anytime = match(session, category=category, place=place)
            now = match(session, category=category, place=place, at=saturday)
            assert is_open(session, now.institution_code, saturday)
            if not is_open(session, anytime.institution_code, saturday):
                changed += 1
                assert now.institution_id != anytime.institution_id
    assert changed > 0


def test_at_in_the_night_leaves_the_closed_city_platform(session: Session) -> None:
    night = datetime(2026, 11, 29, 18, 30, tzinfo=UTC)  # Monday 02:30 in Chongqing
    decision = match(session, category="legal", place="jiangbei", at=night)
    assert decision.institution_id == municipal(session).id
    assert "municipal_closed" in reason_codes(decision)
    assert decision.inputs["at"] == "2026-11-30T02:30:00+08:00"


def test_aware_and_naive_times_mean_the_same_moment(session: Session) -> None:
    local = match(session, category="market", place="nanan", at=datetime(2026, 12, 5, 9, 45))
    utc = match(
        session, category="market", place="nanan", at=datetime(2026, 12, 5, 1, 45, tzinfo=UTC)
    )
    assert local.to_dict() == utc.to_dict()


# -- rules 7 and 8: deterministic, stored with the ticket, consistent ----------------------------


def test_same_inputs_same_decision_and_json(session: Session) -> None:
    first = match(session, category="startup", place="beibei", exclude=[1])
    second = match(session, category="startup", place="beibei", exclude=[1])
    assert first.to_dict() == second.to_dict()
    assert json.loads(json.dumps(first.to_dict())) == first.to_dict()
    for reason in first.reasons:
        assert reason.zh and reason.en


def test_dispatch_stores_the_decision_and_the_next_match_sees_the_load(
    session: Session,
) -> None:
    decision = match(session, category="legal", place="jiangbei")
    ticket = ticket_service.open_ticket(
        session,
        actor=Actor("system:test"),
        channel=Channel.sms,
        caller_phone="+8613800138000",
        summary="合同纠纷",
        language="zh",
        category="legal",
        district_code="jiangbei",
    )
    ticket_service.dispatch(session, ticket, actor=Actor("system:test"), decision=decision)
    record = session.exec(select(RoutingRecord).where(RoutingRecord.ticket_id == ticket.id)).one()
    assert record.institution_id == decision.institution_id
    assert record.reasons == decision.to_dict()["reasons"]
    assert record.candidates == decision.to_dict()["candidates"]
    assert record.inputs["category"] == "legal"

    after = match(session, category="legal", place="jiangbei")
    capacity = by_code(session, decision.institution_code).capacity
    load = after.reason("load") if after.institution_id == decision.institution_id else None
    busy = (
        load.value
        if load is not None
        else next(c.load for c in after.candidates if c.institution_id == decision.institution_id)
    )
    assert busy == pytest.approx(1 / capacity, abs=1e-4)


def test_the_cached_catalogue_is_reused_until_the_catalogue_changes(
    session: Session, tmp_path: Path
) -> None:
    match(session, category="legal", place="jiangbei")
    cached = catalogue_cache.get(session)
    assert catalogue_cache.get(session) is cached

    # A new law firm opens at the district's centre: a catalogue load records the change.
    data = tmp_path / "data"
    shutil.copytree(default_data_dir(), data)
    institutions = data / "institutions.csv"
    rows = institutions.read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    place = district(session, "jiangbei")
    values = dict.fromkeys(header, "")
    values.update(
        code="inst-test-new",
        name_zh="新开律师事务所（测试）",
        name_en="New Law Firm (test)",
        tier="institution",
        district_code="jiangbei",
        categories="legal",
        capacity="10",
        hours="mon-fri 09:00-17:00",
        phone="+862360009999",
        lat=f"{place.lat:.4f}",
        lon=f"{place.lon:.4f}",
        recognition="none",
        active="true",
        demo="true",
    )
    rows.append(",".join(values[name] for name in header))
    institutions.write_text("\n".join(rows) + "\n", encoding="utf-8")
    catalogue_service.load(session, data, actor="test:routing")

    decision = match(session, category="legal", place="jiangbei")
    assert decision.institution_code == "inst-test-new"
    assert decision.distance_km == pytest.approx(0.0, abs=0.02)
    assert catalogue_cache.get(session) is not cached


# -- errors ------------------------------------------------------------------------------------


def test_unknown_names_raise_with_suggestions(session: Session) -> None:
    with pytest.raises(UnknownValue) as category:
        match(session, category="financin", place="jiangbei")
    assert category.value.what == "category" and "financing" in category.value.suggestions
    with pytest.raises(UnknownValue) as place:
        match(session, category="legal", place="jiangbe")
    assert place.value.what == "district" and "jiangbei" in place.value.suggestions
    with pytest.raises(UnknownValue) as cluster:
        match(session, category="legal", cluster="liangjian")
    assert cluster.value.what == "cluster" and "liangjiang" in cluster.value.suggestions
    with pytest.raises(ValueError, match="both lat and lon"):
        match(session, category="legal", lat=29.5)


def test_coordinates_alone_infer_the_district(session: Session) -> None:
    place = district(session, "wanzhou")
    decision = match(session, category="legal", lat=place.lat + 0.001, lon=place.lon)
    assert decision.inputs["district"] == "wanzhou"
    assert "district_inferred" in reason_codes(decision)


# -- HTTP --------------------------------------------------------------------------------------


def test_api_route_by_district_name(client: TestClient) -> None:
    response = client.get("/api/route", params={"category": "legal", "district": "江北区"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tier"] == "institution"
    assert body["inputs"]["district"] == "jiangbei"
    assert len(body["candidates"]) >= 3
    assert {"distance", "load", "quality", "score"} <= {r["code"] for r in body["reasons"]}
    assert all(r["zh"] and r["en"] for r in body["reasons"])

    declined = [body["institution_id"], body["candidates"][0]["institution_id"]]
    again = client.get(
        "/api/route", params={"category": "legal", "district": "jiangbei", "exclude": declined}
    )
    assert again.status_code == 200
    assert again.json()["institution_id"] == body["candidates"][1]["institution_id"]
    assert again.json()["inputs"]["exclude"] == sorted(declined)


def test_api_route_by_coordinates_cluster_and_time(client: TestClient) -> None:
    response = client.get(
        "/api/route",
        params={"category": "financing", "cluster": "两江新区", "at": "2026-11-30T10:00:00+08:00"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tier"] == "cluster_window"
    by_point = client.get("/api/route", params={"category": "legal", "lat": 29.56, "lon": 106.57})
    assert by_point.status_code == 200
    assert by_point.json()["inputs"]["location"] == "coordinates"


@pytest.mark.parametrize(
    ("params", "field", "suggestion"),
    [
        ({"category": "finanse", "district": "jiangbei"}, "category", "financing"),
        ({"category": "legal", "district": "jiangbe"}, "district", "jiangbei"),
        ({"category": "legal", "cluster": "liangjian"}, "cluster", "liangjiang"),
    ],
)
def test_api_route_unknown_names_are_422_with_suggestions(
    client: TestClient, params: dict[str, str], field: str, suggestion: str
) -> None:
    response = client.get("/api/route", params=params)
    assert response.status_code == 422
    [error] = response.json()["detail"]  # FastAPI's validation shape, as documented
    assert error["loc"] == ["query", field]
    assert suggestion in error["ctx"]["suggestions"]
    assert suggestion in error["msg"]


@pytest.mark.parametrize(
    "params",
    [
        {"category": "legal"},
        {"category": "legal", "lat": "29.5"},
        {"category": "legal", "lat": "95", "lon": "106"},
        {"category": "legal", "district": "jiangbei", "at": "yesterday"},
        {"category": "legal", "district": "jiangbei", "exclude": "one"},
    ],
)
def test_api_route_bad_requests_are_422(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/api/route", params=params).status_code == 422


# -- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, clean_db: object, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HOTLINE_REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(settings.var_dir))
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the ``hotline`` app, which the lead wires."""

    register(app)
    return app


def test_cli_route_json(cli: typer.Typer, session: Session) -> None:
    result = CliRunner().invoke(
        cli, ["route", "--category", "legal", "--district", "江北区", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    expected = match(session, category="legal", place="jiangbei")
    session.rollback()
    assert body["institution_id"] == expected.institution_id
    assert [c["code"] for c in body["candidates"]] == [c.code for c in expected.candidates]


def test_cli_route_text_with_exclusion(cli: typer.Typer, session: Session) -> None:
    first = match(session, category="market", lat=29.56, lon=106.57)
    session.rollback()  # SQLite: free the database for the command's own transaction
    args = ["--category", "market", "--lat", "29.56", "--lon", "106.57"]
    result = CliRunner().invoke(cli, ["route", *args, "--exclude", str(first.institution_id)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(first.candidates[0].code)
    assert "why:" in result.output and "next best:" in result.output
    assert "excluded (referral)" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--category", "finanse", "--district", "jiangbei"], "financing"),
        (["--category", "legal", "--district", "jiangbe"], "jiangbei"),
        (["--category", "legal"], "--district"),
        (["--category", "legal", "--lat", "29.5"], "--lon"),
        (["--category", "legal", "--district", "jiangbei", "--at", "soon"], "ISO"),
    ],
)
def test_cli_route_errors_exit_non_zero(cli: typer.Typer, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(cli, ["route", *args])
    assert result.exit_code == 2
    assert "error:" in result.output and needle in result.output
