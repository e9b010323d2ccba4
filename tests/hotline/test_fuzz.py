"""Bad input. Schemathesis against the app's own OpenAPI document (every operation, 20 examples
each, derandomised: the same cases every run), and hypothesis over the Twilio webhooks with
correctly signed but arbitrary, missing, huge or mis-encoded fields: never a 5xx, responses as
documented, never half a ticket stored, and every text stored is answered by its job (run here,
in process, as a worker would) without an error."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from hotline.accounts.service import create_user, issue_token
from hotline.app import create_app
from hotline.settings import Settings
from ivr_flows.sms import ANSWER_TASK, REPLY_PURPOSE
from tests.conftest import TwilioSigner, answer_texts, sms_params
from tests.ivr_flows.phone import OFFICE_HOURS
from tickets.models import InboundMessage, OutboundMessage, OutboxMessage, Ticket, TicketEvent

FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def _empty_queues_after(redis_conn: redis.Redis) -> Iterator[None]:
    """Jobs this module's requests relayed leave the shared Redis with the test (job ids are
    outbox row ids, which start again at 1 in the next test's emptied tables)."""
    yield


# --- schemathesis: the JSON API and Open311 as documented ------------------------------------


@pytest.fixture
def api_app(settings: Settings, clean_db: Engine) -> Iterator[FastAPI]:
    app = create_app(settings)
    app.state.clock = lambda: OFFICE_HOURS
    with TestClient(app):  # start-up ran: the adapters stay configured for the run
        yield app


@pytest.fixture
def bearer(clean_db: Engine) -> dict[str, str]:
    with Session(clean_db) as session:
        user = create_user(session, "fuzz-admin", "admin")
        token = issue_token(session, user)
        session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_every_documented_operation_answers_without_5xx_and_as_documented(
    api_app: FastAPI, bearer: dict[str, str]
) -> None:
    """Each operation of /openapi.json in turn, its own hypothesis run; failures are collected
    so one report names every operation that broke."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        key = f"{operation.method.upper()} {operation.path}"

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Any) -> None:
            if case.path.startswith("/twilio/"):
                # Signed webhooks: an unsigned case is refused before anything runs; they are
                # fuzzed with real signatures below.
                assert case.call().status_code == 403
                return
            response = case.call(headers=bearer)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported together below
            failures[key] = str(exc)[:1500]
    assert operations >= 10
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())


# --- hypothesis: signed webhooks with arbitrary fields ------------------------------------------

FIELD_NAMES = st.sampled_from(
    [
        "MessageSid",
        "SmsSid",
        "AccountSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "OptOutType",
        "CallSid",
        "CallStatus",
        "Digits",
        "SpeechResult",
        "Confidence",
        "RecordingUrl",
        "SequenceNumber",
        "Direction",
        "ErrorCode",
    ]
)
# Text a form can carry: any Unicode except surrogates (not encodable), including NUL and RTL marks.
VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
    st.sampled_from(["", "0", "-1", "99999999999999999999", "+8613800138000", "１２３", "\x00"]),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1500, max_size=3000),
)
# A MessageSid per example, so that every example's text is a new one to store and answer.
_sids = itertools.count(1)
WEBHOOKS = st.sampled_from(
    [
        "/twilio/sms",
        "/twilio/voice",
        "/twilio/monitor",
        "/twilio/call-status",
        "/twilio/message-status",
        "/twilio/recording-status",
        "/twilio/fallback",
        "/twilio/revisit?ticket=20261130-0001",
    ]
)


def _no_half_tickets(engine: Engine) -> None:
    with Session(engine) as session:
        orphans = session.exec(
            select(func.count())
            .select_from(Ticket)
            .where(~col(Ticket.id).in_(select(TicketEvent.ticket_id)))
        ).one()
        assert orphans == 0, "a ticket without its opening event"


def _texts_answered(engine: Engine) -> None:
    """What a worker does next: every stored text's job runs without an error, leaves its text
    answered, and every reply it stored went out as one message (none when it withheld one)."""
    for result in answer_texts(engine):
        assert result in ("answered", "already answered"), result
    with Session(engine) as session:
        waiting = session.exec(
            select(func.count())
            .select_from(InboundMessage)
            .where(col(InboundMessage.answered_at).is_(None))
        ).one()
        assert waiting == 0, "a stored text left unanswered"
        undone = session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.task == ANSWER_TASK, col(OutboxMessage.done_at).is_(None))
        ).one()
        assert undone == 0
        replies = session.exec(
            select(func.count()).select_from(InboundMessage).where(InboundMessage.reply != "")
        ).one()
        sent = session.exec(
            select(func.count())
            .select_from(OutboundMessage)
            .where(OutboundMessage.purpose == REPLY_PURPOSE)
        ).one()
        assert sent == replies, "a reply stored but not sent, or sent twice"


def _valid_answer(path: str, status: int, body: str) -> None:
    assert status < 500, (path, status, body)
    assert status in (200, 400, 413), (path, status, body)
    if status == 200:
        root = ET.fromstring(body)
        assert root.tag == "Response"
        if path == "/twilio/sms":
            # Stored for a worker to answer: the webhook itself never replies.
            assert list(root) == [], body


@given(path=WEBHOOKS, fields=st.dictionaries(FIELD_NAMES, VALUES, max_size=8), base=st.booleans())
@FUZZ
def test_signed_webhooks_with_arbitrary_fields_never_fail(
    client: TestClient,
    twilio: TwilioSigner,
    clean_db: Engine,
    path: str,
    fields: dict[str, str],
    base: bool,
) -> None:
    sid = f"SM{next(_sids):032x}"
    params = {**sms_params("贷款 渝北区", sid=sid), **fields} if base else dict(fields)
    response = twilio.post(client, path, params)
    _valid_answer(path, response.status_code, response.text)
    _texts_answered(clean_db)
    _no_half_tickets(clean_db)


@given(
    missing=st.sets(st.sampled_from(sorted(sms_params("x"))), min_size=1),
    body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
)
@FUZZ
def test_an_sms_missing_fields_is_refused_or_answered_never_half_stored(
    client: TestClient, twilio: TwilioSigner, clean_db: Engine, missing: set[str], body: str
) -> None:
    sid = f"SM{next(_sids):032x}"
    params = {k: v for k, v in sms_params(body, sid=sid).items() if k not in missing}
    response = twilio.post(client, "/twilio/sms", params)
    _valid_answer("/twilio/sms", response.status_code, response.text)
    if not (params.get("MessageSid") or params.get("SmsSid")) or not params.get("From"):
        assert response.status_code == 400
    else:
        assert response.status_code == 200
    _texts_answered(clean_db)
    _no_half_tickets(clean_db)


@given(raw=st.binary(min_size=1, max_size=2000))
@FUZZ
def test_invalid_utf8_and_garbage_bodies_never_fail(
    client: TestClient, twilio: TwilioSigner, clean_db: Engine, raw: bytes
) -> None:
    content = b"MessageSid=SM" + b"e" * 32 + b"&From=%2B8613800138000&Body=" + raw + b"\xff\xfe"
    for signature in ("", twilio.signature("/twilio/sms", {})):
        response = client.post(
            "/twilio/sms",
            content=content,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
        assert response.status_code in (400, 403), response.text
    _no_half_tickets(clean_db)
