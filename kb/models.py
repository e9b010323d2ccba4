"""Catalogue tables: who may serve what, where, and how they publish it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from kb.db import enum_field, timestamp_field, utcnow


class DistrictKind(StrEnum):
    district = "district"
    county = "county"
    autonomous_county = "autonomous_county"


class Tier(StrEnum):
    """The network's tiers, from the firm outwards."""

    cluster_window = "cluster_window"
    institution = "institution"
    district_window = "district_window"
    municipal = "municipal"


class Recognition(StrEnum):
    none = "none"
    key = "key"
    municipal_demo = "municipal_demo"
    national_demo = "national_demo"


class Category(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=32)
    dtmf: int = Field(unique=True)
    name_zh: str = Field(max_length=64)
    name_en: str = Field(max_length=64)
    description_zh: str = Field(default="", sa_type=Text)
    description_en: str = Field(default="", sa_type=Text)


class District(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=32)
    name_zh: str = Field(max_length=64)
    name_en: str = Field(max_length=96)
    short_zh: str = Field(max_length=32)
    kind: DistrictKind = enum_field(DistrictKind, 24)
    lat: float
    lon: float


class Cluster(SQLModel, table=True):
    """An industrial cluster (产业集聚区) inside one district."""

    code: str = Field(primary_key=True, max_length=48)
    name_zh: str = Field(max_length=96)
    name_en: str = Field(max_length=128)
    aliases_zh: str = Field(default="", max_length=512)
    aliases_en: str = Field(default="", max_length=512)
    district_code: str = Field(foreign_key="district.code", max_length=32, index=True)
    lat: float
    lon: float


class Institution(SQLModel, table=True):
    """A platform (municipal, district or cluster window) or a service institution."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=48)
    name_zh: str = Field(max_length=128)
    name_en: str = Field(max_length=192)
    tier: Tier = enum_field(Tier, 24, index=True)
    district_code: str = Field(foreign_key="district.code", max_length=32, index=True)
    cluster_code: str | None = Field(
        default=None, foreign_key="cluster.code", max_length=48, index=True
    )
    capacity: int = Field(ge=0)
    open_cases: int = Field(default=0, ge=0)
    hours: str = Field(max_length=200, description="Weekly schedule, see kb.hours")
    phone: str = Field(max_length=32)
    address_zh: str = Field(default="", max_length=256)
    address_en: str = Field(default="", max_length=256)
    lat: float
    lon: float
    recognition: Recognition = enum_field(Recognition, 24, default=Recognition.none)
    active: bool = True
    content_zh: str = Field(default="", sa_type=Text)
    content_en: str = Field(default="", sa_type=Text)
    process_zh: str = Field(default="", sa_type=Text)
    process_en: str = Field(default="", sa_type=Text)
    standards_zh: str = Field(default="", sa_type=Text)
    standards_en: str = Field(default="", sa_type=Text)
    fees_zh: str = Field(default="", sa_type=Text)
    fees_en: str = Field(default="", sa_type=Text)
    hours_zh: str = Field(default="", max_length=200)
    hours_en: str = Field(default="", max_length=200)
    demo: bool = False
    updated_at: datetime = timestamp_field(default_factory=utcnow)


class InstitutionCategory(SQLModel, table=True):
    """Qualification: the institution may serve this category."""

    __tablename__ = "institution_category"
    institution_id: int = Field(foreign_key="institution.id", primary_key=True)
    category_key: str = Field(foreign_key="category.key", primary_key=True, max_length=32)


class CatalogueChange(SQLModel, table=True):
    """History of the catalogue: every field that a load or an edit changed, with who and when."""

    __tablename__ = "catalogue_change"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp_field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=96)
    entity: str = Field(max_length=32)
    entity_key: str = Field(max_length=64, index=True)
    action: str = Field(max_length=16)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ArticleKind(StrEnum):
    notice = "notice"
    faq = "faq"


class Article(SQLModel, table=True):
    """A knowledge-base article: a policy notice or an FAQ, bilingual, with its validity."""

    __tablename__ = "kb_article"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=96)
    kind: ArticleKind = enum_field(ArticleKind, 16, default=ArticleKind.notice, index=True)
    title_zh: str = Field(max_length=256)
    title_en: str = Field(max_length=256)
    body_zh: str = Field(default="", sa_type=Text)
    body_en: str = Field(default="", sa_type=Text)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    districts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    valid_from: date | None = None
    valid_until: date | None = None
    source: str = Field(default="", max_length=256)
    demo: bool = False
    updated_at: datetime = timestamp_field(default_factory=utcnow)
