"""The catalogue in memory, shaped for routing: who is where, qualified for what, indexed by place.

A :class:`Catalogue` holds every district, cluster and institution as small frozen records and,
per category, a lat/lon grid of the service institutions qualified for it. ``nearest`` walks the
grid in rings outwards from the firm and yields institutions in order of great-circle distance,
stopping as soon as a lower bound proves every cell not yet read is farther than asked; a match
therefore reads a handful of cells, not the whole catalogue.

Loads (``open_cases``) change on every dispatch and ``capacity``/``active`` may be edited, so
they are *live state*, read through a :class:`LiveStates` source rather than trusted from the
index: :class:`MemoryLiveStates` reads them from the catalogue's own mutable load table (kept up
to date by whoever owns the catalogue, through :meth:`Catalogue.set_open_cases`), while
:class:`DatabaseLiveStates` reads them from the database for the few institutions a match
actually weighs.

With a database, :data:`catalogue_cache` keeps one built catalogue per database URL together
with a *catalogue version*, read on every call with one cheap statement: the highest id and row
count of ``catalogue_change`` (every load or edit of the catalogue writes there) plus the row
counts and highest ids of the institution, qualification, district and cluster tables (which
also catch rows written without a change record). When the version differs from the cached
one the catalogue is rebuilt. As a last guard, the live-state read checks that every id still
carries the code the index knows; a mismatch means the index is stale and the match is redone
on a fresh build.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlmodel import Session, col

from kb.hours import HoursError, WeeklyHours, parse_hours
from kb.models import CatalogueChange, Category, Cluster, District, Institution, Tier
from kb.models import InstitutionCategory as Qualification
from kb.service import UnknownValue
from routing.geo import haversine_km, min_km_for_latitude_gap, min_km_for_longitude_gap

# Cells are sized so that, spread evenly over the category's bounding box, there would be one
# institution per two cells. Institutions bunch around district centres, so the cells there hold
# several; measured (benchmarks/bench_route.py), smaller cells only add empty-cell reads and
# larger ones make the search compute distances it then discards.
TARGET_PER_CELL = 0.5
MIN_CELL_DEGREES = 0.005
MAX_CELL_DEGREES = 1.0


@dataclass(frozen=True, slots=True)
class CategoryEntry:
    key: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class DistrictEntry:
    code: str
    name_zh: str
    name_en: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class ClusterEntry:
    code: str
    name_zh: str
    name_en: str
    district_code: str
    lat: float
    lon: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InstitutionEntry:
    """What routing knows of an institution, apart from its live state (see :class:`LiveState`)."""

    id: int
    code: str
    name_zh: str
    name_en: str
    tier: str
    district_code: str
    cluster_code: str | None
    lat: float
    lon: float
    categories: frozenset[str]
    hours: WeeklyHours | None  # None: unreadable hours, never counted as open
    hours_spec: str = ""

    def qualified_for(self, category: str) -> bool:
        return category in self.categories


@dataclass(frozen=True, slots=True)
class LiveState:
    """The fields that change while the catalogue stands still."""

    open_cases: int
    capacity: int
    active: bool

    @property
    def has_room(self) -> bool:
        return self.open_cases < self.capacity

    @property
    def load(self) -> float:
        """Share of capacity in use, 0..1 (1 when the capacity is 0)."""
        return min(1.0, self.open_cases / self.capacity) if self.capacity > 0 else 1.0


class StaleCatalogue(RuntimeError):
    """The database no longer matches the in-memory catalogue; rebuild and retry."""


class LiveStates(Protocol):
    batch: int  # how many institutions a read should ask for at once

    def fetch(self, ids: Iterable[int]) -> None:
        """Make the live state of these institutions available to :meth:`get` (a hint)."""

    def want(self, ids: Iterable[int]) -> None:
        """These will be asked for too: read them with the next read (a hint)."""

    def get(self, institution_id: int) -> LiveState | None: ...


# -- the grid --------------------------------------------------------------------------------


class _Grid:
    """Institutions bucketed by ``(floor(lat / cell), floor(lon / cell))``.

    Assumes no catalogue straddles the antimeridian (true of any Chinese municipality).
    """

    def __init__(self, entries: Sequence[InstitutionEntry]) -> None:
        self.size = len(entries)
        self.cells: dict[tuple[int, int], list[InstitutionEntry]] = {}
        if not entries:
            self.cell = 1.0
            self.i_min = self.i_max = self.j_min = self.j_max = 0
            self.max_abs_lat = 0.0
            return
        lats = [e.lat for e in entries]
        lons = [e.lon for e in entries]
        span_area = max(max(lats) - min(lats), 0.01) * max(max(lons) - min(lons), 0.01)
        self.cell = min(
            MAX_CELL_DEGREES,
            max(MIN_CELL_DEGREES, math.sqrt(span_area * TARGET_PER_CELL / len(entries))),
        )
        for entry in entries:
            self.cells.setdefault(self._key(entry.lat, entry.lon), []).append(entry)
        rows = [i for i, _ in self.cells]
        columns = [j for _, j in self.cells]
        self.i_min, self.i_max = min(rows), max(rows)
        self.j_min, self.j_max = min(columns), max(columns)
        self.max_abs_lat = max(abs(v) for v in lats)

    def _key(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self.cell), math.floor(lon / self.cell)

    def nearest(
        self, lat: float, lon: float, max_km: float = math.inf
    ) -> Iterator[tuple[float, InstitutionEntry]]:
        """Entries within ``max_km``, nearest first (equal distances by code)."""
        if not self.cells:
            return
        cell = self.cell
        ci, cj = self._key(lat, lon)
        widest_lat = max(self.max_abs_lat, abs(lat))
        last_ring = max(ci - self.i_min, self.i_max - ci, cj - self.j_min, self.j_max - cj, 0)
        waiting: list[tuple[float, str, InstitutionEntry]] = []
        for ring in range(last_ring + 1):
            for key in self._ring(ci, cj, ring):
                for entry in self.cells.get(key, ()):
                    distance = haversine_km(lat, lon, entry.lat, entry.lon)
                    if distance <= max_km:
                        heapq.heappush(waiting, (distance, entry.code, entry))
            # Every cell outside rings 0..ring lies beyond the nearer of these borders.
            lat_gap = min((ci + ring + 1) * cell - lat, lat - (ci - ring) * cell)
            lon_gap = min((cj + ring + 1) * cell - lon, lon - (cj - ring) * cell)
            unread = min(
                min_km_for_latitude_gap(lat_gap),
                min_km_for_longitude_gap(lon_gap, widest_lat),
            )
            while waiting and waiting[0][0] < unread:
                distance, _code, entry = heapq.heappop(waiting)
                yield distance, entry
            if unread > max_km:
                break
        while waiting:
            distance, _code, entry = heapq.heappop(waiting)
            yield distance, entry

    def _ring(self, ci: int, cj: int, ring: int) -> Iterator[tuple[int, int]]:
        """The cells at Chebyshev distance ``ring`` from (ci, cj), clipped to occupied rows
        and columns."""
        if ring == 0:
            yield ci, cj
            return
        j_low, j_high = max(cj - ring, self.j_min), min(cj + ring, self.j_max)
        for i in (ci - ring, ci + ring):
            if self.i_min <= i <= self.i_max:
                for j in range(j_low, j_high + 1):
                    yield i, j
        i_low, i_high = max(ci - ring + 1, self.i_min), min(ci + ring - 1, self.i_max)
        for j in (cj - ring, cj + ring):
            if self.j_min <= j <= self.j_max:
                for i in range(i_low, i_high + 1):
                    yield i, j


# -- the catalogue ---------------------------------------------------------------------------


def _get(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def _categories_of(value: Any, all_keys: Sequence[str]) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(",", "|").split("|") if p.strip()]
        if "*" in parts:
            return frozenset(all_keys)
        return frozenset(parts)
    return frozenset(str(v) for v in value)


class Catalogue:
    """An immutable routing view of the catalogue, plus a mutable load table (in-memory use)."""

    def __init__(
        self,
        *,
        categories: Iterable[CategoryEntry],
        districts: Iterable[DistrictEntry],
        clusters: Iterable[ClusterEntry],
        institutions: Iterable[InstitutionEntry],
        live: Mapping[int, LiveState] | None = None,
    ) -> None:
        self.categories = {c.key: c for c in categories}
        self.districts = {d.code: d for d in districts}
        self.clusters = {c.code: c for c in clusters}
        self.institutions = {i.id: i for i in sorted(institutions, key=lambda e: e.code)}
        self.live: dict[int, LiveState] = dict(live or {})

        services: dict[str, list[InstitutionEntry]] = {key: [] for key in self.categories}
        self.cluster_windows: dict[str, list[InstitutionEntry]] = {}
        self.district_windows: dict[str, list[InstitutionEntry]] = {}
        self.municipal: list[InstitutionEntry] = []
        for entry in self.institutions.values():  # in code order, so every list is too
            if entry.tier == Tier.institution:
                for key in entry.categories:
                    services.setdefault(key, []).append(entry)
            elif entry.tier == Tier.cluster_window and entry.cluster_code:
                self.cluster_windows.setdefault(entry.cluster_code, []).append(entry)
            elif entry.tier == Tier.district_window:
                self.district_windows.setdefault(entry.district_code, []).append(entry)
            elif entry.tier == Tier.municipal:
                self.municipal.append(entry)
        self._grids = {key: _Grid(entries) for key, entries in services.items()}

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def from_rows(
        cls,
        *,
        categories: Iterable[Any],
        districts: Iterable[Any],
        clusters: Iterable[Any] = (),
        institutions: Iterable[Any],
        qualifications: Mapping[int, Iterable[str]] | None = None,
    ) -> Catalogue:
        """From plain rows: mappings or objects with the kb.models field names.

        ``categories`` may be bare keys. An institution's categories come from
        ``qualifications[id]`` when given, else from its own ``categories`` field (a list, or
        the data files' ``a|b`` / ``*`` form).
        """
        category_entries = [
            CategoryEntry(c, c, c)
            if isinstance(c, str)
            else CategoryEntry(_get(c, "key"), _get(c, "name_zh", ""), _get(c, "name_en", ""))
            for c in categories
        ]
        all_keys = sorted(c.key for c in category_entries)
        district_entries = [
            DistrictEntry(
                _get(d, "code"),
                _get(d, "name_zh", ""),
                _get(d, "name_en", ""),
                float(_get(d, "lat")),
                float(_get(d, "lon")),
            )
            for d in districts
        ]
        cluster_entries = [
            ClusterEntry(
                _get(c, "code"),
                _get(c, "name_zh", ""),
                _get(c, "name_en", ""),
                _get(c, "district_code"),
                float(_get(c, "lat")),
                float(_get(c, "lon")),
                tuple(
                    alias.strip()
                    for field in ("aliases_zh", "aliases_en")
                    for alias in (_get(c, field, "") or "").split("|")
                    if alias.strip()
                ),
            )
            for c in clusters
        ]
        hours_seen: dict[str, WeeklyHours | None] = {}
        entries: list[InstitutionEntry] = []
        live: dict[int, LiveState] = {}
        for row in institutions:
            institution_id = int(_get(row, "id"))
            spec = str(_get(row, "hours", "") or "")
            if spec not in hours_seen:
                try:
                    hours_seen[spec] = parse_hours(spec)
                except HoursError:
                    hours_seen[spec] = None
            if qualifications is not None:
                keys = frozenset(qualifications.get(institution_id, ()))
            else:
                keys = _categories_of(_get(row, "categories"), all_keys)
            tier = _get(row, "tier")
            entries.append(
                InstitutionEntry(
                    id=institution_id,
                    code=str(_get(row, "code")),
                    name_zh=str(_get(row, "name_zh", "")),
                    name_en=str(_get(row, "name_en", "")),
                    tier=str(tier.value if isinstance(tier, Tier) else tier),
                    district_code=str(_get(row, "district_code")),
                    cluster_code=_get(row, "cluster_code") or None,
                    lat=float(_get(row, "lat")),
                    lon=float(_get(row, "lon")),
                    categories=keys,
                    hours=hours_seen[spec],
                    hours_spec=spec,
                )
            )
            live[institution_id] = LiveState(
                open_cases=int(_get(row, "open_cases", 0) or 0),
                capacity=int(_get(row, "capacity", 0) or 0),
                active=bool(_get(row, "active", True)),
            )
        return cls(
            categories=category_entries,
            districts=district_entries,
            clusters=cluster_entries,
            institutions=entries,
            live=live,
        )

    @classmethod
    def from_session(cls, session: Session) -> Catalogue:
        """Everything routing needs, in five plain queries (no ORM objects: a 100,000-row
        catalogue builds in about a second)."""
        qualifications: dict[int, list[str]] = {}
        for institution_id, key in session.execute(
            select(col(Qualification.institution_id), col(Qualification.category_key))
        ):
            qualifications.setdefault(institution_id, []).append(key)
        institution_rows = session.execute(
            select(
                col(Institution.id),
                col(Institution.code),
                col(Institution.name_zh),
                col(Institution.name_en),
                col(Institution.tier),
                col(Institution.district_code),
                col(Institution.cluster_code),
                col(Institution.lat),
                col(Institution.lon),
                col(Institution.hours),
                col(Institution.open_cases),
                col(Institution.capacity),
                col(Institution.active),
            )
        ).mappings()
        return cls.from_rows(
            categories=session.execute(
                select(col(Category.key), col(Category.name_zh), col(Category.name_en))
            ).mappings(),
            districts=session.execute(
                select(
                    col(District.code),
                    col(District.name_zh),
                    col(District.name_en),
                    col(District.lat),
                    col(District.lon),
                )
            ).mappings(),
            clusters=session.execute(
                select(
                    col(Cluster.code),
                    col(Cluster.name_zh),
                    col(Cluster.name_en),
                    col(Cluster.district_code),
                    col(Cluster.lat),
                    col(Cluster.lon),
                    col(Cluster.aliases_zh),
                    col(Cluster.aliases_en),
                )
            ).mappings(),
            institutions=institution_rows,
            qualifications=qualifications,
        )

    # -- reading -----------------------------------------------------------------------------

    def require_category(self, key: str) -> CategoryEntry:
        found = self.categories.get(key)
        if found is None:
            raise UnknownValue("category", key, _closest(key, sorted(self.categories)))
        return found

    def require_district(self, code: str) -> DistrictEntry:
        found = self.districts.get(code)
        if found is None:
            raise UnknownValue("district", code, _closest(code, sorted(self.districts)))
        return found

    def require_cluster(self, name: str) -> ClusterEntry:
        """A cluster by code, name or alias (either language, any case)."""
        found = self.clusters.get(name)
        if found is not None:
            return found
        wanted = name.strip().lower()
        for cluster in self.clusters.values():
            forms = {cluster.code, cluster.name_zh, cluster.name_en, *cluster.aliases}
            if wanted in {form.lower() for form in forms}:
                return cluster
        names = sorted(self.clusters) + sorted(c.name_zh for c in self.clusters.values())
        raise UnknownValue("cluster", name, _closest(name, names))

    def nearest_district(self, lat: float, lon: float) -> DistrictEntry | None:
        """The district whose centroid is nearest: the catalogue has no district boundaries.
        A linear scan: there are only a few dozen districts."""
        return min(
            self.districts.values(),
            key=lambda d: (haversine_km(lat, lon, d.lat, d.lon), d.code),
            default=None,
        )

    def nearest(
        self, category: str, lat: float, lon: float, max_km: float = math.inf
    ) -> Iterator[tuple[float, InstitutionEntry]]:
        """Service institutions qualified for ``category`` within ``max_km``, nearest first,
        from the category's grid."""
        grid = self._grids.get(category)
        if grid is not None:
            yield from grid.nearest(lat, lon, max_km)

    def scan(
        self, category: str, lat: float, lon: float, max_km: float = math.inf
    ) -> Iterator[tuple[float, InstitutionEntry]]:
        """What :meth:`nearest` yields, by reading every institution: the brute force the
        benchmark and the property tests compare the index with."""
        found = [
            (haversine_km(lat, lon, entry.lat, entry.lon), entry.code, entry)
            for entry in self.institutions.values()
            if entry.tier == Tier.institution and category in entry.categories
        ]
        found.sort(key=lambda item: (item[0], item[1]))
        for distance, _code, entry in found:
            if distance > max_km:
                break
            yield distance, entry

    def grid_stats(self, category: str) -> tuple[int, int, float]:
        """(institutions, occupied cells, cell size in degrees) of a category's grid."""
        grid = self._grids.get(category)
        return (grid.size, len(grid.cells), grid.cell) if grid else (0, 0, 0.0)

    # -- the in-memory load table ------------------------------------------------------------

    def set_open_cases(self, institution_id: int, open_cases: int) -> None:
        """The update hook for in-memory use: record an institution's current load."""
        state = self.live[institution_id]
        self.live[institution_id] = LiveState(open_cases, state.capacity, state.active)

    def set_live_state(self, institution_id: int, state: LiveState) -> None:
        if institution_id not in self.institutions:
            raise KeyError(institution_id)
        self.live[institution_id] = state


def _closest(value: str, names: Sequence[str], limit: int = 3) -> list[str]:
    found = process.extract(value, names, scorer=fuzz.WRatio, limit=limit, score_cutoff=50)
    return [name for name, _score, _index in found]


# -- live state sources ----------------------------------------------------------------------


class MemoryLiveStates:
    """Live state from the catalogue's own load table."""

    batch = 1

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def fetch(self, ids: Iterable[int]) -> None:
        return None

    def want(self, ids: Iterable[int]) -> None:
        return None

    def get(self, institution_id: int) -> LiveState | None:
        return self.catalogue.live.get(institution_id)


class DatabaseLiveStates:
    """Live state read from the database in batches, once per institution per match."""

    # One query usually covers every institution a match weighs.
    batch = 16

    def __init__(self, session: Session, catalogue: Catalogue) -> None:
        self.session = session
        self.catalogue = catalogue
        self.known: dict[int, LiveState] = {}
        self.later: set[int] = set()

    def want(self, ids: Iterable[int]) -> None:
        self.later.update(ids)

    def fetch(self, ids: Iterable[int]) -> None:
        # What was wanted rides along: a match that weighs the fixed tiers and the nearest
        # services reads them all in one query.
        wanted = sorted({i for i in (*ids, *self.later) if i not in self.known})
        self.later.clear()
        if not wanted:
            return
        rows = self.session.execute(
            select(
                col(Institution.id),
                col(Institution.code),
                col(Institution.open_cases),
                col(Institution.capacity),
                col(Institution.active),
            ).where(col(Institution.id).in_(wanted))
        ).all()
        for institution_id, code, open_cases, capacity, active in rows:
            entry = self.catalogue.institutions.get(institution_id)
            if entry is None or entry.code != code:
                raise StaleCatalogue(f"institution {institution_id} is now {code!r}")
            self.known[institution_id] = LiveState(open_cases, capacity, bool(active))
        if len(rows) != len(wanted):
            raise StaleCatalogue("institutions were deleted")

    def get(self, institution_id: int) -> LiveState | None:
        if institution_id not in self.known:
            self.fetch([institution_id])
        return self.known.get(institution_id)


# -- one catalogue per database, kept consistent -----------------------------------------------


def catalogue_version(session: Session) -> tuple[int, ...]:
    """Changes whenever the catalogue does (see the module docstring); one round trip."""
    found = session.execute(_version_statement()).one()
    return tuple(int(value or 0) for value in found)


@cache
def _version_statement() -> Any:
    """Built once: every routed case runs it, and building the statement (seven subqueries)
    cost more CPU than PostgreSQL spent answering it."""

    def biggest(column: Any) -> Any:
        return select(func.coalesce(func.max(column), 0)).scalar_subquery()

    def rows(table: Any) -> Any:
        return select(func.count()).select_from(table).scalar_subquery()

    return select(
        biggest(CatalogueChange.id),
        rows(CatalogueChange),
        biggest(Institution.id),
        rows(Institution),
        rows(Qualification),
        rows(District),
        rows(Cluster),
    )


class CatalogueCache:
    def __init__(self) -> None:
        self._built: dict[str, tuple[tuple[int, ...], Catalogue]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _database(session: Session) -> str:
        return session.get_bind().engine.url.render_as_string(hide_password=False)

    def get(self, session: Session) -> Catalogue:
        database = self._database(session)
        version = catalogue_version(session)
        built = self._built.get(database)
        if built is not None and built[0] == version:
            return built[1]
        with self._lock:  # one rebuild at a time; the others then find it done
            built = self._built.get(database)
            if built is not None and built[0] == version:
                return built[1]
            catalogue = Catalogue.from_session(session)
            self._built[database] = (version, catalogue)
            return catalogue

    def invalidate(self, session: Session | None = None) -> None:
        with self._lock:
            if session is None:
                self._built.clear()
            else:
                self._built.pop(self._database(session), None)


catalogue_cache = CatalogueCache()
