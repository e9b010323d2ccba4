"""Metrics, request ids and structured logs, through the real app, database and Redis."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.app import create_app
from hotline.logging_setup import configure_logging, secrets_of
from hotline.queue import queue
from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings, load_settings
from hotline.worker import OutboxRelay
from tests.conftest import TwilioSigner, sms_params
from tests.ivr_flows.phone import OFFICE_HOURS, PhoneCall
from tickets.models import InboundMessage, OutboxMessage, Ticket
from tickets.outbox import pending_commits, relay_outbox, session_factory_for

LOOPBACK_CLIENT = ("127.0.0.1", 50000)
CALLER = "+8613800138000"
BODY = "我们公司在渝北区，想申请一笔贷款"


@pytest.fixture(autouse=True)
def _empty_queues_after(redis_conn: redis.Redis) -> Iterator[None]:
    """Jobs this module's requests relayed leave the shared Redis with the test (job ids are
    outbox row ids, which start again at 1 in the next test's emptied tables)."""
    yield


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """Everything logged, as the JSON handler writes it (DEBUG and up), while the test runs."""
    stream = io.StringIO()
    handler = configure_logging("DEBUG", secrets=secrets_of(settings), stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _scrape(app: FastAPI) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with TestClient(app, client=LOOPBACK_CLIENT) as local:
        response = local.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


# --- /metrics -------------------------------------------------------------------------------


def test_metrics_are_refused_to_remote_clients_without_a_token(client: TestClient) -> None:
    response = client.get("/metrics")  # TestClient's peer is "testclient", not loopback
    assert response.status_code == 403
    assert "HOTLINE_METRICS_TOKEN" in response.text


def test_with_a_token_set_metrics_need_it_even_from_loopback(app: FastAPI) -> None:
    app.state.metrics_token = "scrape-token-123456"
    with TestClient(app, client=LOOPBACK_CLIENT) as local:
        assert local.get("/metrics").status_code == 401
        wrong = {"Authorization": "Bearer scrape-token-000000"}
        assert local.get("/metrics", headers=wrong).status_code == 401
    with TestClient(app) as remote:
        right = {"Authorization": "Bearer scrape-token-123456"}
        response = remote.get("/metrics", headers=right)
    assert response.status_code == 200
    assert "hotline_tickets" in response.text


def test_metrics_token_comes_from_the_environment(
    settings: Settings, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", "from-the-env-987654")
    from_env = load_settings(
        var_dir=settings.var_dir, database_url=settings.database_url, redis_url=settings.redis_url
    )
    assert from_env.metrics_token == "from-the-env-987654"
    assert create_app(from_env).state.metrics_token == "from-the-env-987654"
    monkeypatch.setenv("HOTLINE_METRICS_TOKEN", "")
    unset = load_settings(
        var_dir=settings.var_dir, database_url=settings.database_url, redis_url=settings.redis_url
    )
    assert create_app(unset).state.metrics_token is None


def test_metrics_count_tickets_outbox_queues_and_latency_by_route_template(
    app: FastAPI, twilio: TwilioSigner, settings: Settings, redis_conn: redis.Redis
) -> None:
    redis_conn.flushdb()
    pending_commits.clear()  # left set by an earlier test's commit, the app would relay anyway
    with TestClient(app) as client:
        response = twilio.post(client, "/twilio/sms", sms_params(BODY, settings=settings))
        assert response.status_code == 200
        assert client.get("/api/institutions/1").status_code in (200, 404)
        assert client.get("/api/institutions/999999").status_code == 404
    samples = _scrape(app)
    # The text waits for its answer: no ticket yet, and its job left for the workers' relay.
    assert not [name for name, _labels in samples if name == "hotline_tickets"]
    assert samples[("hotline_outbox_backlog", ())] == 1.0
    assert samples[("hotline_sms_unanswered", ())] == 1.0
    assert 0.0 <= samples[("hotline_sms_oldest_unanswered_seconds", ())] < 60.0
    relay = OutboxRelay(settings)
    try:
        assert relay.relay_once() == 1
    finally:
        relay.stop()
    # A worker answers the text; its job relays the case's SLA timers, hours ahead.
    assert SimpleWorker(
        [queue(redis_conn, "high")], connection=redis_conn, serializer=JSONSerializer
    ).work(burst=True)
    samples = _scrape(app)
    assert samples[("hotline_tickets", (("state", "dispatched"),))] == 1.0
    assert samples[("hotline_outbox_backlog", ())] == 0.0
    assert samples[("hotline_sms_unanswered", ())] == 0.0
    assert samples[("hotline_sms_oldest_unanswered_seconds", ())] == 0.0
    assert samples[("hotline_database_up", ())] == 1.0
    assert samples[("hotline_redis_up", ())] == 1.0
    waiting = sum(
        samples[(name, (("queue", q),))]
        for name in ("hotline_rq_queue_depth", "hotline_rq_scheduled")
        for q in ("high", "default", "low")
    )
    in_rq = [
        job
        for q in ("high", "default", "low")
        for job in (
            *Queue(q, connection=redis_conn, serializer=JSONSerializer).get_job_ids(),
            *ScheduledJobRegistry(
                q, connection=redis_conn, serializer=JSONSerializer
            ).get_job_ids(),
        )
    ]
    assert waiting == len(in_rq)
    # The ticket's SLA timers, besides the worker's own upkeep jobs.
    assert len([job for job in in_rq if job.startswith("outbox-")]) == 3
    assert samples[("hotline_sla_breaches", ())] == 0.0
    sms = (("method", "POST"), ("route", "/twilio/sms"), ("status", "200"))
    assert samples[("hotline_http_request_duration_seconds_count", sms)] == 1.0
    by_id = (("method", "GET"), ("route", "/api/institutions/{institution_id}"), ("status", "404"))
    assert samples[("hotline_http_request_duration_seconds_count", by_id)] == 1.0
    assert not any("999999" in str(labels) for _name, labels in samples)


def test_outbox_backlog_and_redis_down_are_visible_and_the_scrape_stays_fast(
    settings: Settings, clean_db: Engine, twilio: TwilioSigner, tmp_path: Path
) -> None:
    own = EmbeddedRedis(tmp_path / "redis")
    own.start()
    app = create_app(settings.model_copy(update={"redis_url": own.url}))
    try:
        own.stop()
        with TestClient(app) as client:
            assert twilio.post(client, "/twilio/sms", sms_params(BODY)).status_code == 200
            started = time.perf_counter()
            with TestClient(app, client=LOOPBACK_CLIENT) as local:
                response = local.get("/metrics")
            took = time.perf_counter() - started
    finally:
        own.stop()
    samples = _samples(response.text)
    assert samples[("hotline_redis_up", ())] == 0.0
    assert samples[("hotline_database_up", ())] == 1.0
    # The text's answer, waiting in the outbox for Redis (no ticket until a worker runs it).
    assert samples[("hotline_outbox_backlog", ())] == 1.0
    assert samples[("hotline_outbox_oldest_unrelayed_seconds", ())] >= 0.0
    assert not [name for name, _labels in samples if name == "hotline_tickets"]
    assert took < 3.0  # a dead Redis socket fails at once; the database part is a few counts


# --- request ids ------------------------------------------------------------------------------


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
    assert given.headers["X-Request-ID"] == "req-abc.123"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-ID"])
    assert made.headers["X-Request-ID"] != client.get("/healthz").headers["X-Request-ID"]
    hostile = client.get("/healthz", headers={"X-Request-ID": 'x" injected\\n{' + "a" * 300})
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["X-Request-ID"])


def test_request_id_follows_the_webhook_into_the_outbox_and_the_job_log(
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
    redis_conn: redis.Redis,
    log_lines: io.StringIO,
) -> None:
    response = twilio.post(
        client,
        "/twilio/sms",
        sms_params(BODY, settings=settings),
        headers={"X-Request-ID": "twilio-req-0001"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "twilio-req-0001"
    with Session(clean_db) as session:
        [answer] = session.exec(select(OutboxMessage)).all()
    assert answer.task == "sms_answer"
    assert answer.payload.get("request_id") == "twilio-req-0001"

    # A real RQ worker answers the text: the job's log lines (the runner's and the dialogue's)
    # carry the webhook's id, and so do the case's SLA timers the job writes.
    redis_conn.flushdb()
    assert relay_outbox(session_factory_for(clean_db), redis_conn) == 1
    log_lines.truncate(0)
    log_lines.seek(0)
    worker = SimpleWorker(
        [queue(redis_conn, "high")], connection=redis_conn, serializer=JSONSerializer
    )
    assert worker.work(burst=True)
    answer_lines = [
        r for r in _records(log_lines) if r["logger"] in ("tickets.tasks", "ivr_flows.sms")
    ]
    assert {r["logger"] for r in answer_lines} == {"tickets.tasks", "ivr_flows.sms"}
    assert all(r.get("request_id") == "twilio-req-0001" for r in answer_lines), answer_lines
    with Session(clean_db) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.id) != answer.id)
            .order_by(col(OutboxMessage.id))
        ).all()
        assert session.exec(select(InboundMessage)).one().answered_at is not None
    assert len(rows) == 3
    assert all(row.payload.get("request_id") == "twilio-req-0001" for row in rows)

    # Run one of those in a real RQ worker too: the job's log line carries the same id, and the
    # job's own follow-up outbox row (an early SLA check reschedules itself) carries it on.
    redis_conn.flushdb()
    queue(redis_conn, "high").enqueue("tickets.tasks.run_outbox_job", rows[0].id)
    log_lines.truncate(0)
    log_lines.seek(0)
    assert worker.work(burst=True)
    job_lines = [r for r in _records(log_lines) if r["logger"] == "tickets.tasks"]
    assert job_lines and all(r.get("request_id") == "twilio-req-0001" for r in job_lines)
    with Session(clean_db) as session:
        follow_up = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.id) > max(r.id or 0 for r in rows))
        ).all()
    assert follow_up and all(r.payload.get("request_id") == "twilio-req-0001" for r in follow_up)
    # After the job, this process has no request id any more.
    logging.getLogger("tests.after").warning("after the job")
    assert "request_id" not in _records(log_lines)[-1]


def test_request_id_follows_a_voice_call_into_its_confirmation_sms_job(
    app: FastAPI,
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    clean_db: Engine,
    redis_conn: redis.Redis,
    log_lines: io.StringIO,
) -> None:
    """Every job a voice webhook causes goes through the outbox, so the step that opened the
    ticket names the request in the confirmation SMS job's log lines too."""
    app.state.clock = lambda: OFFICE_HOURS
    call = PhoneCall(client, twilio, settings)
    call.start()
    call.silence()
    confirm = call.say("想申请贷款 渝北")
    call.post(confirm.action, headers={"X-Request-ID": "twilio-call-0002"}, Digits="1")
    with Session(clean_db) as session:
        [row] = session.exec(select(OutboxMessage).where(OutboxMessage.task == "ticket_sms")).all()
    assert row.payload["request_id"] == "twilio-call-0002"
    assert row.relayed_at is not None  # relayed into RQ after the response

    log_lines.truncate(0)
    log_lines.seek(0)
    worker = SimpleWorker(
        [queue(redis_conn, "default")], connection=redis_conn, serializer=JSONSerializer
    )
    assert worker.work(burst=True)
    sms_lines = [r for r in _records(log_lines) if r["logger"] == "ivr_flows.jobs"]
    assert sms_lines and all(r.get("request_id") == "twilio-call-0002" for r in sms_lines)
    assert "voice_confirmation SMS" in str(sms_lines[0]["message"])
    job_lines = [
        r
        for r in _records(log_lines)
        if r["logger"] == "tickets.tasks" and "ticket_sms" in str(r["message"])
    ]
    assert job_lines and all(r.get("request_id") == "twilio-call-0002" for r in job_lines)


# --- structured, masked logs ----------------------------------------------------------------


def test_every_line_is_one_json_object_with_phones_bodies_and_secrets_masked(
    settings: Settings, log_lines: io.StringIO
) -> None:
    log = logging.getLogger("tests.masking")
    log.info("SMS from %s to 13912345678", CALLER)
    log.info("inbound", extra={"Body": BODY, "From": CALLER, "auth_token": "x" * 12})
    log.warning("twilio auth token is %s", settings.auth_token)
    log.info("headers: Authorization: Bearer abcdefghijkl123")
    log.info("connecting to postgresql+psycopg://hotline:s3cr3t-pw@db.internal/hotline")
    try:
        raise RuntimeError(f"failed for {CALLER} with token={settings.auth_token}")
    except RuntimeError:
        log.exception("boom\nsecond line")
    lines = log_lines.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses alone
    assert len(records) == 6
    text = log_lines.getvalue()
    for leaked in (
        CALLER,
        "8613800138000",
        "13912345678",
        BODY,
        settings.auth_token,
        "abcdefghijkl123",
        "s3cr3t-pw",
        "x" * 12,
    ):
        assert leaked not in text, leaked
    first = records[0]
    assert first["level"] == "INFO" and first["logger"] == "tests.masking"
    assert "+861****8000" in str(first["message"]) and "1391****5678" in str(first["message"])
    assert records[1]["Body"] == "[masked]" and records[1]["auth_token"] == "[secret]"
    assert records[1]["From"] == "+861****8000"
    assert "Traceback" in str(records[5]["exception"])
    assert "\n" not in lines[5]


def test_a_real_webhook_logs_neither_the_callers_number_nor_the_body_nor_the_token(
    client: TestClient,
    twilio: TwilioSigner,
    settings: Settings,
    log_lines: io.StringIO,
    clean_db: Engine,
    redis_conn: redis.Redis,
) -> None:
    params = sms_params(BODY, settings=settings)
    assert twilio.post(client, "/twilio/sms", params).status_code == 200
    # A forged request, and one with a bearer token on the API, are logged too if at all.
    forged = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": "AAAA"})
    assert forged.status_code == 403
    client.get("/api/tickets", headers={"Authorization": "Bearer not-a-real-token-42"})
    # The job answering the text, in a real RQ worker: its lines (RQ's own included) too.
    assert relay_outbox(session_factory_for(clean_db), redis_conn) == 1
    assert SimpleWorker(
        [queue(redis_conn, "high")], connection=redis_conn, serializer=JSONSerializer
    ).work(burst=True)
    records = _records(log_lines)
    answered = [r for r in records if r["logger"] == "ivr_flows.sms"]
    assert answered and "138****8000" in str(answered[0]["message"])  # masked, not left out
    text = log_lines.getvalue()
    assert text, "the request was logged at DEBUG"
    for leaked in (CALLER, BODY, settings.auth_token, "not-a-real-token-42"):
        assert leaked not in text, leaked
    for line in text.splitlines():
        json.loads(line)
    with Session(clean_db) as session:
        assert session.exec(select(Ticket)).one().caller_phone == CALLER  # stored, not logged


@pytest.mark.parametrize(
    ("uvicorn_access_log", "level", "written"),
    [(True, "INFO", True), (True, "WARNING", False), (False, "INFO", False)],
)
def test_uvicorns_access_lines_follow_its_switch_and_the_hotlines_level(
    uvicorn_access_log: bool, level: str, written: bool
) -> None:
    """As uvicorn leaves its access logger before the app configures logging: with a handler
    of its own at INFO, or (``--no-access-log``) with none and cut off from the root."""
    from uvicorn.config import LOGGING_CONFIG, Config

    access = logging.getLogger("uvicorn.access")
    saved = (access.handlers[:], access.propagate, access.level)
    Config("hotline.app:app", log_config=LOGGING_CONFIG, access_log=uvicorn_access_log)
    stream = io.StringIO()
    handler = configure_logging(level, stream=stream)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "POST", "/twilio/sms", "1.1", 200)
        lines = _records(stream)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        access.handlers, access.propagate = saved[0], saved[1]
        access.setLevel(saved[2])
    assert bool(lines) == written
    if written:
        assert lines[0]["logger"] == "uvicorn.access" and "/twilio/sms" in str(lines[0]["message"])
