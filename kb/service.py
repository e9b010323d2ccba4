"""Catalogue operations: loading the data files, and reading the catalogue for the API."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from sqlmodel import Session, SQLModel, select

from kb.db import utcnow
from kb.loader import CatalogueLoadError, Located, find_file, read_rows
from kb.models import (
    CatalogueChange,
    Category,
    Cluster,
    District,
    Institution,
    InstitutionCategory,
    Tier,
)
from kb.publics import FIELDS as PUBLIC_FIELDS
from kb.repository import CatalogueRepository, catalogue_repository
from kb.schemas import (
    CategoryRow,
    ClusterRow,
    DistrictRow,
    FivePublics,
    InstitutionPublic,
    InstitutionRow,
)


def default_data_dir() -> Path:
    return Path(str(files("kb") / "data"))


@dataclass
class LoadReport:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        entities = sorted(set(self.created) | set(self.updated) | set(self.unchanged))
        return ", ".join(
            f"{name}: {self.created[name]} new, {self.updated[name]} changed, "
            f"{self.unchanged[name]} unchanged"
            for name in entities
        )


class UnknownValue(LookupError):
    """An unknown catalogue key; carries the closest valid names for the error message."""

    def __init__(self, what: str, value: str, suggestions: Sequence[str]) -> None:
        self.what, self.value, self.suggestions = what, value, list(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {what} {value!r}{hint}")


class CatalogueService:
    def __init__(self, repository: CatalogueRepository) -> None:
        self.repository = repository

    # -- loading -------------------------------------------------------------------------------

    def load(self, session: Session, directory: Path | None = None, *, actor: str) -> LoadReport:
        """Upsert every data file in ``directory``. Validates everything before writing anything;
        the caller's transaction makes the whole load atomic."""
        directory = directory or default_data_dir()
        if not directory.is_dir():
            raise CatalogueLoadError(f"{directory}: not a directory")
        categories = self._rows(directory, "categories", CategoryRow)
        districts = self._rows(directory, "districts", DistrictRow)
        clusters = self._rows(directory, "clusters", ClusterRow)
        institutions = self._rows(directory, "platforms", InstitutionRow) + self._rows(
            directory, "institutions", InstitutionRow
        )
        if not any((categories, districts, clusters, institutions)):
            raise CatalogueLoadError(f"{directory}: no catalogue files found")

        for rows in (categories, districts, clusters, institutions):
            self._check_unique(rows)
        self._check_unique_values(categories, "dtmf")
        category_keys = self._known(session, Category, categories, "key")
        district_codes = self._known(session, District, districts, "code")
        cluster_codes = self._known(session, Cluster, clusters, "code")
        for located in clusters:
            if located.row.district_code not in district_codes:
                raise located.error(f"unknown district_code {located.row.district_code!r}")
        for loc_inst in institutions:
            row = loc_inst.row
            if row.district_code not in district_codes:
                raise loc_inst.error(f"unknown district_code {row.district_code!r}")
            if row.cluster_code is not None and row.cluster_code not in cluster_codes:
                raise loc_inst.error(f"unknown cluster_code {row.cluster_code!r}")
            if row.tier == Tier.cluster_window and row.cluster_code is None:
                raise loc_inst.error("a cluster_window needs a cluster_code")
            keys = row.category_keys(tuple(sorted(category_keys)))
            if not keys:
                raise loc_inst.error("categories is empty")
            for key in keys:
                if key not in category_keys:
                    raise loc_inst.error(f"unknown category {key!r}")

        report = LoadReport()
        for loc_cat in categories:
            self._upsert(
                session, Category, loc_cat.row.key, loc_cat.row.model_dump(), actor, report
            )
        session.flush()
        for loc_dis in districts:
            self._upsert(
                session, District, loc_dis.row.code, loc_dis.row.model_dump(), actor, report
            )
        session.flush()
        for loc_clu in clusters:
            self._upsert(
                session, Cluster, loc_clu.row.code, loc_clu.row.model_dump(), actor, report
            )
        session.flush()
        ordered_keys = tuple(sorted(category_keys))
        edited = self.repository.edited_codes(session)
        for loc_inst in institutions:
            self._upsert_institution(
                session, loc_inst.row, ordered_keys, actor, report, keep_publics=edited
            )
        session.flush()
        return report

    @staticmethod
    def _rows(directory: Path, stem: str, schema: type[Any]) -> list[Located[Any]]:
        path = find_file(directory, stem)
        return read_rows(path, schema) if path else []

    @staticmethod
    def _check_unique(rows: Sequence[Located[Any]]) -> None:
        key = "key" if rows and hasattr(rows[0].row, "key") else "code"
        CatalogueService._check_unique_values(rows, key)

    @staticmethod
    def _check_unique_values(rows: Sequence[Located[Any]], attribute: str) -> None:
        seen: dict[Any, Located[Any]] = {}
        for located in rows:
            value = getattr(located.row, attribute)
            if value in seen:
                first = seen[value]
                raise located.error(
                    f"duplicate {attribute} {value!r} (first at {first.file}:{first.line})"
                )
            seen[value] = located

    @staticmethod
    def _known(
        session: Session, model: type[SQLModel], rows: Sequence[Located[Any]], attribute: str
    ) -> set[str]:
        known = {getattr(r.row, attribute) for r in rows}
        known.update(session.exec(select(getattr(model, attribute))).all())
        return known

    def _upsert(
        self,
        session: Session,
        model: type[SQLModel],
        key: str,
        values: dict[str, Any],
        actor: str,
        report: LoadReport,
    ) -> SQLModel:
        entity = str(model.__tablename__)
        existing = session.get(model, key)
        if existing is None:
            created = model(**values)
            session.add(created)
            report.created[entity] += 1
            self._record(session, actor, entity, key, "create", {})
            return created
        changes = {
            name: [getattr(existing, name), value]
            for name, value in values.items()
            if getattr(existing, name) != value
        }
        if changes:
            for name, (_old, new) in changes.items():
                setattr(existing, name, new)
            session.add(existing)
            report.updated[entity] += 1
            self._record(session, actor, entity, key, "update", changes)
        else:
            report.unchanged[entity] += 1
        return existing

    def _upsert_institution(
        self,
        session: Session,
        row: InstitutionRow,
        category_keys: tuple[str, ...],
        actor: str,
        report: LoadReport,
        keep_publics: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """``keep_publics``: codes whose five publics are maintained in the portal; the data
        file no longer overwrites them (every ``make run`` loads the files again)."""
        values = row.model_dump(exclude={"categories"})
        wanted = sorted(row.category_keys(category_keys))
        existing = self.repository.institution_by_code(session, row.code)
        if existing is None:
            institution = Institution(**values)
            session.add(institution)
            session.flush()
            assert institution.id is not None
            for key in wanted:
                session.add(InstitutionCategory(institution_id=institution.id, category_key=key))
            report.created["institution"] += 1
            self._record(session, actor, "institution", row.code, "create", {"categories": wanted})
            return
        assert existing.id is not None
        if row.code in keep_publics:
            values = {k: v for k, v in values.items() if k not in PUBLIC_FIELDS}
        changes: dict[str, Any] = {
            name: [getattr(existing, name), value]
            for name, value in values.items()
            if getattr(existing, name) != value
        }
        current = self.repository.categories_of(session, [existing.id]).get(existing.id, [])
        if sorted(current) != wanted:
            changes["categories"] = [sorted(current), wanted]
            for key in set(current) - set(wanted):
                link = session.get(InstitutionCategory, (existing.id, key))
                if link is not None:
                    session.delete(link)
            for key in set(wanted) - set(current):
                session.add(InstitutionCategory(institution_id=existing.id, category_key=key))
        if not changes:
            report.unchanged["institution"] += 1
            return
        for name in values:
            if name in changes:
                setattr(existing, name, values[name])
        # A portal edit started before this load must find it stale (kb.publics).
        existing.updated_at = utcnow()
        session.add(existing)
        report.updated["institution"] += 1
        self._record(session, actor, "institution", row.code, "update", changes)

    @staticmethod
    def _record(
        session: Session, actor: str, entity: str, key: str, action: str, changes: dict[str, Any]
    ) -> None:
        jsonable = {
            name: [
                str(v) if not isinstance(v, (int, float, bool, list, type(None))) else v
                for v in pair
            ]
            for name, pair in changes.items()
        }
        session.add(
            CatalogueChange(
                actor=actor, entity=entity, entity_key=key, action=action, changes=jsonable
            )
        )

    # -- reading -------------------------------------------------------------------------------

    def require_category(self, session: Session, key: str) -> Category:
        found = self.repository.category(session, key)
        if found is None:
            names = [c.key for c in self.repository.categories(session)]
            raise UnknownValue("category", key, _closest(key, names))
        return found

    def require_district(self, session: Session, name: str) -> District:
        """A district by code, Chinese name, short name or English name."""
        wanted = name.strip().lower()
        districts = self.repository.districts(session)
        for district in districts:
            forms = {
                district.code,
                district.name_zh,
                district.short_zh,
                district.name_en.lower(),
                district.name_en.lower().split(" ")[0].replace("'", ""),
            }
            if wanted in {f.lower() for f in forms}:
                return district
        names = [d.code for d in districts] + [d.name_zh for d in districts]
        raise UnknownValue("district", name, _closest(name, names))

    def public(
        self, session: Session, institutions: Sequence[Institution]
    ) -> list[InstitutionPublic]:
        ids = [i.id for i in institutions if i.id is not None]
        categories = self.repository.categories_of(session, ids)
        return [
            InstitutionPublic(
                id=i.id or 0,
                code=i.code,
                name_zh=i.name_zh,
                name_en=i.name_en,
                tier=i.tier,
                district_code=i.district_code,
                cluster_code=i.cluster_code,
                latitude=i.lat,
                longitude=i.lon,
                categories=categories.get(i.id or 0, []),
                capacity=i.capacity,
                open_cases=i.open_cases,
                phone=i.phone,
                hours=i.hours,
                hours_zh=i.hours_zh,
                hours_en=i.hours_en,
                address_zh=i.address_zh,
                address_en=i.address_en,
                recognition=i.recognition,
                active=i.active,
                demo=i.demo,
                five_publics=FivePublics(
                    content_zh=i.content_zh,
                    content_en=i.content_en,
                    process_zh=i.process_zh,
                    process_en=i.process_en,
                    standards_zh=i.standards_zh,
                    standards_en=i.standards_en,
                    fees_zh=i.fees_zh,
                    fees_en=i.fees_en,
                    hours_zh=i.hours_zh,
                    hours_en=i.hours_en,
                ),
            )
            for i in institutions
        ]


def _closest(value: str, names: Sequence[str], limit: int = 3) -> list[str]:
    found = process.extract(value, names, scorer=fuzz.WRatio, limit=limit, score_cutoff=50)
    return [name for name, _score, _index in found]


catalogue_service = CatalogueService(catalogue_repository)
