"""Fixtures over real parts: a real SQLite file (or the PostgreSQL server named by
HOTLINE_DATABASE_URL), the real embedded Redis (or HOTLINE_REDIS_URL), the real app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

import hotline.models_registry  # noqa: F401
from hotline.app import create_app
from hotline.database import upgrade
from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings, load_settings
from hotline.wiring import configure_domain
from kb import db
from kb.models import CatalogueChange, Institution
from kb.service import catalogue_service
from routing import quality
from tickets.models import OutboundMessage

# Catalogue tables survive between tests (loaded once); everything else is emptied after each.
CATALOGUE_TABLES = {
    "category",
    "district",
    "cluster",
    "institution",
    "institution_category",
    "catalogue_change",
    "alembic_version",
}
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def redis_url(var_dir: Path) -> Iterator[str]:
    configured = os.environ.get("HOTLINE_REDIS_URL")
    if configured:
        redis.Redis.from_url(configured).flushdb()
        yield configured
        return
    server = EmbeddedRedis(var_dir / "redis")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def settings(var_dir: Path, redis_url: str) -> Settings:
    database_url = os.environ.get("HOTLINE_DATABASE_URL") or f"sqlite:///{var_dir / 'test.db'}"
    return load_settings(
        var_dir=var_dir,
        database_url=database_url,
        redis_url=redis_url,
        twilio_account_sid=None,
        twilio_auth_token="test-auth-token-0123456789abcdef",
        public_base_url="https://hotline.example.test",
        # Each line at once, into whatever stderr pytest captures for the test that logged it
        # (batches have tests of their own: tests/hotline/test_logging_setup.py).
        log_flush_seconds=0,
    )


def _reset_schema(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    configure_domain(settings)
    engine = db.get_engine()
    _reset_schema(engine)
    upgrade(settings)
    with Session(engine) as session:
        catalogue_service.load(session, actor="test:setup")
        session.commit()
    yield engine
    engine.dispose()


def _clean(engine: Engine) -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in CATALOGUE_TABLES]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())
        conn.execute(Institution.__table__.update().values(open_cases=0))  # type: ignore[attr-defined]
    quality.forget_measured()


def _catalogue_marker(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(CatalogueChange.id)).all())


def reload_catalogue(engine: Engine) -> None:
    """Back to the demo catalogue exactly: drop catalogue rows, load the files again."""
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            if table.name in CATALOGUE_TABLES - {"alembic_version"}:
                conn.execute(table.delete())
    with Session(engine) as session:
        catalogue_service.load(session, actor="test:setup")
        session.commit()


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """The database, emptied of cases after the test; the catalogue reloaded if it changed."""
    before = _catalogue_marker(engine)
    yield engine
    _clean(engine)
    if _catalogue_marker(engine) != before:
        reload_catalogue(engine)


@pytest.fixture
def session(clean_db: Engine) -> Iterator[Session]:
    with Session(clean_db, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture
def app(settings: Settings, clean_db: Engine):  # type: ignore[no-untyped-def]
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.flushdb()
    connection.close()


class TwilioSigner:
    """Signs requests exactly as Twilio does, with the twilio library's own validator."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.validator = RequestValidator(settings.auth_token)

    def signature(self, path: str, params: dict[str, str]) -> str:
        return str(self.validator.compute_signature(self.settings.public_base_url + path, params))

    def post(self, client: TestClient, path: str, params: dict[str, str], **kwargs: object):  # type: ignore[no-untyped-def]
        headers = {"X-Twilio-Signature": self.signature(path, params)}
        headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        return client.post(path, data=params, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def twilio(settings: Settings) -> TwilioSigner:
    return TwilioSigner(settings)


def sms_params(
    body: str,
    *,
    sid: str = "SM" + "1" * 32,
    sender: str = "+8613800138000",
    settings: Settings | None = None,
) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": settings.main_number if settings else "+862312345",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


@pytest.fixture(autouse=True)
def _flush_jobs_left_by_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that sent requests through the app leaves the jobs they relayed in the shared
    Redis; RQ job ids are ``outbox-<row id>`` and the emptied tables number rows from 1 again,
    so the next test's job would be refused as a duplicate. Emptied after such a test."""
    url = (
        request.getfixturevalue("redis_url")
        if {"app", "client"} & set(request.fixturenames)
        else None
    )
    yield
    if url is not None:
        connection = redis.Redis.from_url(url)
        connection.flushdb()
        connection.close()


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends while the block runs, in order."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def kill_other_connections(engine: Engine) -> int:
    """PostgreSQL: terminate every other connection to the test database (a server restart,
    as the app's pools see it); returns how many."""
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        conn.commit()
    return int(killed)


def answer_texts(engine: Engine) -> list[str]:
    """Run the jobs that answer stored texts (the outbox task ``sms_answer``) in order, as a
    worker would; their results."""
    from ivr_flows.sms import ANSWER_TASK
    from tickets.models import OutboxMessage
    from tickets.tasks import run_outbox_job

    with Session(engine) as session:
        waiting = session.exec(
            select(OutboxMessage.id)
            .where(OutboxMessage.task == ANSWER_TASK, OutboxMessage.done_at == None)  # noqa: E711
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
    return [run_outbox_job(row_id or 0) for row_id in waiting]


def text_hotline(client: TestClient, twilio: TwilioSigner, params: dict[str, str]) -> str:
    """Text the hotline through its webhook, let a worker answer, and return the reply (empty:
    none). The webhook itself must have answered at once with empty TwiML."""
    from ivr_flows.sms import reply_to

    response = twilio.post(client, "/twilio/sms", params)
    assert response.status_code == 200, response.text
    assert response.text.endswith("<Response />"), response.text
    engine = db.get_engine()
    answer_texts(engine)
    with Session(engine) as session:
        reply = reply_to(session, params["MessageSid"])
    assert reply is not None, "the text was not stored, or its job did not answer it"
    return reply


@pytest.fixture
def sms_worker(engine: Engine) -> Iterator[None]:
    """Texts answered while the test runs, as a worker answers them: a thread running the
    waiting ``sms_answer`` jobs (the real job code, in this process) every few milliseconds.
    For tests of what waits for the reply (the phone simulator)."""
    import threading

    stopping = threading.Event()
    failures: list[BaseException] = []

    def work() -> None:
        while not stopping.wait(0.05):
            try:
                answer_texts(engine)
            except Exception as exc:  # noqa: BLE001 - reported by the fixture's teardown
                failures.append(exc)

    thread = threading.Thread(target=work, name="sms-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(timeout=10)
    assert not failures, failures


def replies_sent(engine: Engine, to: str | None = None) -> list[OutboundMessage]:
    """The replies to texts the workers sent (``sms_reply``), to ``to`` or to anyone, oldest
    first."""
    from ivr_flows.sms import REPLY_PURPOSE

    query = select(OutboundMessage).where(OutboundMessage.purpose == REPLY_PURPOSE)
    if to is not None:
        query = query.where(OutboundMessage.to_number == to)
    with Session(engine) as session:
        return list(session.exec(query.order_by(OutboundMessage.id)).all())  # type: ignore[arg-type]


def count_rows(engine: Engine, model: type) -> int:
    """How many rows ``model``'s table holds."""
    from sqlalchemy import func

    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())
