from __future__ import annotations

from fastapi.testclient import TestClient

from hotline.app import create_app
from hotline.settings import Settings
from tests.hotline.problems import problem


def test_categories_and_districts(client: TestClient) -> None:
    categories = client.get("/api/categories").json()
    assert [c["dtmf"] for c in categories] == list(range(1, 9))
    assert categories[1]["key"] == "financing" and categories[1]["name_zh"]
    districts = client.get("/api/districts").json()
    assert len(districts) == 38
    assert {"code", "name_zh", "name_en", "kind", "lat", "lon"} <= set(districts[0])


def test_institutions_filtered_by_category_district_and_tier(client: TestClient) -> None:
    found = client.get("/api/institutions", params={"category": "legal", "district": "渝中区"})
    assert found.status_code == 200
    rows = found.json()
    assert rows
    for row in rows:
        assert "legal" in row["categories"]
        assert row["district_code"] == "yuzhong"
        for key in (
            "id",
            "name_zh",
            "name_en",
            "tier",
            "latitude",
            "longitude",
            "capacity",
            "open_cases",
            "phone",
            "hours",
        ):
            assert key in row
        assert set(row["five_publics"]) >= {
            "content_zh",
            "process_en",
            "standards_zh",
            "fees_en",
            "hours_zh",
        }
    windows = client.get("/api/institutions", params={"tier": "district_window"}).json()
    assert len(windows) == 38
    one = client.get(f"/api/institutions/{rows[0]['id']}").json()
    assert one == rows[0]


def test_unknown_filters_are_named_with_suggestions(client: TestClient) -> None:
    response = client.get("/api/institutions", params={"category": "financ"})
    error = problem(response, "query", "category")
    assert error["input"] == "financ" and "financ" in error["msg"]
    assert "financing" in error["ctx"]["suggestions"]
    response = client.get("/api/institutions", params={"district": "yubie"})
    assert "yubei" in problem(response, "query", "district")["ctx"]["suggestions"]
    assert client.get("/api/institutions", params={"tier": "galactic"}).status_code == 422
    assert client.get("/api/institutions/999999").status_code == 404


def test_health_reports_database_and_redis(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_health_is_503_when_redis_is_unreachable(settings: Settings, clean_db: object) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")
    assert response.json()["checks"]["database"] == "ok"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/institutions" in paths and "/twilio/sms" in paths
