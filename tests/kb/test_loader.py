from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from kb.loader import CatalogueLoadError
from kb.models import (
    CatalogueChange,
    Category,
    Cluster,
    District,
    Institution,
    InstitutionCategory,
    Tier,
)
from kb.schemas import CATEGORY_KEYS
from kb.service import catalogue_service, default_data_dir


def _count(session: Session, model: type) -> int:
    return int(session.exec(select(func.count()).select_from(model)).one())


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(default_data_dir(), target)
    return target


def _rewrite_csv(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = list(rows[0].keys())
    change(rows)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_demo_catalogue_is_complete(session: Session) -> None:
    categories = session.exec(select(Category).order_by(Category.dtmf)).all()
    assert [c.key for c in categories] == list(CATEGORY_KEYS)
    assert [c.dtmf for c in categories] == list(range(1, 9))
    assert all(c.name_zh and c.name_en for c in categories)

    districts = session.exec(select(District)).all()
    assert len(districts) == 38
    assert Counter(d.kind.value for d in districts) == {
        "district": 26,
        "county": 8,
        "autonomous_county": 4,
    }
    names = {d.name_zh for d in districts}
    assert {"渝中区", "万州区", "城口县", "石柱土家族自治县", "酉阳土家族苗族自治县"} <= names

    institutions = session.exec(select(Institution)).all()
    by_tier = Counter(i.tier for i in institutions)
    assert by_tier[Tier.municipal] == 1
    assert by_tier[Tier.district_window] == 38
    assert by_tier[Tier.cluster_window] >= 10
    assert by_tier[Tier.institution] >= 120
    windows = {i.district_code for i in institutions if i.tier == Tier.district_window}
    assert windows == {d.code for d in districts}
    served = {i.district_code for i in institutions if i.tier == Tier.institution}
    assert served == {d.code for d in districts}
    assert all(i.demo for i in institutions)
    for inst in institutions:
        publics = (
            inst.content_zh,
            inst.content_en,
            inst.process_zh,
            inst.process_en,
            inst.standards_zh,
            inst.standards_en,
            inst.fees_zh,
            inst.fees_en,
            inst.hours_zh,
            inst.hours_en,
        )
        assert all(publics), inst.code
    clusters = session.exec(select(Cluster)).all()
    assert len(clusters) >= 10

    municipal = next(i for i in institutions if i.tier == Tier.municipal)
    qualified = session.exec(
        select(InstitutionCategory.category_key).where(
            InstitutionCategory.institution_id == municipal.id
        )
    ).all()
    assert sorted(qualified) == sorted(CATEGORY_KEYS)


def test_loading_twice_changes_nothing(session: Session) -> None:
    before = _count(session, CatalogueChange)
    report = catalogue_service.load(session, actor="test")
    session.flush()
    assert sum(report.created.values()) == 0
    assert sum(report.updated.values()) == 0
    assert report.unchanged["institution"] >= 159
    assert _count(session, CatalogueChange) == before


def test_a_changed_row_is_updated_with_its_history(session: Session, data_copy: Path) -> None:
    def change(rows: list[dict[str, str]]) -> None:
        rows[0]["capacity"] = "7"
        rows[0]["categories"] = "legal|market"

    _rewrite_csv(data_copy / "institutions.csv", change)
    code = next(csv.DictReader((data_copy / "institutions.csv").open(encoding="utf-8")))["code"]
    report = catalogue_service.load(session, data_copy, actor="test:editor")
    session.commit()
    assert report.updated["institution"] == 1
    inst = session.exec(select(Institution).where(Institution.code == code)).one()
    assert inst.capacity == 7
    links = session.exec(
        select(InstitutionCategory.category_key).where(
            InstitutionCategory.institution_id == inst.id
        )
    ).all()
    assert sorted(links) == ["legal", "market"]
    change_row = session.exec(
        select(CatalogueChange)
        .where(CatalogueChange.entity_key == code)
        .order_by(CatalogueChange.id.desc())  # type: ignore[union-attr]
    ).first()
    assert change_row is not None
    assert change_row.actor == "test:editor"
    assert change_row.changes["capacity"][1] == 7
    assert change_row.changes["categories"][1] == ["legal", "market"]


@pytest.mark.parametrize(
    ("file", "column", "value", "expected"),
    [
        ("institutions.csv", "district_code", "atlantis", "unknown district_code 'atlantis'"),
        ("institutions.csv", "categories", "finance", "unknown category 'finance'"),
        ("institutions.csv", "hours", "mon-fri 9-5", "office hours"),
        ("institutions.csv", "lat", "45.0", "lat"),
        ("institutions.csv", "capacity", "-3", "capacity"),
        ("institutions.csv", "phone", "12", "phone"),
        ("districts.csv", "kind", "province", "kind"),
        ("clusters.csv", "district_code", "nowhere", "unknown district_code 'nowhere'"),
    ],
)
def test_a_bad_row_fails_the_whole_load_naming_file_and_line(
    clean_db: Engine, data_copy: Path, file: str, column: str, value: str, expected: str
) -> None:
    # Make the bad row the third data row, after a valid changed row: nothing may be written.
    def change(rows: list[dict[str, str]]) -> None:
        if "capacity" in rows[0] and column != "capacity":
            rows[0]["capacity"] = "3"
        rows[2][column] = value

    _rewrite_csv(data_copy / file, change)
    with Session(clean_db) as session:
        before = _count(session, CatalogueChange)
        with pytest.raises(CatalogueLoadError) as failure:
            catalogue_service.load(session, data_copy, actor="test")
        session.rollback()
        message = str(failure.value)
        assert message.startswith(f"{file}:4: "), message
        assert expected in message
        assert _count(session, CatalogueChange) == before
        assert session.exec(select(Institution).where(Institution.capacity == 3)).first() is None


def test_duplicate_codes_are_refused(clean_db: Engine, data_copy: Path) -> None:
    def change(rows: list[dict[str, str]]) -> None:
        rows[5]["code"] = rows[1]["code"]

    _rewrite_csv(data_copy / "institutions.csv", change)
    with (
        Session(clean_db) as session,
        pytest.raises(CatalogueLoadError, match=r":7: duplicate code"),
    ):
        catalogue_service.load(session, data_copy, actor="test")


def test_yaml_files_load_with_line_numbers(clean_db: Engine, tmp_path: Path) -> None:
    (tmp_path / "categories.yaml").write_text(
        "- key: information\n  dtmf: 1\n  name_zh: 信息服务\n  name_en: Information\n"
        "- key: financing\n  dtmf: 12\n  name_zh: 投融资\n  name_en: Financing\n",
        encoding="utf-8",
    )
    with Session(clean_db) as session, pytest.raises(CatalogueLoadError) as failure:
        catalogue_service.load(session, tmp_path, actor="test")
    assert str(failure.value).startswith("categories.yaml:5: dtmf")


def test_an_empty_folder_is_an_error(clean_db: Engine, tmp_path: Path) -> None:
    with Session(clean_db) as session, pytest.raises(CatalogueLoadError, match="no catalogue"):
        catalogue_service.load(session, tmp_path, actor="test")
