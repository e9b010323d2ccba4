"""Catalogue reads that shape what a firm is told."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from kb.models import Institution
from kb.repository import catalogue_repository


@pytest.fixture
def any_institution(session: Session) -> Institution:
    """A demo institution with its hours in both languages."""
    found = session.exec(
        select(Institution).where(col(Institution.hours_en) != "").order_by(col(Institution.id))
    ).first()
    assert found is not None and found.hours_zh
    return found


def test_the_service_contact_names_the_institution_and_the_category(
    session: Session, any_institution: Institution
) -> None:
    assert any_institution.id is not None
    contact = catalogue_repository.service_contact(session, any_institution.id, "financing")
    assert contact is not None
    assert (contact.institution_zh, contact.institution_en, contact.phone) == (
        any_institution.name_zh,
        any_institution.name_en,
        any_institution.phone,
    )
    assert (contact.hours_zh, contact.hours_en) == (
        any_institution.hours_zh,
        any_institution.hours_en,
    )
    category = catalogue_repository.category(session, "financing")
    assert category is not None
    assert (contact.category_zh, contact.category_en) == (category.name_zh, category.name_en)


def test_the_service_contact_of_nothing_known(
    session: Session, any_institution: Institution
) -> None:
    assert any_institution.id is not None
    unknown_category = catalogue_repository.service_contact(session, any_institution.id, "nope")
    assert unknown_category is not None
    assert (unknown_category.category_zh, unknown_category.category_en) == (None, None)
    assert catalogue_repository.service_contact(session, 10_000_000, "financing") is None
