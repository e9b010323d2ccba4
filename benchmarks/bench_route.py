"""How fast routing.match decides, with the catalogue already in memory, as it grows.

Generates catalogues of 1,000, 10,000 and 100,000 service institutions spread over the 38
districts of kb/data/districts.csv (bunched around each district's centre, as real ones are),
plus a window platform per district and the municipal platform, then times ``routing.match``
(the spatial index) and ``routing.match_by_scan`` (the same decision from a scan of every
institution) on the same random requests. One figure per line::

    route_10000_median_ms 0.12

Run: ``.venv/bin/python benchmarks/bench_route.py`` (``--quick`` for fewer requests).
"""

from __future__ import annotations

import csv
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.decision import RoutingDecision  # noqa: E402
from routing.index import Catalogue  # noqa: E402
from routing.match import match, match_by_scan  # noqa: E402

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
HOURS = (
    "mon-fri 09:00-12:00,14:00-17:30",
    "mon-fri 09:30-18:30",
    "mon-sat 09:00-18:00",
    "mon-fri 09:00-17:00; sat,sun 09:30-16:00",
)
SIZES = (1_000, 10_000, 100_000)
SEED = 20261128


def districts() -> list[dict[str, Any]]:
    with (ROOT / "kb" / "data" / "districts.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{"code": r["code"], "lat": float(r["lat"]), "lon": float(r["lon"])} for r in rows]


def generate(size: int, places: list[dict[str, Any]], rng: random.Random) -> Catalogue:
    rows: list[dict[str, Any]] = []

    def add(tier: str, home: dict[str, Any], lat: float, lon: float, **extra: Any) -> None:
        capacity = rng.randint(5, 100)
        rows.append(
            {
                "id": len(rows) + 1,
                "code": f"{tier[:4]}-{len(rows) + 1:06d}",
                "tier": tier,
                "district_code": home["code"],
                "lat": lat,
                "lon": lon,
                "capacity": capacity,
                # About one in twenty is full; the rest carry some load.
                "open_cases": capacity if rng.random() < 0.05 else rng.randint(0, capacity - 1),
                "active": rng.random() > 0.03,
                "hours": rng.choice(HOURS),
                "categories": rng.sample(CATEGORIES, rng.randint(1, 3)),
                **extra,
            }
        )

    for _ in range(size):
        home = rng.choice(places)
        add("institution", home, rng.gauss(home["lat"], 0.08), rng.gauss(home["lon"], 0.08))
    for home in places:
        add("district_window", home, home["lat"], home["lon"], categories=CATEGORIES)
    centre = next(p for p in places if p["code"] == "yuzhong")
    add("municipal", centre, centre["lat"], centre["lon"], categories=CATEGORIES)
    return Catalogue.from_rows(categories=CATEGORIES, districts=places, institutions=rows)


def requests(places: list[dict[str, Any]], count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Half by district, half by coordinates near a district's centre."""
    made = []
    for _ in range(count):
        home = rng.choice(places)
        request: dict[str, Any] = {"category": rng.choice(CATEGORIES)}
        if rng.random() < 0.5:
            request["place"] = home["code"]
        else:
            request["lat"] = rng.gauss(home["lat"], 0.05)
            request["lon"] = rng.gauss(home["lon"], 0.05)
        made.append(request)
    return made


def timings_ms(
    decide: Callable[..., RoutingDecision], catalogue: Catalogue, work: list[dict[str, Any]]
) -> list[float]:
    for request in work[:20]:  # warm up
        decide(catalogue, **request)
    found = []
    for request in work:
        start = time.perf_counter_ns()
        decide(catalogue, **request)
        found.append((time.perf_counter_ns() - start) / 1e6)
    return found


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    rng = random.Random(SEED)
    places = districts()
    medians: dict[int, float] = {}
    for size in SIZES:
        start = time.perf_counter()
        catalogue = generate(size, places, rng)
        print(f"build_{size}_ms {(time.perf_counter() - start) * 1000:.0f}")
        work = requests(places, 500 if quick else 2000, rng)
        indexed = timings_ms(match, catalogue, work)
        # A full scan of 100,000 institutions takes long: fewer requests suffice for its median.
        scan_count = max(20, min(len(work), 2_000_000 // size // (4 if quick else 1)))
        scanned = timings_ms(match_by_scan, catalogue, work[:scan_count])
        for request in work[:scan_count]:  # the two must agree, or the figures mean nothing
            assert match(catalogue, **request) == match_by_scan(catalogue, **request), request
        medians[size] = statistics.median(indexed)
        print(f"route_{size}_median_ms {medians[size]:.3f}")
        print(f"route_{size}_p99_ms {p99(indexed):.3f}")
        print(f"scan_{size}_median_ms {statistics.median(scanned):.3f}")
        print(f"scan_{size}_p99_ms {p99(scanned):.3f}")
        print(f"scan_over_route_{size}_median {statistics.median(scanned) / medians[size]:.1f}")
    first, last = SIZES[0], SIZES[-1]
    # Linear growth would make this last / first = 100; the index should stay far below.
    print(f"route_growth_{last}_over_{first} {medians[last] / medians[first]:.2f}")


if __name__ == "__main__":
    main()
