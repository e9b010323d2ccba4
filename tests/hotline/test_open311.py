"""Open311 GeoReport v2: discovery, services, service definitions, posting and reading
requests, in JSON and XML, with the standard's field lists and error shapes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime, timedelta

import georeport
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from hotline.app import create_app
from hotline.cli import app as cli
from hotline.open311_domain import create_key, revoke_key
from hotline.open311_models import Open311ApiKey
from hotline.settings import Settings
from kb.db import as_utc
from kb.models import Institution
from tests.live_server import serving
from tickets.models import Channel, Closure, Role, Ticket, TicketState
from tickets.service import Actor, ticket_service

BASE = "/open311/v2"
SERVICE_FIELDS = {
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
}
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}
CATEGORIES = [
    "information",
    "financing",
    "startup",
    "talent",
    "technology",
    "management",
    "market",
    "legal",
]
PHONE = "+8613912345678"
# Yubei's centre, a little off.
YUBEI = {"lat": "29.72", "long": "106.63"}


@pytest.fixture
def api_key(clean_db: Engine) -> str:
    with Session(clean_db) as session:
        key = create_key(session, "civic-app")
        session.commit()
    return key


def _post(client: TestClient, key: str | None, fmt: str = "json", **fields: str):  # type: ignore[no-untyped-def]
    data = dict(fields)
    if key is not None:
        data["api_key"] = key
    return client.post(f"{BASE}/requests.{fmt}", data=data)


def _xml(body: bytes) -> ET.Element:
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(body)


def test_discovery_in_both_formats(client: TestClient, settings: Settings) -> None:
    data = client.get(f"{BASE}/discovery.json").json()
    assert {"changeset", "contact", "key_service", "endpoints"} <= set(data)
    endpoint = data["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == f"{settings.public_base_url}/open311/v2/"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = _xml(client.get(f"{BASE}/discovery.xml").content)
    assert root.tag == "discovery"
    formats = [f.text for f in root.findall("./endpoints/endpoint/formats/format")]
    assert formats == ["text/xml", "application/json"]


def test_services_json_lists_the_eight_categories(client: TestClient) -> None:
    response = client.get(f"{BASE}/services.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = response.json()
    assert [s["service_code"] for s in services] == CATEGORIES
    for service in services:
        assert set(service) == SERVICE_FIELDS
        assert service["metadata"] is False and service["type"] == "realtime"
    assert services[1]["service_name"] == "投融资服务"
    english = client.get(f"{BASE}/services.json", params={"locale": "en"}).json()
    assert english[1]["service_name"] == "Investment and financing services"


def test_services_xml(client: TestClient) -> None:
    response = client.get(f"{BASE}/services.xml")
    assert response.headers["content-type"].startswith("text/xml")
    root = _xml(response.content)
    assert root.tag == "services"
    services = root.findall("service")
    assert [s.findtext("service_code") for s in services] == CATEGORIES
    assert {child.tag for child in services[0]} == SERVICE_FIELDS
    assert services[0].findtext("metadata") == "false"


def test_service_definition_and_unknown_code(client: TestClient) -> None:
    assert client.get(f"{BASE}/services/legal.json").json() == {
        "service_code": "legal",
        "attributes": [],
    }
    root = _xml(client.get(f"{BASE}/services/legal.xml").content)
    assert root.tag == "service_definition" and root.findtext("service_code") == "legal"
    missing = client.get(f"{BASE}/services/plumbing.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "service_code 'plumbing' not found"}]
    root = _xml(client.get(f"{BASE}/services/plumbing.xml").content)
    assert root.tag == "errors"
    assert root.findtext("./error/code") == "404"
    assert "plumbing" in (root.findtext("./error/description") or "")


def test_unknown_format_is_404(client: TestClient) -> None:
    response = client.get(f"{BASE}/services.yaml")
    assert response.status_code == 404
    assert response.json()[0]["code"] == 404


def test_post_needs_a_valid_key(client: TestClient, api_key: str, clean_db: Engine) -> None:
    missing = _post(client, None, service_code="legal", description="合同纠纷", **YUBEI)
    assert missing.status_code == 403
    assert missing.json() == [{"code": 403, "description": "api_key is required"}]
    wrong = _post(client, "o311_wrong", "xml", service_code="legal", **YUBEI)
    assert wrong.status_code == 403
    assert _xml(wrong.content).findtext("./error/description") == "Invalid api_key"
    with Session(clean_db) as session:
        assert revoke_key(session, "civic-app")
        session.commit()
    revoked = _post(client, api_key, service_code="legal", description="合同纠纷", **YUBEI)
    assert revoked.status_code == 403
    with Session(clean_db) as session:
        assert session.exec(select(Ticket)).all() == []
        stored = session.exec(select(Open311ApiKey)).one()
        assert stored.key_sha256 != api_key and len(stored.key_sha256) == 64


@pytest.mark.parametrize(
    ("fields", "status", "fragment"),
    [
        ({"description": "x", **YUBEI}, 400, "service_code is required"),
        ({"service_code": "plumbing", **YUBEI}, 404, "service_code 'plumbing' not found"),
        ({"service_code": "legal"}, 400, "a location is required"),
        ({"service_code": "legal", "lat": "39.9", "long": "116.4"}, 400, "outside Chongqing"),
        ({"service_code": "legal", "lat": "abc", "long": "106.6"}, 400, "decimal degrees"),
        ({"service_code": "legal", "address_string": "Mars base"}, 400, "no place in Chongqing"),
        ({"service_code": "legal", "phone": "12", **YUBEI}, 400, "phone"),
    ],
)
def test_post_validation_errors(
    client: TestClient, api_key: str, fields: dict[str, str], status: int, fragment: str
) -> None:
    response = _post(client, api_key, **fields)
    assert response.status_code == status
    [error] = response.json()
    assert error["code"] == status and fragment in error["description"]


def test_post_opens_and_dispatches_a_ticket(
    client: TestClient, api_key: str, clean_db: Engine, settings: Settings
) -> None:
    response = _post(
        client,
        api_key,
        service_code="legal",
        description=f"合同纠纷需要律师咨询，电话 {PHONE[3:]}",
        phone=PHONE,
        first_name="张",
        last_name="三",
        email="zhang@example.com",
        **YUBEI,
    )
    assert response.status_code == 201, response.text
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    number = created["service_request_id"]
    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        assert ticket.channel == Channel.open311
        assert ticket.category == "legal" and ticket.district_code == "yubei"
        assert ticket.state == TicketState.dispatched and ticket.institution_id is not None
        assert ticket.caller_phone == PHONE
        institution = session.get(Institution, ticket.institution_id)
        assert institution is not None
        assert ticket.resolve_due_at is not None
        due = as_utc(ticket.resolve_due_at)

    fetched = client.get(f"{BASE}/requests/{number}.json")
    assert fetched.status_code == 200
    [view] = fetched.json()
    assert set(view) == REQUEST_FIELDS
    assert view["status"] == "open"
    assert view["service_code"] == "legal" and view["service_name"] == "法律服务"
    assert view["agency_responsible"] == institution.name_zh
    assert view["lat"] == 29.72 and view["long"] == 106.63
    expected = datetime.fromisoformat(view["expected_datetime"])
    assert expected.utcoffset() == timedelta(hours=8) and expected == due
    requested = datetime.fromisoformat(view["requested_datetime"])
    assert requested.utcoffset() == timedelta(hours=8)
    assert datetime.fromisoformat(view["updated_datetime"]) >= requested
    # Personal data never leaves: no phone, name or e-mail, even typed into the description.
    text = fetched.text
    for secret in (PHONE, PHONE[3:], "zhang@example.com", "张", "三"):
        assert secret not in text, secret
    assert "***" in view["description"]

    root = _xml(client.get(f"{BASE}/requests/{number}.xml").content)
    assert root.tag == "service_requests"
    [request] = root.findall("request")
    assert {child.tag for child in request} == REQUEST_FIELDS
    assert request.findtext("service_request_id") == number
    assert request.findtext("status") == "open"
    assert request.findtext("expected_datetime") == view["expected_datetime"]
    english = client.get(f"{BASE}/requests/{number}.json", params={"locale": "en"}).json()
    assert english[0]["agency_responsible"] == institution.name_en


def test_post_by_address_string_in_xml(client: TestClient, api_key: str, clean_db: Engine) -> None:
    response = _post(
        client, api_key, "xml", service_code="financing", description="想申请贷款",
        address_string="江北区观音桥",
    )  # fmt: skip
    assert response.status_code == 201, response.text
    root = _xml(response.content)
    assert root.tag == "service_requests"
    number = root.findtext("./request/service_request_id")
    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        assert ticket.district_code == "jiangbei"
    view = client.get(f"{BASE}/requests/{number}.json").json()[0]
    assert view["address"] == "江北区观音桥" and view["lat"] is None


def test_list_filters(client: TestClient, api_key: str, clean_db: Engine) -> None:
    legal = _post(client, api_key, service_code="legal", description="合同纠纷", **YUBEI)
    loan = _post(client, api_key, service_code="financing", description="贷款", **YUBEI)
    legal_id = legal.json()[0]["service_request_id"]
    loan_id = loan.json()[0]["service_request_id"]
    # A ticket from another channel is not an Open311 request.
    with Session(clean_db) as session:
        ticket_service.open_ticket(
            session, actor=Actor("system:sms"), channel=Channel.sms,
            caller_phone=PHONE, summary="短信", language="zh", category="legal",
        )  # fmt: skip
        session.commit()

    def ids(**params: str) -> set[str]:
        response = client.get(f"{BASE}/requests.json", params=params)
        assert response.status_code == 200, response.text
        return {r["service_request_id"] for r in response.json()}

    assert ids() == {legal_id, loan_id}
    assert ids(service_code="legal") == {legal_id}
    assert ids(service_code="legal,financing") == {legal_id, loan_id}
    assert ids(service_request_id=f"{loan_id},NOPE") == {loan_id}
    # service_request_id overrides every other filter.
    assert ids(service_request_id=loan_id, service_code="legal", status="closed") == {loan_id}
    assert ids(status="closed") == set()
    assert ids(status="open,closed") == {legal_id, loan_id}

    with Session(clean_db) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == loan_id)).one()
        ticket_service.cancel(
            session, ticket, actor=Actor("user:sue", Role.supervisor), reason=Closure.withdrawn
        )
        session.commit()
    assert ids(status="closed") == {loan_id}
    assert ids(status="open") == {legal_id}
    closed = client.get(f"{BASE}/requests/{loan_id}.json").json()[0]
    assert closed["status"] == "closed" and "withdrawn" in closed["status_notes"]

    now = datetime.now().astimezone()
    assert ids(start_date=(now - timedelta(days=1)).isoformat()) == {legal_id, loan_id}
    assert ids(end_date=(now - timedelta(days=1)).isoformat()) == set()
    too_long = client.get(
        f"{BASE}/requests.json",
        params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
    )
    assert too_long.status_code == 400 and "90 days" in too_long.json()[0]["description"]
    bad = client.get(f"{BASE}/requests.xml", params={"status": "pending"})
    assert bad.status_code == 400 and _xml(bad.content).tag == "errors"
    assert client.get(f"{BASE}/requests/NOPE.json").status_code == 404

    root = _xml(client.get(f"{BASE}/requests.xml").content)
    assert {r.findtext("service_request_id") for r in root.findall("request")} == {
        legal_id,
        loan_id,
    }


def test_cli_creates_and_revokes_keys(
    settings: Settings, clean_db: Engine, monkeypatch: pytest.MonkeyPatch, client: TestClient
) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(settings.var_dir))
    created = CliRunner().invoke(cli, ["open311", "keys", "create", "city-app"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert key.startswith("o311_")
    again = CliRunner().invoke(cli, ["open311", "keys", "create", "city-app"])
    assert again.exit_code == 1 and "revoke it first" in again.output
    ok = _post(client, key, service_code="talent", description="招聘", **YUBEI)
    assert ok.status_code == 201
    revoked = CliRunner().invoke(cli, ["open311", "keys", "revoke", "city-app"])
    assert revoked.exit_code == 0, revoked.output
    refused = _post(client, key, service_code="talent", description="培训", **YUBEI)
    assert refused.status_code == 403
    unknown = CliRunner().invoke(cli, ["open311", "keys", "revoke", "nobody"])
    assert unknown.exit_code == 1


# --- an independent client ----------------------------------------------------------------


@pytest.fixture
def live_server(settings: Settings, clean_db: Engine) -> Iterator[str]:
    with serving(lambda _base: create_app(settings)) as base:
        yield base + BASE


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_client_reads_our_endpoint(
    live_server: str, api_key: str, fmt: str, client: TestClient
) -> None:
    """The ``georeport`` package from PyPI (a GeoReport v2 client written by others) reads
    services, a definition and requests in both formats."""
    number = _post(client, api_key, service_code="market", description="参展补贴", **YUBEI)
    number = number.json()[0]["service_request_id"]
    remote = georeport.GeoReport(live_server, output_format=fmt)
    services = remote.get_service_list()
    assert [s["service_code"] for s in services] == CATEGORIES
    assert remote.get_service_definition("market")["service_code"] == "market"
    found = remote.get_service_request(number)
    assert found["service_request_id"] == number and found["status"] == "open"
    listed = remote.get_service_requests(service_code="market", status="open")
    listed = [listed] if isinstance(listed, dict) else listed
    assert [r["service_request_id"] for r in listed] == [number]
