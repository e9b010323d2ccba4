"""Every catalogue query."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import update
from sqlmodel import Session, col, select

from kb.models import (
    CatalogueChange,
    Category,
    Cluster,
    District,
    Institution,
    InstitutionCategory,
    Tier,
)


class ServiceContact(NamedTuple):
    """What a firm is told of the institution serving its case and of the case's category."""

    institution_zh: str
    institution_en: str
    phone: str
    hours_zh: str
    hours_en: str
    category_zh: str | None  # None: no such category
    category_en: str | None


class CatalogueRepository:
    def categories(self, session: Session) -> Sequence[Category]:
        return session.exec(select(Category).order_by(col(Category.dtmf))).all()

    def category(self, session: Session, key: str) -> Category | None:
        return session.get(Category, key)

    def districts(self, session: Session) -> Sequence[District]:
        return session.exec(select(District).order_by(col(District.code))).all()

    def district(self, session: Session, code: str) -> District | None:
        return session.get(District, code)

    def clusters(self, session: Session) -> Sequence[Cluster]:
        return session.exec(select(Cluster).order_by(col(Cluster.code))).all()

    def cluster(self, session: Session, code: str) -> Cluster | None:
        return session.get(Cluster, code)

    def institution(self, session: Session, institution_id: int) -> Institution | None:
        return session.get(Institution, institution_id)

    def service_contact(
        self, session: Session, institution_id: int, category_key: str
    ) -> ServiceContact | None:
        """One read for a reply that names both (two ORM loads cost a text opening a case
        about a tenth of its CPU). Reads what the database holds without flushing the session
        first: what a caller has pending (a case's events) goes out in its own next flush,
        together, rather than in one made for this read."""

        def category_name(column: Any) -> Any:
            return select(column).where(col(Category.key) == category_key).scalar_subquery()

        row = (
            session.connection()
            .execute(
                sa.select(  # sqlmodel's select types four columns at most
                    col(Institution.name_zh),
                    col(Institution.name_en),
                    col(Institution.phone),
                    col(Institution.hours_zh),
                    col(Institution.hours_en),
                    category_name(Category.name_zh),
                    category_name(Category.name_en),
                ).where(col(Institution.id) == institution_id)
            )
            .first()
        )
        return ServiceContact(*row) if row is not None else None

    def institution_by_code(self, session: Session, code: str) -> Institution | None:
        return session.exec(select(Institution).where(Institution.code == code)).first()

    def institution_for_update(self, session: Session, institution_id: int) -> Institution | None:
        """The row locked for the rest of the transaction (FOR UPDATE on PostgreSQL) and read
        afresh, not from the session's identity map."""
        return session.exec(
            select(Institution)
            .where(col(Institution.id) == institution_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def institutions(
        self,
        session: Session,
        *,
        category: str | None = None,
        district: str | None = None,
        tier: Tier | None = None,
        active_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> Sequence[Institution]:
        query = select(Institution)
        if category is not None:
            query = query.where(
                col(Institution.id).in_(
                    select(InstitutionCategory.institution_id).where(
                        InstitutionCategory.category_key == category
                    )
                )
            )
        if district is not None:
            query = query.where(Institution.district_code == district)
        if tier is not None:
            query = query.where(Institution.tier == tier)
        if active_only:
            query = query.where(col(Institution.active).is_(True))
        query = query.order_by(col(Institution.id)).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return session.exec(query).all()

    def categories_of(
        self, session: Session, institution_ids: Sequence[int]
    ) -> dict[int, list[str]]:
        found: dict[int, list[str]] = defaultdict(list)
        if not institution_ids:
            return found
        rows = session.exec(
            select(InstitutionCategory)
            .where(col(InstitutionCategory.institution_id).in_(institution_ids))
            .order_by(col(InstitutionCategory.category_key))
        ).all()
        for row in rows:
            found[row.institution_id].append(row.category_key)
        return found

    def all_qualifications(self, session: Session) -> Sequence[InstitutionCategory]:
        return session.exec(select(InstitutionCategory)).all()

    def adjust_open_cases(self, session: Session, institution_id: int, delta: int) -> None:
        """Atomic in the database, so concurrent dispatches cannot lose an update."""
        session.execute(
            update(Institution)
            .where(col(Institution.id) == institution_id)
            .values(open_cases=Institution.open_cases + delta)
        )

    def changes_of(
        self, session: Session, entity: str, key: str, *, limit: int | None = None
    ) -> Sequence[CatalogueChange]:
        """One entity's history, newest first."""
        query = (
            select(CatalogueChange)
            .where(CatalogueChange.entity == entity, CatalogueChange.entity_key == key)
            .order_by(col(CatalogueChange.at).desc(), col(CatalogueChange.id).desc())
        )
        if limit is not None:
            query = query.limit(limit)
        return session.exec(query).all()

    def last_change(self, session: Session, entity: str, key: str) -> CatalogueChange | None:
        found = self.changes_of(session, entity, key, limit=1)
        return found[0] if found else None

    def edited_codes(self, session: Session) -> set[str]:
        """Codes of the institutions whose publics were ever edited in the portal."""
        return set(
            session.exec(
                select(CatalogueChange.entity_key)
                .where(CatalogueChange.entity == "institution", CatalogueChange.action == "edit")
                .distinct()
            ).all()
        )


catalogue_repository = CatalogueRepository()
