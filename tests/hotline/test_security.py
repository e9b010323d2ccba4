"""A short security checklist, as tests: forged and replayed Twilio signatures, SQL injection
through every filter of the JSON API, the request size limit, /metrics access, secrets kept out
of logs (see also test_observability).

CSRF, authorisation of the staff pages, open redirects after login and session fixation belong
to the staff pages (hotline/web) and are tested there."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from hotline.accounts.service import create_user, issue_token
from hotline.limits import MAX_BODY_BYTES
from hotline.logging_setup import configure_logging, secrets_of
from hotline.settings import Settings
from kb.models import Institution
from tests.conftest import (
    TwilioSigner,
    answer_texts,
    count_rows,
    replies_sent,
    sms_params,
    text_hotline,
)
from tickets.models import InboundMessage, OutboxMessage, Ticket

LOAN = "我们公司在渝北区，想申请一笔贷款"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE ticket; --",
    "1 UNION SELECT username, password_hash FROM app_user --",
    "yubei' --",
    '" OR ""="',
    "%' OR 1=1 --",
    "\\'; SELECT pg_sleep(5); --",
    "０' OR 1=1",
]


@pytest.fixture(autouse=True)
def _empty_queues_after(redis_conn: redis.Redis) -> Iterator[None]:
    """Jobs this module's requests relayed leave the shared Redis with the test (job ids are
    outbox row ids, which start again at 1 in the next test's emptied tables)."""
    yield


def _tickets(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Ticket)).one())


# --- Twilio signatures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "forge",
    [
        "no signature",
        "empty signature",
        "signed with another token",
        "signed for another URL",
        "a field changed after signing",
        "a field added after signing",
        "signed over the Host the app sees, not the public URL",
    ],
)
def test_forged_signatures_are_refused_and_store_nothing(
    forge: str,
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
) -> None:
    params = sms_params(LOAN, settings=settings)
    url = settings.public_base_url + "/twilio/sms"
    headers = {"X-Twilio-Signature": twilio.signature("/twilio/sms", params)}
    if forge == "no signature":
        headers = {}
    elif forge == "empty signature":
        headers = {"X-Twilio-Signature": ""}
    elif forge == "signed with another token":
        other = RequestValidator("not-the-token-0123456789abcdef")
        headers = {"X-Twilio-Signature": other.compute_signature(url, params)}
    elif forge == "signed for another URL":
        headers = {"X-Twilio-Signature": twilio.signature("/twilio/voice", params)}
    elif forge == "a field changed after signing":
        params = {**params, "Body": "改过的内容"}
    elif forge == "a field added after signing":
        params = {**params, "Extra": "1"}
    else:
        validator = RequestValidator(settings.auth_token)
        headers = {
            "X-Twilio-Signature": validator.compute_signature(
                "http://testserver/twilio/sms", params
            )
        }
    response = client.post("/twilio/sms", data=params, headers=headers)
    assert response.status_code == 403
    assert _tickets(clean_db) == 0
    assert count_rows(clean_db, InboundMessage) == 0
    assert count_rows(clean_db, OutboxMessage) == 0


@pytest.mark.parametrize(
    "signed_url",
    ["https://hotline.example.test/twilio/ping", "https://hotline.example.test:443/twilio/ping"],
)
def test_twilio_may_sign_the_public_url_with_or_without_its_port(
    signed_url: str, client: TestClient, settings: Settings
) -> None:
    assert settings.public_base_url == "https://hotline.example.test"
    params = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "0" * 32}
    validator = RequestValidator(settings.auth_token)
    signature = validator.compute_signature(signed_url, params)
    assert (
        client.post(
            "/twilio/ping", data=params, headers={"X-Twilio-Signature": signature}
        ).status_code
        == 200
    )
    moved = validator.compute_signature(signed_url.replace("/ping", "/voice"), params)
    assert (
        client.post("/twilio/ping", data=params, headers={"X-Twilio-Signature": moved}).status_code
        == 403
    )


def test_a_replayed_signed_request_changes_nothing_and_cannot_be_moved(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params(LOAN, settings=settings)
    signature = twilio.signature("/twilio/sms", params)
    first = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
    replays = [
        client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": signature})
        for _ in range(3)
    ]
    assert [(r.status_code, r.text) for r in [first, *replays]] == [(200, EMPTY_TWIML)] * 4
    # Stored once, answered once: the replays stored nothing and queued no second answer.
    assert count_rows(clean_db, InboundMessage) == 1
    assert answer_texts(clean_db) == ["answered"]
    assert _tickets(clean_db) == 1
    assert len(replies_sent(clean_db)) == 1
    # The same signature on another webhook, or with the query string changed, is refused.
    for path in ("/twilio/voice", "/twilio/call-status", "/twilio/sms?x=1"):
        moved = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert moved.status_code == 403, path
    assert answer_texts(clean_db) == []
    assert _tickets(clean_db) == 1
    assert count_rows(clean_db, InboundMessage) == 1
    assert len(replies_sent(clean_db)) == 1


# --- SQL injection through every filter -------------------------------------------------------


@pytest.fixture
def staff_headers(session: Session) -> dict[str, str]:
    user = create_user(session, "sec-supervisor", "supervisor")
    headers = {"Authorization": f"Bearer {issue_token(session, user)}"}
    session.commit()
    return headers


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_injection_through_every_api_filter_is_inert(
    payload: str,
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
    staff_headers: dict[str, str],
) -> None:
    assert text_hotline(client, twilio, sms_params(LOAN, settings=settings))
    assert _tickets(clean_db) == 1
    with Session(clean_db) as session:
        institutions = int(session.exec(select(func.count()).select_from(Institution)).one())
    requests = [
        ("/api/institutions", {"category": payload}),
        ("/api/institutions", {"district": payload}),
        ("/api/institutions", {"tier": payload}),
        ("/api/institutions", {"limit": payload}),
        ("/api/institutions/" + payload, {}),
        ("/api/tickets", {"state": payload}),
        ("/api/tickets", {"category": payload}),
        ("/api/tickets", {"district": payload}),
        ("/api/tickets", {"phone": payload}),
        ("/api/tickets", {"kind": payload}),
        ("/api/tickets", {"cursor": payload}),
        ("/api/tickets/" + payload, {}),
        ("/api/metrics", {"by": payload}),
        ("/api/metrics", {"since": payload}),
        ("/api/route", {"category": payload}),
        ("/api/route", {"category": "financing", "district": payload}),
        ("/api/route", {"category": "financing", "cluster": payload}),
        ("/api/route", {"category": "financing", "exclude": payload}),
        ("/api/route", {"category": "financing", "at": payload}),
        ("/api/kb", {"q": payload}),
        ("/api/kb", {"category": payload}),
    ]
    for path, params in requests:
        response = client.get(path, params=params, headers=staff_headers)
        assert response.status_code < 500, (path, params, response.text)
        if response.status_code == 200:
            body = response.json()
            # A filter that matched nothing: an injection that widened it would list rows.
            if isinstance(body, dict) and "items" in body:
                assert body["items"] == [], (path, params)
            elif isinstance(body, list) and path == "/api/institutions":
                assert body == [], (path, params)
    # Nothing was dropped or changed.
    assert _tickets(clean_db) == 1
    with Session(clean_db) as session:
        assert int(session.exec(select(func.count()).select_from(Institution)).one()) == (
            institutions
        )


# --- request size -------------------------------------------------------------------------------


def test_a_body_over_64_kib_is_refused_with_413_before_any_work(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("贷" * (MAX_BODY_BYTES // 3 + 10), settings=settings)
    response = twilio.post(client, "/twilio/sms", params)  # correctly signed, still too big
    assert response.status_code == 413
    api = client.post("/api/classify", content=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}")
    assert api.status_code == 413
    assert count_rows(clean_db, InboundMessage) == 0
    assert count_rows(clean_db, OutboxMessage) == 0


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(
    client: TestClient, clean_db: Engine
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"Body=" + b"x" * 8192 + b"&"

    response = client.post(
        "/twilio/sms",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert count_rows(clean_db, InboundMessage) == 0
    assert count_rows(clean_db, OutboxMessage) == 0


def test_a_body_under_the_limit_passes(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    params = sms_params("贷" * 1600, settings=settings)  # Twilio's longest message
    assert text_hotline(client, twilio, params)  # stored whole, and answered
    with Session(clean_db) as session:
        assert session.exec(select(InboundMessage)).one().body == "贷" * 1600


# --- secrets and metrics ------------------------------------------------------------------


def test_no_secret_reaches_the_logs_even_in_errors(
    client: TestClient,
    settings: Settings,
    staff_headers: dict[str, str],
) -> None:
    stream = io.StringIO()
    secrets = [*secrets_of(settings), "db-password-42x"]
    handler = configure_logging("DEBUG", secrets=secrets, stream=stream)
    try:
        log = logging.getLogger("hotline.test")
        log.error("connect to postgresql://hotline:db-password-42x@db/hotline failed")
        log.info("request headers %s", dict(staff_headers))
        log.info("validator %s", {"auth_token": settings.auth_token, "password": "hunter2x"})
        client.get("/api/tickets", headers=staff_headers)
        client.post("/twilio/sms", data={"From": "+8613800138000"})
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    text = stream.getvalue()
    token = staff_headers["Authorization"].split()[1]
    for secret in (settings.auth_token, "db-password-42x", token, "hunter2x"):
        assert secret not in text
    assert all(json.loads(line) for line in text.splitlines())


def test_metrics_are_not_public(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 403
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert forwarded.status_code == 403  # a header does not make a remote client local


def test_values_the_database_cannot_store_are_the_clients_error_not_a_500(
    client: TestClient, twilio: TwilioSigner, settings: Settings, clean_db: Engine
) -> None:
    """Found by schemathesis on PostgreSQL: an id past int4 and a NUL in text were 500s."""
    too_big = client.get("/api/institutions/2147483648")
    assert too_big.status_code in (404, 422)  # 422 on PostgreSQL, 404 on SQLite (int64)
    nul = client.get("/api/institutions", params={"category": "fin\x00ancing"})
    assert nul.status_code == 422
    [error] = nul.json()["detail"]  # FastAPI's validation shape on both legs
    # SQLite compares the text and finds no such category; PostgreSQL refuses to store a NUL.
    assert tuple(error["loc"]) in {("query", "category"), ("request",)} and error["msg"]
    sms = twilio.post(client, "/twilio/sms", sms_params("贷款\x00渝北区", settings=settings))
    assert (sms.status_code, sms.text) == (200, EMPTY_TWIML)
    # Stored without the NUL, and answered by the worker without an error.
    assert answer_texts(clean_db) == ["answered"]
    with Session(clean_db) as session:
        message = session.exec(select(InboundMessage)).one()
        assert message.body == "贷款渝北区" and message.reply
