"""The knowledge base: policy notices and FAQs, imported from Markdown files with YAML front
matter, searched across both languages with fuzzy matching.

A file looks like::

    ---
    slug: loan-interest-subsidy-2026
    kind: notice
    title_zh: ...
    title_en: ...
    categories: [financing]
    districts: []            # empty: the whole city
    valid_from: 2026-01-01
    valid_until: 2026-12-31  # omitted: no end
    source: ...
    demo: true
    ---
    Chinese body ...

    <!-- en -->

    English body ...

The import is all or nothing: every file is read and checked before anything is written, and
the first problem is reported as ``file:line: reason``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rapidfuzz import fuzz
from sqlmodel import Session, col, select

from kb.db import utcnow
from kb.loader import CatalogueLoadError
from kb.models import Article, ArticleKind, Category, District

EN_MARKER = "<!-- en -->"
# rapidfuzz scores (0-100) an article must reach to be found.
MATCH_CUTOFF = 70.0


def default_articles_dir() -> Path:
    return Path(str(files("kb") / "data" / "articles"))


class ArticleRow(BaseModel):
    """The front matter of one article file."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,95}$")
    kind: ArticleKind = ArticleKind.notice
    title_zh: str = Field(min_length=1, max_length=256)
    title_en: str = Field(min_length=1, max_length=256)
    categories: list[str] = Field(min_length=1)
    districts: list[str] = Field(default_factory=list)
    valid_from: date | None = None
    valid_until: date | None = None
    source: str = Field(default="", max_length=256)
    demo: bool = False

    @field_validator("valid_until")
    @classmethod
    def _after_start(cls, value: date | None, info: Any) -> date | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise ValueError("valid_until is before valid_from")
        return value


@dataclass(frozen=True)
class ParsedArticle:
    row: ArticleRow
    body_zh: str
    body_en: str
    file: str
    line: int

    def error(self, reason: str, line: int | None = None) -> CatalogueLoadError:
        return CatalogueLoadError(f"{self.file}:{line or self.line}: {reason}")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return f"articles: {self.created} new, {self.updated} changed, {self.unchanged} unchanged"


def parse_article(path: Path) -> tuple[ParsedArticle, dict[str, int]]:
    """One file: its validated front matter, bodies, and the line of each front-matter key."""
    name = path.name
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise CatalogueLoadError(f"{name}:1: a front matter block starting with --- is needed")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise CatalogueLoadError(f"{name}:1: the front matter is not closed by ---")
    front = "\n".join(lines[1:end])
    try:
        node = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        raise CatalogueLoadError(f"{name}:{line}: invalid YAML front matter") from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise CatalogueLoadError(f"{name}:2: the front matter must be a mapping")
    key_lines = {
        str(key.value): key.start_mark.line + 2
        for key, _value in node.value
        if isinstance(key, yaml.ScalarNode)
    }
    try:
        row = ArticleRow.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        line = key_lines.get(field, 1)
        where = ".".join(str(p) for p in first["loc"]) or "front matter"
        raise CatalogueLoadError(f"{name}:{line}: {where}: {first['msg']}") from None
    body = "\n".join(lines[end + 1 :])
    zh, _marker, en = body.partition(EN_MARKER)
    parsed = ParsedArticle(row, zh.strip(), en.strip(), name, 1)
    if not parsed.body_zh or not parsed.body_en:
        raise parsed.error(f"both a Chinese body and an English body after {EN_MARKER} are needed")
    return parsed, key_lines


def import_articles(session: Session, directory: Path | None = None) -> ImportReport:
    """Upsert every ``*.md`` article in ``directory``, checking all first; the caller's
    transaction makes it atomic."""
    directory = directory or default_articles_dir()
    if not directory.is_dir():
        raise CatalogueLoadError(f"{directory}: not a directory")
    paths = sorted(directory.glob("*.md"))
    if not paths:
        raise CatalogueLoadError(f"{directory}: no *.md article files found")
    categories = set(session.exec(select(Category.key)).all())
    districts = set(session.exec(select(District.code)).all())
    seen: dict[str, ParsedArticle] = {}
    parsed_all: list[ParsedArticle] = []
    for path in paths:
        parsed, key_lines = parse_article(path)
        row = parsed.row
        for key in row.categories:
            if key not in categories:
                raise parsed.error(f"unknown category {key!r}", key_lines.get("categories"))
        for code in row.districts:
            if code not in districts:
                raise parsed.error(f"unknown district {code!r}", key_lines.get("districts"))
        if row.slug in seen:
            raise parsed.error(
                f"duplicate slug {row.slug!r} (first in {seen[row.slug].file})",
                key_lines.get("slug"),
            )
        seen[row.slug] = parsed
        parsed_all.append(parsed)

    report = ImportReport()
    for parsed in parsed_all:
        values = parsed.row.model_dump()
        values.update(body_zh=parsed.body_zh, body_en=parsed.body_en)
        existing = session.exec(select(Article).where(Article.slug == parsed.row.slug)).first()
        if existing is None:
            session.add(Article(**values))
            report.created += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
        if not changed:
            report.unchanged += 1
            continue
        for key, value in changed.items():
            setattr(existing, key, value)
        existing.updated_at = utcnow()
        session.add(existing)
        report.updated += 1
    session.flush()
    return report


# --- search -------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """NFKC (full-width to half-width), case-folded, punctuation and runs of space collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"[\W_]+", " ", folded).strip()


class ArticlePublic(BaseModel):
    slug: str
    kind: ArticleKind
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    categories: list[str]
    districts: list[str]
    valid_from: date | None
    valid_until: date | None
    source: str
    demo: bool
    expired: bool
    score: float | None = None


def is_expired(article: Article, today: date) -> bool:
    return article.valid_until is not None and article.valid_until < today


def to_public(article: Article, today: date, score: float | None = None) -> ArticlePublic:
    return ArticlePublic(
        slug=article.slug,
        kind=article.kind,
        title_zh=article.title_zh,
        title_en=article.title_en,
        body_zh=article.body_zh,
        body_en=article.body_en,
        categories=list(article.categories),
        districts=list(article.districts),
        valid_from=article.valid_from,
        valid_until=article.valid_until,
        source=article.source,
        demo=article.demo,
        expired=is_expired(article, today),
        score=score,
    )


def _score(query: str, article: Article) -> float:
    """How well ``query`` (normalised) matches the article: titles weigh more than bodies."""
    best = 0.0
    for text, weight in (
        (article.title_zh, 1.0),
        (article.title_en, 1.0),
        (article.body_zh, 0.9),
        (article.body_en, 0.9),
    ):
        candidate = normalise(text)
        if not candidate:
            continue
        if query in candidate:
            score = 100.0
        elif query.isascii():
            # Words: typo-tolerant per word, order-free.
            score = max(
                float(fuzz.token_set_ratio(query, candidate)),
                float(fuzz.partial_ratio(query, candidate)) if len(query) >= 4 else 0.0,
            )
        else:
            # Chinese: characters in a window of the text, allowing one wrong character.
            score = float(fuzz.partial_ratio(query, candidate)) if len(query) >= 2 else 0.0
        best = max(best, score * weight)
    return best


def get_article(session: Session, slug: str) -> Article | None:
    return session.exec(select(Article).where(Article.slug == slug)).first()


def search(
    session: Session,
    q: str | None = None,
    *,
    category: str | None = None,
    district: str | None = None,
    include_expired: bool = True,
    today: date,
    limit: int = 50,
) -> list[ArticlePublic]:
    """Articles matching ``q`` (best first), or all of them (newest validity first) without a
    query; ``category`` and ``district`` filter (an article with no districts is city-wide)."""
    articles = session.exec(select(Article).order_by(col(Article.slug))).all()
    found: list[tuple[float, Article]] = []
    query = normalise(q or "")
    for article in articles:
        if category is not None and category not in article.categories:
            continue
        if district is not None and article.districts and district not in article.districts:
            continue
        if not include_expired and is_expired(article, today):
            continue
        if query:
            score = _score(query, article)
            if score < MATCH_CUTOFF:
                continue
            found.append((score, article))
        else:
            found.append((0.0, article))
    if query:
        found.sort(key=lambda pair: (-pair[0], is_expired(pair[1], today), pair[1].slug))
    else:
        found.sort(
            key=lambda pair: (
                is_expired(pair[1], today),
                -(pair[1].valid_from or date.min).toordinal(),
                pair[1].slug,
            )
        )
    return [
        to_public(article, today, round(score, 1) if query else None)
        for score, article in found[:limit]
    ]
