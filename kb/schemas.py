"""Catalogue rows as loaded from data files, and the public JSON shapes of the catalogue API."""

from __future__ import annotations

from typing import Annotated

import phonenumbers
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from kb.hours import HoursError, parse_hours
from kb.models import DistrictKind, Recognition, Tier

CATEGORY_KEYS = (
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
)

# Chongqing's bounding box with a margin: coordinates outside it are typos, not places.
LAT_RANGE = (27.5, 32.8)
LON_RANGE = (104.8, 110.6)


def _blank_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _to_bool(value: object) -> object:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "y"):
            return True
        if lowered in ("false", "no", "0", "n", ""):
            return False
    return value


OptionalCode = Annotated[str | None, BeforeValidator(_blank_to_none)]
Flag = Annotated[bool, BeforeValidator(_to_bool)]
Latitude = Annotated[float, Field(ge=LAT_RANGE[0], le=LAT_RANGE[1])]
Longitude = Annotated[float, Field(ge=LON_RANGE[0], le=LON_RANGE[1])]


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CategoryRow(Row):
    key: str = Field(pattern=r"^[a-z_]{2,32}$")
    dtmf: int = Field(ge=0, le=9)
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    description_zh: str = ""
    description_en: str = ""


class DistrictRow(Row):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    name_zh: str = Field(min_length=2)
    name_en: str = Field(min_length=2)
    short_zh: str = Field(min_length=1)
    kind: DistrictKind
    lat: Latitude
    lon: Longitude


class ClusterRow(Row):
    code: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,47}$")
    name_zh: str = Field(min_length=2)
    name_en: str = Field(min_length=2)
    aliases_zh: str = ""
    aliases_en: str = ""
    district_code: str
    lat: Latitude
    lon: Longitude


class InstitutionRow(Row):
    code: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,47}$")
    name_zh: str = Field(min_length=2)
    name_en: str = Field(min_length=2)
    tier: Tier
    district_code: str
    cluster_code: OptionalCode = None
    categories: str = Field(min_length=1, description="'|'-separated keys, or * for all")
    capacity: int = Field(ge=0)
    hours: str
    phone: str
    address_zh: str = ""
    address_en: str = ""
    lat: Latitude
    lon: Longitude
    recognition: Recognition = Recognition.none
    active: Flag = True
    content_zh: str = ""
    content_en: str = ""
    process_zh: str = ""
    process_en: str = ""
    standards_zh: str = ""
    standards_en: str = ""
    fees_zh: str = ""
    fees_en: str = ""
    hours_zh: str = ""
    hours_en: str = ""
    demo: Flag = False

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        try:
            parse_hours(value)
        except HoursError as exc:
            raise ValueError(f"office hours: {exc}") from None
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        try:
            parsed = phonenumbers.parse(value, "CN")
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"phone {value!r}: {exc}") from None
        if not phonenumbers.is_possible_number(parsed):
            raise ValueError(f"phone {value!r} is not a possible number")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def category_keys(self, known: tuple[str, ...]) -> list[str]:
        if self.categories.strip() == "*":
            return list(known)
        return [key.strip() for key in self.categories.split("|") if key.strip()]


class CategoryPublic(BaseModel):
    key: str
    dtmf: int
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str


class DistrictPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    short_zh: str
    kind: DistrictKind
    lat: float
    lon: float


class FivePublics(BaseModel):
    """五公开: what every institution publishes, in both languages."""

    content_zh: str
    content_en: str
    process_zh: str
    process_en: str
    standards_zh: str
    standards_en: str
    fees_zh: str
    fees_en: str
    hours_zh: str
    hours_en: str


class InstitutionPublic(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    tier: Tier
    district_code: str
    cluster_code: str | None
    latitude: float
    longitude: float
    categories: list[str]
    capacity: int
    open_cases: int
    phone: str
    hours: str
    hours_zh: str
    hours_en: str
    address_zh: str
    address_en: str
    recognition: Recognition
    active: bool
    demo: bool
    five_publics: FivePublics
