"""Targeted information (定向信息服务): which firm phones want notices of which categories, in
which districts; and the SMS keywords that change it (``订阅 融资`` / ``SUB financing``,
``退订 融资`` / ``UNSUB financing``).

Keyed by the firm's phone (E.164), not by the firm row: kb sits below tickets. The global
opt-out (``STOP``) lives on the firm and is honoured when sending, not here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from kb.db import timestamp_field, utcnow
from kb.models import Category, District


class Subscription(SQLModel, table=True):
    """One phone's interest in one category; ``districts`` empty means the whole city."""

    __tablename__ = "kb_subscription"
    __table_args__ = (UniqueConstraint("phone", "category_key"),)
    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20, index=True)
    category_key: str = Field(foreign_key="category.key", max_length=32, index=True)
    districts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel: str = Field(default="sms", max_length=8)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    updated_at: datetime = timestamp_field(default_factory=utcnow)


# Short words firms use for each category, besides its key and full names.
CATEGORY_WORDS = {
    "information": ("信息", "政策", "info", "policy"),
    "financing": ("融资", "投融资", "贷款", "finance", "loan", "loans"),
    "startup": ("创业", "start-up", "startups"),
    "talent": ("人才", "培训", "training", "talents"),
    "technology": ("技术", "科技", "质量", "tech", "quality"),
    "management": ("管理", "咨询", "consulting"),
    "market": ("市场", "展会", "markets", "expo"),
    "legal": ("法律", "维权", "law"),
}
# Words between names that mean nothing here.
FILLER = ("and", "district", "county", "in", "the", "和", "及", "与", "还有")
# A text this long after 订阅/退订 that names nothing is a need, not a keyword.
MAX_KEYWORD_REST = 12
_SUB = re.compile(r"^(订阅|SUBSCRIBE|SUB)(?![A-Z])[\s:：,，]*(.+)$", re.IGNORECASE | re.DOTALL)
_UNSUB = re.compile(
    r"^(取消订阅|退订|UNSUBSCRIBE|UNSUB)(?![A-Z])[\s:：,，]*(.+)$", re.IGNORECASE | re.DOTALL
)


class SubscriptionError(ValueError):
    """A word that names no category or district."""


@dataclass(frozen=True)
class Audience:
    categories: tuple[str, ...]
    districts: tuple[str, ...]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _vocabulary(session: Session) -> tuple[dict[str, str], dict[str, str]]:
    categories: dict[str, str] = {}
    for c in session.exec(select(Category)).all():
        for word in (c.key, c.name_zh, c.name_en, *CATEGORY_WORDS.get(c.key, ())):
            categories[_fold(word)] = c.key
    districts: dict[str, str] = {}
    for d in session.exec(select(District)).all():
        first = d.name_en.split(" ")[0]
        for word in (d.code, d.name_zh, d.short_zh, d.name_en, first):
            districts[_fold(word)] = d.code
    return categories, districts


def parse_audience(session: Session, text: str) -> Audience:
    """Categories and districts named in ``text`` ("融资 渝北", "financing, Yubei",
    "融资渝北"). Raises :class:`SubscriptionError` for a word it does not know."""
    categories, districts = _vocabulary(session)
    found_c: list[str] = []
    found_d: list[str] = []
    words = sorted(set(categories) | set(districts) | set(FILLER), key=len, reverse=True)
    for token in re.split(r"[\s,，、;；/&]+", _fold(text)):
        rest = token
        while rest:
            hit = next((w for w in words if rest.startswith(w)), None)
            if hit is None:
                raise SubscriptionError(rest)
            if hit in FILLER:
                pass
            elif hit in categories:
                found_c.append(categories[hit])
            else:
                found_d.append(districts[hit])
            rest = rest[len(hit) :].lstrip("-_")
    return Audience(tuple(dict.fromkeys(found_c)), tuple(dict.fromkeys(found_d)))


def subscribe(
    session: Session,
    phone: str,
    categories: Sequence[str],
    districts: Sequence[str] = (),
    *,
    channel: str = "sms",
) -> list[Subscription]:
    """Add (or widen) the phone's subscriptions; no districts means the whole city."""
    rows = []
    for key in categories:
        row = session.exec(
            select(Subscription).where(
                Subscription.phone == phone, Subscription.category_key == key
            )
        ).first()
        if row is None:
            row = Subscription(
                phone=phone, category_key=key, districts=list(districts), channel=channel
            )
        elif not districts:
            row.districts = []
        elif row.districts:
            row.districts = sorted(set(row.districts) | set(districts))
        row.updated_at = utcnow()
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def unsubscribe(session: Session, phone: str, categories: Sequence[str] | None = None) -> int:
    """Remove the phone's subscriptions to ``categories`` (all of them when None)."""
    query = select(Subscription).where(Subscription.phone == phone)
    if categories is not None:
        query = query.where(col(Subscription.category_key).in_(list(categories)))
    rows = session.exec(query).all()
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)


def subscriptions_of(session: Session, phone: str) -> list[Subscription]:
    return list(
        session.exec(
            select(Subscription)
            .where(Subscription.phone == phone)
            .order_by(col(Subscription.category_key))
        ).all()
    )


def audience_phones(session: Session, audience: Audience) -> list[str]:
    """Every phone subscribed to one of the categories, in one of the districts (a city-wide
    subscription or a city-wide notice always matches)."""
    rows = session.exec(
        select(Subscription).where(col(Subscription.category_key).in_(list(audience.categories)))
    ).all()
    wanted = set(audience.districts)
    phones = {
        row.phone for row in rows if not wanted or not row.districts or wanted & set(row.districts)
    }
    return sorted(phones)


# --- SMS keywords ---------------------------------------------------------------------------

REPLIES = {
    "subscribed": {
        "zh": "已订阅：{names}{where}。回复“退订 类别”取消该类，回复TD退订全部短信。",
        "en": "Subscribed: {names}{where}. Reply UNSUB and a category to stop one, STOP for all.",
    },
    "unsubscribed": {
        "zh": "已取消订阅：{names}。",
        "en": "Unsubscribed: {names}.",
    },
    "unknown": {
        "zh": "未识别“{word}”。可订阅：信息、融资、创业、人才、技术、管理、市场、法律，"
        "如“订阅 融资 渝北”。",
        "en": "Unknown word '{word}'. Categories: information, financing, startup, talent, "
        "technology, management, market, legal; e.g. SUB financing Yubei.",
    },
    "no_category": {
        "zh": "请说明要订阅的类别，如“订阅 融资”。",
        "en": "Name a category, e.g. SUB financing.",
    },
}


def _language(word: str) -> str:
    return "en" if word.isascii() else "zh"


def handle_sms(session: Session, phone: str, body: str) -> str | None:
    """The reply to a SUB/UNSUB keyword text, or None when ``body`` is not one. The bare
    ``订阅``/``退订`` (START/STOP) never reach here: the SMS dialogue handles them first."""
    text = unicodedata.normalize("NFKC", body).strip()
    match = _UNSUB.match(text)
    adding = False
    if match is None:
        match = _SUB.match(text)
        adding = match is not None
    if match is None:
        return None
    language = _language(match.group(1))
    try:
        audience = parse_audience(session, match.group(2))
    except SubscriptionError as exc:
        if len(match.group(2).strip()) > MAX_KEYWORD_REST:
            return None
        return REPLIES["unknown"][language].format(word=str(exc))
    if not audience.categories:
        return REPLIES["no_category"][language]
    names = _names(session, audience.categories, language)
    if adding:
        subscribe(session, phone, audience.categories, audience.districts)
        where = ""
        if audience.districts:
            places = _district_names(session, audience.districts, language)
            where = f"（{'、'.join(places)}）" if language == "zh" else f" ({', '.join(places)})"
        return REPLIES["subscribed"][language].format(names=names, where=where)
    unsubscribe(session, phone, audience.categories)
    return REPLIES["unsubscribed"][language].format(names=names)


def _names(session: Session, keys: Sequence[str], language: str) -> str:
    names = []
    for key in keys:
        category = session.get(Category, key)
        assert category is not None
        names.append(category.name_zh if language == "zh" else category.name_en.lower())
    return "、".join(names) if language == "zh" else ", ".join(names)


def _district_names(session: Session, codes: Sequence[str], language: str) -> list[str]:
    names = []
    for code in codes:
        district = session.get(District, code)
        assert district is not None
        names.append(district.name_zh if language == "zh" else district.name_en)
    return names
