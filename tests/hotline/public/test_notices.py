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
from datetime import date, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from hotline.cli import app as cli
from hotline.public import notices
from hotline.public.models import Notice, NoticeDelivery
from hotline.queue import queue
from hotline.settings import Settings
from kb.articles import import_articles
from kb.db import utcnow
from kb.subscriptions import subscribe
from tests.conftest import TwilioSigner
from tickets.models import Firm, OutboundMessage, Role
from tickets.outbox import session_factory_for
from tickets.service import Actor

TODAY = date(2026, 11, 28)
SUPERVISOR = Actor("user:sue", Role.supervisor)
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
        notice = notices.publish(session, SLUG, actor=SUPERVISOR, today=TODAY, batch_size=3)
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


def test_publish_refusals(session: Session) -> None:
    import_articles(session)
    with pytest.raises(notices.NoticeError, match="no article"):
        notices.publish(session, "nope", actor=SUPERVISOR, today=TODAY)
    with pytest.raises(notices.NoticeError, match="expired"):
        notices.publish(session, "testing-voucher-2025", actor=SUPERVISOR, today=TODAY)
    with pytest.raises(notices.NoticeError, match="unknown district"):
        notices.publish(session, SLUG, actor=SUPERVISOR, today=TODAY, districts=["atlantis"])


def test_audience_override_by_district(session: Session) -> None:
    import_articles(session)
    subscribe(session, _phone(1), ["financing"], ["yubei"])
    subscribe(session, _phone(2), ["financing"], ["wanzhou"])
    subscribe(session, _phone(3), ["market"], ["yubei"])
    notice = notices.publish(session, SLUG, actor=SUPERVISOR, today=TODAY, districts=["yubei"])
    phones = session.exec(
        select(NoticeDelivery.phone).where(NoticeDelivery.notice_id == notice.id)
    ).all()
    assert phones == [_phone(1)]
    wider = notices.publish(
        session, SLUG, actor=SUPERVISOR, today=TODAY, categories=["financing", "market"]
    )
    assert wider.recipients == 3


def test_delivery_status_from_twilio_callbacks(
    clean_db: Engine, client: TestClient, twilio: TwilioSigner
) -> None:
    _setup(clean_db, 3)
    with Session(clean_db, expire_on_commit=False) as session:
        notice = notices.publish(session, SLUG, actor=SUPERVISOR, today=TODAY)
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


def _spawn_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hotline", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse
    worker.wait(timeout=10)


def test_worker_killed_mid_send_resumes_by_itself_without_duplicates(
    clean_db: Engine, settings: Settings, redis_conn: redis.Redis
) -> None:
    total = 40
    _setup(clean_db, total)
    with Session(clean_db, expire_on_commit=False) as session:
        notice = notices.publish(
            session, SLUG, actor=SUPERVISOR, today=TODAY, batch_size=15, rate_per_second=25
        )
        session.commit()
    assert notice.id is not None
    notices.enqueue(redis_conn, notice.id)
    env = _worker_env(settings)
    worker = _spawn_worker(env)
    try:
        deadline = time.monotonic() + 60
        while sum(_sent_per_phone(clean_db).values()) < 10:
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker sent nothing"
            time.sleep(0.02)
    finally:
        _kill(worker)
    partial = _sent_per_phone(clean_db)
    assert 10 <= sum(partial.values()) < total
    assert set(partial.values()) == {1}
    with Session(clean_db, expire_on_commit=False) as session:
        assert notices.unfinished(session) == [notice.id]

    # A worker starts again (as systemd or `make run` would restart it); nobody runs
    # `hotline notify --resume`: its maintenance finds the notice stranded once the dead
    # sender's lease lapses, and finishes it.
    restarted = _spawn_worker(env)
    try:
        deadline = time.monotonic() + 90
        while True:
            with Session(clean_db, expire_on_commit=False) as session:
                state = notices.progress(session, notice.id)
                # The last delivery commits before the notice is stamped finished: wait for both.
                finished = session.get_one(Notice, notice.id).finished_at is not None
            if state.done and finished:
                break
            assert restarted.poll() is None, "the restarted worker exited"
            assert time.monotonic() < deadline, f"not resumed: {state}"
            time.sleep(0.2)
    finally:
        _kill(restarted)
    final = _sent_per_phone(clean_db)
    assert set(final) == {_phone(n) for n in range(total)}
    assert set(final.values()) == {1}, {p: c for p, c in final.items() if c != 1}
    with Session(clean_db, expire_on_commit=False) as session:
        state = notices.progress(session, notice.id)
        assert (state.total, state.sent, state.pending) == (total, total, 0)
        for delivery in session.exec(select(NoticeDelivery)).all():
            assert delivery.outbound_message_id is not None


def _burst(connection: redis.Redis) -> None:
    worker = SimpleWorker(
        [queue(connection, notices.QUEUE)], connection=connection, serializer=JSONSerializer
    )
    worker.work(burst=True)


def _quick_notice(engine: Engine, count: int) -> int:
    _setup(engine, count)
    with Session(engine, expire_on_commit=False) as session:
        notice = notices.publish(
            session, SLUG, actor=SUPERVISOR, today=TODAY, batch_size=2, rate_per_second=1000
        )
        session.commit()
    assert notice.id is not None
    return notice.id


def test_one_sender_at_a_time_and_the_maintenance_restarts_a_stalled_notice(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    notice_id = _quick_notice(clean_db, 5)
    factory = session_factory_for(clean_db)
    # Another sender holds the notice: a job for it stands down and sends nothing.
    other = notices.SenderLock(redis_conn, notice_id)
    assert other.acquire()
    notices.enqueue(redis_conn, notice_id)
    _burst(redis_conn)
    assert sum(_sent_per_phone(clean_db).values()) == 0
    # ... and while it holds the lock, the maintenance leaves the notice alone.
    assert notices.resume_stranded(factory, redis_conn) == []
    # The other sender died (its lease is gone) and its job is finished: nothing will send
    # the notice, so the maintenance queues it once, however many workers look.
    other.release()
    assert notices.resume_stranded(factory, redis_conn) == [notice_id]
    assert notices.resume_stranded(factory, redis_conn) == []  # its job is queued
    assert redis_conn.llen(f"rq:queue:{notices.QUEUE}") == 1
    _burst(redis_conn)  # batches of two, each job queuing the next
    per_phone = _sent_per_phone(clean_db)
    assert sum(per_phone.values()) == 5 and set(per_phone.values()) == {1}
    assert notices.resume_stranded(factory, redis_conn) == []
    assert not redis_conn.exists(f"hotline:notice:{notice_id}:sender")  # released


def test_the_maintenance_queues_a_notice_whose_job_was_lost_or_whose_worker_died(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    notice_id = _quick_notice(clean_db, 3)
    factory = session_factory_for(clean_db)
    # Published, committed, never queued (Redis was down at that moment).
    assert notices.resume_stranded(factory, redis_conn) == [notice_id]
    job = Job.fetch(
        redis_conn.get(f"hotline:notice:{notice_id}:job").decode(),  # type: ignore[union-attr]
        connection=redis_conn,
        serializer=JSONSerializer,
    )
    # Its worker took it and died before taking the sender lock: "started" in RQ for a while.
    job.set_status(JobStatus.STARTED)
    job.started_at = utcnow()
    job.save()
    redis_conn.delete(f"hotline:notice:{notice_id}:resumed")
    assert notices.resume_stranded(factory, redis_conn) == []  # may still take the lock
    job.started_at = utcnow() - timedelta(seconds=notices.LOCK_SECONDS + 1)
    job.save()
    assert notices.resume_stranded(factory, redis_conn) == [notice_id]
    # A job that keeps failing is not queued again on every round.
    fresh = Job.fetch(
        redis_conn.get(f"hotline:notice:{notice_id}:job").decode(),  # type: ignore[union-attr]
        connection=redis_conn,
        serializer=JSONSerializer,
    )
    fresh.delete()
    assert notices.resume_stranded(factory, redis_conn) == []
    redis_conn.delete(f"hotline:notice:{notice_id}:resumed")
    assert notices.resume_stranded(factory, redis_conn) == [notice_id]


def test_exactly_once_is_the_database_s_rule(clean_db: Engine) -> None:
    notice_id = _quick_notice(clean_db, 1)
    with Session(clean_db) as session:
        session.add(NoticeDelivery(notice_id=notice_id, phone=_phone(0)))
        with pytest.raises(IntegrityError):
            session.commit()


def test_only_supervisors_and_admins_publish(session: Session) -> None:
    import_articles(session)
    subscribe(session, _phone(1), ["financing"])
    for role in (Role.agent, Role.institution):
        actor = Actor("user:x", role, 1 if role == Role.institution else None)
        with pytest.raises(notices.NoticeForbidden):
            notices.publish(session, SLUG, actor=actor, today=TODAY)
    assert session.exec(select(Notice)).all() == []
    admin = notices.publish(session, SLUG, actor=Actor("user:root", Role.admin), today=TODAY)
    assert admin.created_by == "user:root" and admin.recipients == 1


def test_draft_counts_the_audience_without_opted_out_numbers(session: Session) -> None:
    import_articles(session)
    for n in range(4):
        subscribe(session, _phone(n), ["financing"], ["yubei"] if n % 2 else [])
    session.add(Firm(phone=_phone(2), sms_opted_out=True))
    session.flush()
    whole = notices.draft(session, SLUG, today=TODAY)
    assert (whole.size.subscribed, whole.size.opted_out, whole.size.reachable) == (4, 1, 3)
    assert whole.body_zh.startswith("【中小企业服务热线】")
    wanzhou = notices.draft(session, SLUG, today=TODAY, districts=["wanzhou"])
    assert (wanzhou.size.subscribed, wanzhou.size.reachable) == (2, 1)  # the city-wide ones
    assert session.exec(select(Notice)).all() == []  # a draft writes nothing
    with pytest.raises(notices.NoticeError) as refused:
        notices.draft(session, SLUG, today=TODAY, categories=["plumbing"])
    assert (refused.value.code, refused.value.value) == ("unknown_category", "plumbing")


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
    # --resume re-queues unfinished notices at once, without waiting for the maintenance.
    redis_conn.delete("rq:queue:low")
    resumed = CliRunner().invoke(cli, ["notify", "--resume"], env=env)
    assert resumed.exit_code == 0 and "re-queued 1 notice(s): [1]" in resumed.output
    assert redis_conn.llen("rq:queue:low") == 1
