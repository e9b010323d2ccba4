"""``GET /api/kb``: the knowledge base over JSON."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from kb.articles import import_articles
from tests.hotline.problems import problem


def _import(engine: Engine) -> None:
    with Session(engine) as session:
        import_articles(session)
        session.commit()


def test_search_and_filter(client: TestClient, clean_db: Engine) -> None:
    _import(clean_db)
    everything = client.get("/api/kb").json()
    assert len(everything) == 13
    found = client.get("/api/kb", params={"q": "银河培训"}).json()
    assert found[0]["slug"] == "yinhe-training-2026"
    assert found[0]["score"] >= 90 and found[0]["title_en"].startswith("Yinhe")
    legal = client.get("/api/kb", params={"category": "legal"}).json()
    assert [a["slug"] for a in legal] == ["private-firm-rights-complaint"]
    voucher = client.get("/api/kb", params={"q": "innovation voucher"}).json()
    assert voucher[0]["slug"] == "testing-voucher-2025" and voucher[0]["expired"] is True
    current = client.get("/api/kb", params={"include_expired": "false"}).json()
    assert all(not a["expired"] for a in current) and len(current) < len(everything)
    by_district = client.get("/api/kb", params={"district": "渝北"}).json()
    assert "incubator-rent-support-yubei" in {a["slug"] for a in by_district}


def test_unknown_category_suggests(client: TestClient, clean_db: Engine) -> None:
    response = client.get("/api/kb", params={"category": "financin"})
    error = problem(response, "query", "category")
    assert "financin" in error["msg"] and "financing" in error["ctx"]["suggestions"]


def test_one_article(client: TestClient, clean_db: Engine) -> None:
    _import(clean_db)
    article = client.get("/api/kb/skills-subsidy-faq").json()
    assert article["kind"] == "faq" and article["demo"] is True
    assert client.get("/api/kb/nope").status_code == 404
