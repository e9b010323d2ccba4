"""Publishing a notice to its audience and fanning it out as SMS: once per recipient, opted-out
firms skipped, delivery status from Twilio's callbacks; and a worker killed half-way resumes
without sending anyone the notice twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from hotline.cli import app as cli
from hotline.public import notices
from hotline.public.models import Notice, NoticeDelivery
from hotline.settings import Settings
from kb.articles import import_articles
from kb.subscriptions import subscribe
from tests.conftest import TwilioSigner
from tickets.models import Firm, OutboundMessage
from tickets.outbox import session_factory_for

TODAY = date(2026, 11, 28)
SLUG = "loan-interest-subsidy-2026"


def _phone(n: int) -> str:
    return f"+86139{n:08d}"


def _setup(engine: Engine, count: int, *, opted_out: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    with Session(engine, expire_on_commit=False) as session:
        import_articles(session)
        for n in range(count):
            subscribe(session, _phone(n), ["financing"])
            if n in opted_out:
                session.add(Firm(phone=_phone(n), sms_opted_out=True))
        subscribe(session, _phone(9999), ["legal"])  # not in the audience
        session.commit()


def _sent_per_phone(engine: Engine) -> Counter[str]:
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(
            select(OutboundMessage.to_number).where(OutboundMessage.purpose == "notice")
        ).all()
    return Counter(rows)


def test_publish_and_send_each_recipient_once(clean_db: Engine) -> None:
    _setup(clean_db, 7, opted_out={3})
    with Session(clean_db, expire_on_commit=False) as session:
        session.add(Firm(phone=_phone(5), language="en"))
        notice = notices.publish(session, SLUG, actor="user:sue", today=TODAY, batch_size=3)
        session.commit()
    assert notice.id is not None and notice.recipients == 7
    assert "贷款贴息" in notice.body_zh and "退订 financing" in notice.body_zh
    assert len(notice.body_zh) <= notices.SMS_CHARS

    factory = session_factory_for(clean_db)
    assert notices.send_batch(factory, notice.id, pause=False) == 3
    with Session(clean_db, expire_on_commit=False) as session:
        middle = notices.progress(session, notice.id)
    assert (middle.total, middle.pending) == (7, 4)
    assert notices.send_batch(factory, notice.id, pause=False) == 3
    assert notices.send_batch(factory, notice.id, pause=False) == 1
    assert notices.send_batch(factory, notice.id, pause=False) == 0

    per_phone = _sent_per_phone(clean_db)
    assert set(per_phone) == {_phone(n) for n in range(7)} and set(per_phone.values()) == {1}
    with Session(clean_db, expire_on_commit=False) as session:
        state = notices.progress(session, notice.id)
        assert (state.sent, state.suppressed, state.pending) == (6, 1, 0)
        messages = {
            m.to_number: m
            for m in session.exec(
                select(OutboundMessage).where(OutboundMessage.purpose == "notice")
            ).all()
        }
        assert messages[_phone(3)].status == "suppressed"
        assert messages[_phone(5)].body.startswith("SME hotline:")
        assert messages[_phone(0)].body.startswith("【中小企业服务热线】")
        assert session.get(Notice, notice.id).finished_at is not None  # type: ignore[union-attr]


def test_publish_refusals(session: Session) -> None:
    import_articles(session)
    with pytest.raises(notices.NoticeError, match="no article"):
        notices.publish(session, "nope", actor="x", today=TODAY)
    with pytest.raises(notices.NoticeError, match="expired"):
        notices.publish(session, "testing-voucher-2025", actor="x", today=TODAY)
    with pytest.raises(notices.NoticeError, match="unknown district"):
        notices.publish(session, SLUG, actor="x", today=TODAY, districts=["atlantis"])


def test_audience_override_by_district(session: Session) -> None:
    import_articles(session)
    subscribe(session, _phone(1), ["financing"], ["yubei"])
    subscribe(session, _phone(2), ["financing"], ["wanzhou"])
    subscribe(session, _phone(3), ["market"], ["yubei"])
    notice = notices.publish(session, SLUG, actor="x", today=TODAY, districts=["yubei"])
    phones = session.exec(
        select(NoticeDelivery.phone).where(NoticeDelivery.notice_id == notice.id)
    ).all()
    assert phones == [_phone(1)]
    wider = notices.publish(
        session, SLUG, actor="x", today=TODAY, categories=["financing", "market"]
    )
    assert wider.recipients == 3


def test_delivery_status_from_twilio_callbacks(
    clean_db: Engine, client: TestClient, twilio: TwilioSigner
) -> None:
    _setup(clean_db, 3)
    with Session(clean_db, expire_on_commit=False) as session:
        notice = notices.publish(session, SLUG, actor="x", today=TODAY)
        session.commit()
    assert notice.id is not None
    notices.send_batch(session_factory_for(clean_db), notice.id, pause=False)
    # Twilio would have given each message a SID; the offline adapter leaves it to us.
    with Session(clean_db, expire_on_commit=False) as session:
        rows = session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.purpose == "notice")
            .order_by(col(OutboundMessage.id))
        ).all()
        for i, row in enumerate(rows):
            row.provider_sid = f"SM{i:032d}"
            session.add(row)
        session.commit()
    for sid, status in (
        (f"SM{0:032d}", "sent"),
        (f"SM{0:032d}", "delivered"),
        (f"SM{1:032d}", "undelivered"),
        (f"SM{2:032d}", "sent"),
    ):
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
        response = twilio.post(client, "/twilio/message-status", params)
        assert response.status_code == 200, response.text
    with Session(clean_db, expire_on_commit=False) as session:
        state = notices.progress(session, notice.id)
    assert (state.sent, state.delivered, state.failed, state.pending) == (3, 1, 1, 0)


def _worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOTLINE_DATABASE_URL=settings.database_url,
        HOTLINE_REDIS_URL=settings.redis_url or "",
        HOTLINE_VAR_DIR=str(settings.var_dir),
        HOTLINE_TWILIO_AUTH_TOKEN=settings.auth_token,
        HOTLINE_PUBLIC_BASE_URL=settings.public_base_url,
    )
    env.pop("HOTLINE_TWILIO_ACCOUNT_SID", None)
    return env


def test_worker_killed_mid_send_resumes_without_duplicates(
    clean_db: Engine, settings: Settings, redis_conn: redis.Redis
) -> None:
    total = 40
    _setup(clean_db, total)
    with Session(clean_db, expire_on_commit=False) as session:
        notice = notices.publish(
            session, SLUG, actor="x", today=TODAY, batch_size=15, rate_per_second=25
        )
        session.commit()
    assert notice.id is not None
    notices.enqueue(redis_conn, notice.id)
    env = _worker_env(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hotline", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(_sent_per_phone(clean_db).values()) < 10:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker sent nothing"
            time.sleep(0.02)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse
        worker.wait(timeout=10)
    partial = _sent_per_phone(clean_db)
    assert 10 <= sum(partial.values()) < total
    assert set(partial.values()) == {1}
    with Session(clean_db, expire_on_commit=False) as session:
        assert notices.unfinished(session) == [notice.id]

    # Restart: the unfinished notice is queued again and a fresh worker finishes it.
    result = CliRunner().invoke(cli, ["notify", "--resume"], env=env)
    assert result.exit_code == 0, result.output
    assert f"[{notice.id}]" in result.output
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "worker", "--burst"],
        env=env,
        timeout=120,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    final = _sent_per_phone(clean_db)
    assert set(final) == {_phone(n) for n in range(total)}
    assert set(final.values()) == {1}, {p: c for p, c in final.items() if c != 1}
    with Session(clean_db, expire_on_commit=False) as session:
        state = notices.progress(session, notice.id)
        assert (state.total, state.sent, state.pending) == (total, total, 0)
        for delivery in session.exec(select(NoticeDelivery)).all():
            assert delivery.outbound_message_id is not None


def test_cli_notify_no_wait_and_errors(
    clean_db: Engine, settings: Settings, redis_conn: redis.Redis
) -> None:
    _setup(clean_db, 2)
    env = _worker_env(settings)
    result = CliRunner().invoke(cli, ["notify", SLUG, "--no-wait"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 recipient(s)" in result.output
    assert redis_conn.llen("rq:queue:low") == 1
    bad = CliRunner().invoke(cli, ["notify", SLUG, "--category", "plumbing"], env=env)
    assert bad.exit_code == 1 and "unknown category" in bad.output
    expired = CliRunner().invoke(cli, ["notify", "testing-voucher-2025"], env=env)
    assert expired.exit_code == 1 and "expired" in expired.output
