"""The knowledge base: importing Markdown articles (all or nothing, file:line errors) and
searching them across Chinese and English."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from kb.articles import default_articles_dir, import_articles, normalise, search
from kb.loader import CatalogueLoadError
from kb.models import Article

TODAY = date(2026, 11, 28)

GOOD = """---
slug: sample-notice
kind: notice
title_zh: 样例通知
title_en: Sample notice
categories: [financing]
districts: [yubei]
valid_from: 2026-01-01
valid_until: 2026-12-31
source: test
demo: true
---
中文正文。

<!-- en -->

English body.
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _count(session: Session) -> int:
    return len(session.exec(select(Article.id)).all())


def test_demo_set_imports_bilingual_and_marked_demo(session: Session) -> None:
    report = import_articles(session)
    articles = session.exec(select(Article)).all()
    assert 10 <= report.created == len(articles) <= 16
    for article in articles:
        assert article.demo is True
        assert article.title_zh and article.title_en and article.body_zh and article.body_en
        assert not article.body_zh.isascii() and article.body_en.isascii()
    # Every category has at least one article.
    covered = {key for a in articles for key in a.categories}
    assert covered == {
        "information", "financing", "startup", "talent",
        "technology", "management", "market", "legal",
    }  # fmt: skip
    again = import_articles(session)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(articles))


def test_reimport_updates_a_changed_article(session: Session, tmp_path: Path) -> None:
    _write(tmp_path, "a.md", GOOD)
    import_articles(session, tmp_path)
    _write(tmp_path, "a.md", GOOD.replace("Sample notice", "Sample notice, revised"))
    report = import_articles(session, tmp_path)
    assert report.updated == 1
    found = session.exec(select(Article).where(Article.slug == "sample-notice")).one()
    assert found.title_en == "Sample notice, revised"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("[financing]", "[financing, finance]"), "b.md:6: unknown category 'finance'"),
        (GOOD.replace("[yubei]", "[atlantis]"), "b.md:7: unknown district 'atlantis'"),
        (GOOD.replace("valid_from: 2026-01-01", "valid_from: 2027-01-01"), "b.md:9: valid_until"),
        (GOOD.replace("slug: sample-notice", "slug: Bad Slug"), "b.md:2: slug"),
        (GOOD.replace("title_en: Sample notice\n", ""), "b.md:1: title_en: Field required"),
        (GOOD.replace("demo: true", "demo: true\nauthor: me"), "b.md:12: author"),
        (GOOD.replace("source: test", "source: [unclosed"), "b.md:"),
        (GOOD.replace("<!-- en -->", ""), "b.md:1: both a Chinese body and an English body"),
        (GOOD[4:], "b.md:1: a front matter block"),
    ],
)
def test_errors_name_file_and_line_and_nothing_is_written(
    session: Session, tmp_path: Path, text: str, expected: str
) -> None:
    _write(tmp_path, "a.md", GOOD.replace("sample-notice", "first-notice"))
    _write(tmp_path, "b.md", text)
    with pytest.raises(CatalogueLoadError) as caught:
        import_articles(session, tmp_path)
    assert str(caught.value).startswith(expected), str(caught.value)
    assert _count(session) == 0


def test_duplicate_slug_names_the_first_file(session: Session, tmp_path: Path) -> None:
    _write(tmp_path, "a.md", GOOD)
    _write(tmp_path, "b.md", GOOD)
    with pytest.raises(CatalogueLoadError, match=r"^b\.md:2: duplicate slug 'sample-notice' "):
        import_articles(session, tmp_path)
    assert _count(session) == 0


def test_empty_directory_is_an_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(CatalogueLoadError, match="no \\*.md article files"):
        import_articles(session, tmp_path)


def test_import_is_all_or_nothing_over_the_demo_set(session: Session, tmp_path: Path) -> None:
    target = tmp_path / "articles"
    shutil.copytree(default_articles_dir(), target)
    _write(target, "zz-broken.md", GOOD.replace("[financing]", "[nonsense]"))
    with pytest.raises(CatalogueLoadError, match="zz-broken.md:6"):
        import_articles(session, target)
    assert _count(session) == 0


def test_normalise_folds_width_and_case() -> None:
    assert normalise("ＬＯＡＮ  Subsidy！") == "loan subsidy"


@pytest.fixture
def demo(session: Session) -> Session:
    import_articles(session)
    return session


def test_search_chinese_and_english_with_typos(demo: Session) -> None:
    slugs = [a.slug for a in search(demo, "贷款贴息", today=TODAY)]
    assert slugs[0] == "loan-interest-subsidy-2026"
    # One wrong character in Chinese still finds it.
    assert "loan-interest-subsidy-2026" in [a.slug for a in search(demo, "贷款贴细", today=TODAY)]
    # English with a typo, matched in the body.
    found = [a.slug for a in search(demo, "incubatr rent", today=TODAY)]
    assert found[0] == "incubator-rent-support-yubei"
    assert search(demo, "quantum teleportation zebra", today=TODAY) == []


def test_category_and_district_filters(demo: Session) -> None:
    market = search(demo, None, category="market", today=TODAY)
    assert market and all("market" in a.categories for a in market)
    assert {a.slug for a in market} == {"expo-booth-subsidy-2026", "export-early-warning-faq"}
    in_wanzhou = {a.slug for a in search(demo, None, district="wanzhou", today=TODAY)}
    assert "incubator-rent-support-yubei" not in in_wanzhou  # Yubei only
    assert "loan-interest-subsidy-2026" in in_wanzhou  # city-wide
    in_yubei = {a.slug for a in search(demo, None, district="yubei", today=TODAY)}
    assert "incubator-rent-support-yubei" in in_yubei


def test_expired_notices_are_marked_and_can_be_left_out(demo: Session) -> None:
    everything = search(demo, None, today=TODAY)
    expired = {a.slug for a in everything if a.expired}
    assert expired == {
        "testing-voucher-2025",
        "incubator-rent-support-yubei",
        "policy-reading-sessions",
        "expo-booth-subsidy-2026",
        "management-volunteer-advisers",
    }
    # Current ones first.
    assert not everything[0].expired and everything[-1].expired
    current = search(demo, None, include_expired=False, today=TODAY)
    assert not {a.slug for a in current} & expired
    # Not yet expired on its last day.
    last_day = search(demo, "testing", today=date(2025, 12, 31))
    assert last_day[0].slug == "testing-voucher-2025" and not last_day[0].expired
