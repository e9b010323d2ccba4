"""Jobs: the outbox relay, RQ workers running revisit, SLA and SMS-answer jobs, and scheduled
revisits.

Three parts, on PostgreSQL + Redis (default) or on SQLite + the embedded Redis (``--sqlite``):

- ``relay``: N outbox rows committed, then :func:`tickets.outbox.relay_outbox` (the function the
  web process and the worker run) moves them into RQ until none is left: rows per second, for
  rows due now (``enqueue``) and rows due later (``enqueue_at``);
- ``workers``: three kinds of job, each run by 1, 2 and 4 real ``hotline worker`` processes:
  jobs per second from the first job started to the last done, and a check in the database
  that each effect happened exactly once. Revisit-call jobs (each places a call through the
  offline telephony adapter, writes its event and schedules its answer timeout); SLA
  accept-clock jobs (each escalates its ticket and queues the notice to the district window,
  which the workers also send); and SMS-answer jobs (``sms_answer``): texts stored as the
  webhook stores them (:func:`ivr_flows.sms.accept_text`: the message and its outbox job), each
  from its own sender and asking for a loan in a named district, so that each job classifies
  the text, routes it, opens and dispatches a ticket (writing its SLA timers, which the job
  relays into RQ's scheduler), stores the reply on the message and sends it through the
  offline adapter. Checked: every text answered, one reply (``sms_reply``) and one ticket per
  sender, every job's outbox row done with the result ``answered``;
- ``scheduled``: revisit calls written to the outbox with their due time (``outbox.add``, as
  ``TicketService.resolve`` does) and relayed into RQ's scheduler: time to schedule, and Redis
  memory (INFO used_memory) before and after, per scheduled revisit.

The worker jobs run ``tickets.tasks.run_outbox_job(id, now=...)`` with ``now`` pinned to a
working morning a few days ahead (calls are placed only inside the call window on working
days; the machine's clock may be on a Sunday night). Tickets are made through the ticket
service (open, dispatch, and for revisits accept, start, resolve) two weeks before that; texts
are stored at the machine's time and answered at the pinned one. Every job row is enqueued by
this script (as the relay does, with the pinned ``now``), never by the workers' relay: all
rounds' rows are written before the first round and marked as relayed.

One figure per line, e.g. ``relay_now_rows_per_s 2150``. Run::

    .venv/bin/python benchmarks/bench_jobs.py            # quick (make bench): about a minute
    .venv/bin/python benchmarks/bench_jobs.py --full     # 10,000 rows, 2,000 jobs, 1,000 texts,
                                                         # 100,000 revisits
    .venv/bin/python benchmarks/bench_jobs.py --sqlite   # SQLite file + embedded Redis

``BENCH_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/benchjobs``) and
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/7``) choose the servers. The database's
public schema is dropped and migrated afresh and the Redis database is flushed: point them at
databases of their own. When either does not answer, the SQLite + embedded Redis leg runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

import redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job  # noqa: E402
from rq.registry import FailedJobRegistry  # noqa: E402
from rq.serializers import JSONSerializer  # noqa: E402
from rq.suspension import resume, suspend  # noqa: E402
from rq.worker import Worker  # noqa: E402
from sqlalchemy import func, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

import hotline.models_registry  # noqa: E402, F401
from hotline.database import upgrade  # noqa: E402
from hotline.queue import QUEUE_NAMES  # noqa: E402
from hotline.redis_server import EmbeddedRedis  # noqa: E402
from hotline.settings import Settings, load_settings  # noqa: E402
from hotline.wiring import configure_domain  # noqa: E402
from ivr_flows import sms  # noqa: E402
from kb import db  # noqa: E402
from kb.models import Institution, InstitutionCategory, Tier  # noqa: E402
from kb.service import catalogue_service  # noqa: E402
from tickets import outbox  # noqa: E402
from tickets.models import (  # noqa: E402
    Channel,
    InboundMessage,
    OutboundCall,
    OutboundMessage,
    OutboxMessage,
    Role,
    Ticket,
    TicketEvent,
    TicketState,
)
from tickets.phones import normalise_phone  # noqa: E402
from tickets.service import Actor, ticket_service  # noqa: E402
from tickets.tasks import run_outbox_job  # noqa: E402

TOKEN = "bench-auth-token-0123456789abcdef"
AGENT = Actor("user:bench-agent", Role.agent)
WORKER_COUNTS = (1, 2, 4)
KINDS = ("revisit", "sla", sms.ANSWER_TASK)
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"relay": 1_000, "jobs": 20, "texts": 100, "scheduled": 2_000, "workers": (1, 2)},
    "full": {
        "relay": 10_000,
        "jobs": 2_000,
        "texts": 1_000,
        "scheduled": 100_000,
        "workers": WORKER_COUNTS,
    },
}
# Opens a financing case in Yubei: classified, located, routed and dispatched by the job.
SMS_BODY = "我们公司在渝北区，想申请一笔贷款扩大生产"
IN_PROCESS_JOBS = 20
STALL_SECONDS = 60


def say(name: str, value: object) -> None:
    print(f"{name} {value}", flush=True)


# --- servers and schema -------------------------------------------------------------------------


def _answers(database_url: str, redis_url: str) -> str | None:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(database_url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure: use the embedded leg
        return f"database {database_url} not reachable ({type(exc).__name__})"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis {redis_url} not reachable ({type(exc).__name__})"
    return None


@contextmanager
def servers(use_sqlite: bool) -> Iterator[Settings]:
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/benchjobs"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
    if not use_sqlite:
        why = _answers(database_url, redis_url)
        if why:
            print(f"# {why}: running on SQLite + the embedded Redis instead", flush=True)
            use_sqlite = True
    embedded: EmbeddedRedis | None = None
    if use_sqlite:
        database_url = f"sqlite:///{work / 'bench.db'}"
        embedded = EmbeddedRedis(work / "redis")
        redis_url = embedded.start()
    settings = load_settings(
        var_dir=work,
        database_url=database_url,
        redis_url=redis_url,
        twilio_account_sid=None,
        twilio_auth_token=TOKEN,
        log_level="WARNING",
    )
    try:
        yield settings
    finally:
        if embedded is not None:
            embedded.stop()


def prepare(settings: Settings) -> Engine:
    configure_domain(settings)
    engine = db.get_engine()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(settings)
    with Session(engine) as session:
        catalogue_service.load(session, actor="bench:setup")
        session.commit()
    return engine


def connect(settings: Settings) -> redis.Redis:
    assert settings.redis_url
    return redis.Redis.from_url(settings.redis_url, socket_timeout=30)


def empty_outbox(engine: Engine, connection: redis.Redis) -> None:
    with engine.begin() as conn:
        conn.execute(OutboxMessage.__table__.delete())  # type: ignore[attr-defined]
    connection.flushdb()


def used_memory(connection: redis.Redis) -> int:
    return int(connection.info("memory")["used_memory"])


# --- 1. the relay --------------------------------------------------------------------------------


def bench_relay(engine: Engine, connection: redis.Redis, count: int) -> None:
    factory = outbox.session_factory_for(engine)
    for kind, run_at in (("now", None), ("later", datetime.now(UTC) + timedelta(days=2))):
        empty_outbox(engine, connection)
        with factory() as session:
            for n in range(count):
                outbox.add(
                    session,
                    "notify_institution",
                    {"institution_id": 1, "text": f"bench {n}"},
                    run_at=run_at,
                    queue="low",
                )
        start = time.perf_counter()
        relayed = 0
        while True:
            step = outbox.relay_outbox(factory, connection)
            if not step:
                break
            relayed += step
        seconds = time.perf_counter() - start
        assert relayed == count, (relayed, count)
        say(f"relay_{kind}_rows", count)
        say(f"relay_{kind}_seconds", f"{seconds:.2f}")
        say(f"relay_{kind}_rows_per_s", f"{count / seconds:.0f}")
    empty_outbox(engine, connection)


# --- 2. workers ----------------------------------------------------------------------------------


def pinned_now() -> datetime:
    """10:00 local on the first working day at least three days ahead: inside the call window."""
    calendar = ticket_service.calendar
    day = calendar.local(datetime.now(UTC)).date() + timedelta(days=3)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, clock_time(10), tzinfo=calendar.zone).astimezone(UTC)


def institutions(session: Session) -> list[Institution]:
    query = (
        select(Institution)
        .join(InstitutionCategory, col(InstitutionCategory.institution_id) == col(Institution.id))
        .where(
            InstitutionCategory.category_key == "financing",
            Institution.tier == Tier.institution,
            col(Institution.active).is_(True),
        )
        .order_by(col(Institution.id))
    )
    return list(session.exec(query).all())


def make_tickets(
    engine: Engine, kind: str, count: int, at: datetime, relayed_at: datetime, serial: int
) -> list[int]:
    """``count`` tickets through the service, as of ``at``; returns the outbox row ids of the
    jobs to run: the first revisit call, or the accept clock's SLA check. Every other job row
    of these tickets is marked done so that nothing but the measured jobs runs."""
    ids: list[int] = []
    with Session(engine, expire_on_commit=False) as session:
        banks = institutions(session)
        for n in range(count):
            phone = f"+86138{serial:02d}{n:06d}"
            bank = banks[n % len(banks)]
            staff = Actor(f"user:bench-staff-{bank.id}", Role.institution, bank.id)
            firm = ticket_service.find_or_create_firm(session, phone, language="zh")
            ticket = ticket_service.open_ticket(
                session,
                actor=AGENT,
                channel=Channel.sms,
                caller_phone=phone,
                summary="我们公司在渝北区，想申请一笔贷款扩大生产",
                language="zh",
                category="financing",
                district_code="yubei",
                firm=firm,
                now=at,
            )
            ticket_service.dispatch(session, ticket, actor=AGENT, institution_id=bank.id, now=at)
            if kind == "revisit":
                ticket_service.accept(session, ticket, actor=staff, now=at + timedelta(hours=1))
                ticket_service.start(session, ticket, actor=staff, now=at + timedelta(hours=2))
                ticket_service.resolve(session, ticket, actor=staff, now=at + timedelta(hours=3))
            session.flush()
            rows = session.exec(
                select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
            ).all()
            for row in rows:
                wanted = (
                    row.task == "revisit_call"
                    if kind == "revisit"
                    else row.task == "sla_check" and row.payload["clock"] == "accept"
                )
                # Enqueued by this script (with the pinned time), never by a relay: marked as
                # relayed at the pinned time, days ahead, so the workers' rescue of rows
                # relayed minutes ago whose job is not in Redis leaves them alone.
                row.relayed_at = relayed_at
                if wanted:
                    assert row.id is not None
                    ids.append(row.id)
                else:
                    row.done_at, row.result = at, "bench: not run"
                session.add(row)
            if n % 200 == 199:
                session.commit()
        session.commit()
    return ids


def accept_texts(
    engine: Engine, settings: Settings, count: int, relayed_at: datetime, serial: int
) -> list[int]:
    """``count`` texts stored as the webhook stores them (:func:`ivr_flows.sms.accept_text`),
    each from its own sender; returns the outbox row ids of their ``sms_answer`` jobs. The rows
    are marked as relayed at the pinned time, days ahead (see :func:`make_tickets`): the
    workers' relay leaves them to this script, and their rescue of stranded rows too."""
    with Session(engine) as session:
        messages: list[int] = []
        for n in range(count):
            stored = sms.accept_text(
                session,
                sms.InboundSms(
                    message_sid=f"SMbench{serial:02d}{n:06d}",
                    from_number=f"+86139{serial:02d}{n:06d}",
                    to_number=settings.main_number,
                    body=SMS_BODY,
                ),
            )
            assert stored is not None
            messages.append(stored)
            session.commit()  # as the webhook does (on PostgreSQL nothing is pending)
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.task == sms.ANSWER_TASK, col(OutboxMessage.relayed_at).is_(None))
            .order_by(col(OutboxMessage.id))
        ).all()
        assert sorted(int(row.payload["message_id"]) for row in rows) == sorted(messages), (
            "the texts' jobs are not the outbox's only unrelayed sms_answer rows"
        )
        ids: list[int] = []
        for row in rows:
            assert row.id is not None
            row.relayed_at = relayed_at
            session.add(row)
            ids.append(row.id)
        session.commit()
    return ids


def make_jobs(
    engine: Engine,
    settings: Settings,
    kind: str,
    count: int,
    at: datetime,
    relayed_at: datetime,
    serial: int,
) -> list[int]:
    if kind == sms.ANSWER_TASK:
        return accept_texts(engine, settings, count, relayed_at, serial)
    return make_tickets(engine, kind, count, at, relayed_at, serial)


def start_workers(
    settings: Settings, count: int, name: str = "workers"
) -> list[subprocess.Popen[bytes]]:
    """``count`` ``hotline worker`` processes; their output goes to ``<var>/logs/<name>-N.log``
    (see :func:`worker_log_problems`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        {
            "HOTLINE_DATABASE_URL": settings.database_url,
            "HOTLINE_REDIS_URL": settings.redis_url or "",
            "HOTLINE_VAR_DIR": str(settings.var_dir),
            "HOTLINE_TWILIO_AUTH_TOKEN": TOKEN,
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
    )
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    for n in range(count):
        with (logs / f"{name}-{n + 1}.log").open("wb") as output:
            processes.append(
                subprocess.Popen(
                    [str(BIN / "hotline"), "worker"],
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return processes


def worker_log_problems(settings: Settings, name: str) -> tuple[int, Path | None]:
    """Lines of a round's worker logs that report an error (the workers log at WARNING, so a
    warning counts too), and the first log holding one."""
    count, first = 0, None
    for path in sorted((settings.var_dir / "logs").glob(f"{name}-*.log")):
        lines = path.read_text(errors="replace").splitlines()
        bad = sum(1 for line in lines if any(w in line for w in ("ERROR", "WARNING", "Traceback")))
        count += bad
        if bad and first is None:
            first = path
    return count, first


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_workers(connection: redis.Redis, count: int, processes: list[Any]) -> None:
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < count:
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            raise RuntimeError("the workers did not start")
        time.sleep(0.2)


def enqueue_pinned(connection: redis.Redis, engine: Engine, ids: list[int], now: datetime) -> None:
    """What :func:`tickets.outbox.enqueue` does, with ``now`` passed to the job."""
    with Session(engine) as session:
        queues = dict(
            session.exec(
                select(OutboxMessage.id, OutboxMessage.queue).where(col(OutboxMessage.id).in_(ids))
            ).all()
        )
    pipe = connection.pipeline()
    for row_id in ids:
        Queue(queues[row_id], connection=connection, serializer=JSONSerializer).enqueue(
            outbox.JOB_FUNCTION,
            row_id,
            now=now.isoformat(),
            job_id=outbox.job_id(row_id),
            description=f"bench (outbox {row_id})",
            result_ttl=3600,
            pipeline=pipe,
        )
    pipe.execute()


def run_round(
    settings: Settings,
    engine: Engine,
    connection: redis.Redis,
    kind: str,
    ids: list[int],
    workers: int,
    now: datetime,
) -> None:
    name = f"{kind}_w{workers}"
    connection.flushdb()
    processes = start_workers(settings, workers, name)
    try:
        wait_for_workers(connection, workers, processes)
        suspend(connection)
        time.sleep(1.5)  # every worker has seen the suspension before any job exists
        enqueue_pinned(connection, engine, ids, now)
        expected = len(ids) * (2 if kind == "sla" else 1)  # an SLA job queues one notice
        started = datetime.now(UTC)
        resume(connection)
        # Waits as long as the jobs progress (a loaded machine is slow, not stuck); a minute
        # without one more job done ends the round, and the figures below say what was missed.
        progressed, seen = time.monotonic(), -1
        while True:
            done = _measured_done(engine, kind, ids)
            if done[0] != seen:
                progressed, seen = time.monotonic(), done[0]
            if done[0] >= expected or time.monotonic() - progressed > STALL_SECONDS:
                last = done[1]
                break
            time.sleep(0.2)
        jobs = Job.fetch_many(
            [outbox.job_id(i) for i in ids], connection, serializer=JSONSerializer
        )
        first_started = min(
            (job.started_at for job in jobs if job and job.started_at), default=started
        )
    finally:
        stop_workers(processes)
        resume(connection)
    failed = sum(
        FailedJobRegistry(q, connection=connection, serializer=JSONSerializer).count
        for q in QUEUE_NAMES
    )
    first = db.as_utc(first_started)
    span = ((last or datetime.now(UTC)) - first).total_seconds()
    say(f"{name}_jobs", f"{done[0]}/{expected}")
    say(f"{name}_seconds", f"{span:.2f}")
    say(f"{name}_jobs_per_s", f"{done[0] / span:.1f}" if span > 0 else "nan")
    say(f"{name}_failed_jobs", failed)
    problems, where = worker_log_problems(settings, name)
    say(f"{name}_worker_log_problem_lines", problems if where is None else f"{problems} ({where})")
    verify(engine, kind, ids, name)


def _measured_done(engine: Engine, kind: str, ids: list[int]) -> tuple[int, datetime | None]:
    """Done rows among the measured jobs and, for SLA jobs, the notices they queued; and when
    the last of them was done."""
    with Session(engine) as session:
        tickets = select(OutboxMessage.ticket_id).where(col(OutboxMessage.id).in_(ids))
        tasks = {
            "sla": ["sla_check", "notify_institution"],
            "revisit": ["revisit_call"],
            sms.ANSWER_TASK: [sms.ANSWER_TASK],
        }[kind]
        # A text's job has no ticket before it runs: its own rows are counted.
        which = (
            col(OutboxMessage.id).in_(ids)
            if kind == sms.ANSWER_TASK
            else col(OutboxMessage.ticket_id).in_(tickets)
        )
        done, last = session.exec(
            select(func.count(), func.max(col(OutboxMessage.done_at))).where(
                which,
                col(OutboxMessage.task).in_(tasks),
                col(OutboxMessage.done_at).is_not(None),
                col(OutboxMessage.result) != "bench: not run",
            )
        ).one()
    return int(done), db.as_utc(last) if last else None


def verify(engine: Engine, kind: str, ids: list[int], name: str) -> None:
    """Each ticket's effect exactly once: one call and one revisit_call event per revisit;
    one escalation and one notice per missed accept clock."""
    if kind == sms.ANSWER_TASK:
        verify_texts(engine, ids, name)
        return
    with Session(engine) as session:
        tickets = [
            t
            for t in session.exec(
                select(OutboxMessage.ticket_id).where(col(OutboxMessage.id).in_(ids))
            )
            if t is not None
        ]
        action = "revisit_call" if kind == "revisit" else "escalate"
        events = Counter(
            session.exec(
                select(TicketEvent.ticket_id).where(
                    col(TicketEvent.ticket_id).in_(tickets), TicketEvent.action == action
                )
            ).all()
        )
        sent_model = OutboundCall if kind == "revisit" else OutboundMessage
        sent = Counter(
            session.exec(
                select(sent_model.ticket_id).where(col(sent_model.ticket_id).in_(tickets))
            ).all()
        )
    once = sum(1 for t in tickets if events[t] == 1 and sent[t] == 1)
    twice = sum(1 for t in tickets if events[t] > 1 or sent[t] > 1)
    missing = sum(1 for t in tickets if events[t] == 0 or sent[t] == 0)
    say(f"{name}_effect_exactly_once", f"{once}/{len(tickets)}")
    say(f"{name}_effect_more_than_once", twice)
    say(f"{name}_effect_missing", missing)


def verify_texts(engine: Engine, ids: list[int], name: str) -> None:
    """Each text answered exactly once: answered (``answered_at`` set), its job's row done with
    the result ``answered``, one reply (``sms_reply``) and one ticket for its sender."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids))).all()
        results = Counter(row.result if row.done_at is not None else "(not done)" for row in rows)
        message_ids = [int(row.payload["message_id"]) for row in rows]
        messages = session.exec(
            select(InboundMessage).where(col(InboundMessage.id).in_(message_ids))
        ).all()
        senders = [m.from_number for m in messages]
        phones = {m.from_number: normalise_phone(m.from_number) or m.from_number for m in messages}
        replies = Counter(
            session.exec(
                select(OutboundMessage.to_number).where(
                    OutboundMessage.purpose == sms.REPLY_PURPOSE,
                    col(OutboundMessage.to_number).in_(senders),
                )
            ).all()
        )
        tickets = session.exec(
            select(Ticket.caller_phone, Ticket.state).where(
                col(Ticket.caller_phone).in_(list(phones.values()))
            )
        ).all()
    opened = Counter(phone for phone, _ in tickets)
    dispatched = sum(1 for _, state in tickets if state == TicketState.dispatched)
    answered = sum(1 for m in messages if m.answered_at is not None)
    once = sum(
        1
        for m in messages
        if m.answered_at is not None
        and replies[m.from_number] == 1
        and opened[phones[m.from_number]] == 1
    )
    twice = sum(
        1 for m in messages if replies[m.from_number] > 1 or opened[phones[m.from_number]] > 1
    )
    missing = sum(
        1
        for m in messages
        if m.answered_at is None
        or replies[m.from_number] == 0
        or opened[phones[m.from_number]] == 0
    )
    say(f"{name}_texts_answered", f"{answered}/{len(ids)}")
    say(f"{name}_jobs_result_answered", f"{results.pop('answered', 0)}/{len(ids)}")
    if results:
        say(f"{name}_jobs_other_results", dict(results))
    say(f"{name}_tickets_dispatched", f"{dispatched}/{len(ids)}")
    say(f"{name}_effect_exactly_once", f"{once}/{len(ids)}")
    say(f"{name}_effect_more_than_once", twice)
    say(f"{name}_effect_missing", missing + len(ids) - len(messages))


def bench_workers(
    settings: Settings,
    engine: Engine,
    connection: redis.Redis,
    jobs: int,
    texts: int,
    worker_counts: tuple[int, ...] = WORKER_COUNTS,
) -> None:
    empty_outbox(engine, connection)
    now = pinned_now()
    made_at = now - timedelta(days=14)
    say("jobs_pinned_now", now.isoformat())
    plan: list[tuple[str, int, list[int]]] = []
    start = time.perf_counter()
    made = dict.fromkeys(KINDS, 0.0)
    serial = 0
    for workers in worker_counts:
        for kind in KINDS:
            serial += 1
            count = texts if kind == sms.ANSWER_TASK else jobs
            start_kind = time.perf_counter()
            ids = make_jobs(engine, settings, kind, count, made_at, now, serial)
            made[kind] += time.perf_counter() - start_kind
            plan.append((kind, workers, ids))
    # The floor: the same jobs run in this process, one after the other, with no RQ at all.
    # The first job of a kind also builds what the process caches (for a text: the classifier,
    # the gazetteer, the routing catalogue), as a worker's forked work horse does for every job
    # unless its parent built them: it is shown apart.
    for kind in KINDS:
        serial += 1
        ids = make_jobs(engine, settings, kind, IN_PROCESS_JOBS, made_at, now, serial)
        times = []
        for row_id in ids:
            start_one = time.perf_counter()
            run_outbox_job(row_id, now=now.isoformat())
            times.append((time.perf_counter() - start_one) * 1000)
        say(f"{kind}_in_process_ms_per_job", f"{sum(times) / len(times):.1f}")
        say(f"{kind}_in_process_first_job_ms", f"{times[0]:.1f}")
        say(f"{kind}_in_process_ms_per_job_after_first", f"{sum(times[1:]) / len(times[1:]):.1f}")
    tickets = sum(len(ids) for kind, _, ids in plan if kind != sms.ANSWER_TASK)
    stored = sum(len(ids) for kind, _, ids in plan if kind == sms.ANSWER_TASK)
    say("jobs_tickets_made", tickets)
    say("jobs_tickets_seconds", f"{made['revisit'] + made['sla']:.1f}")
    say("jobs_texts_stored", stored)
    say("jobs_texts_store_seconds", f"{made[sms.ANSWER_TASK]:.1f}")
    say("jobs_setup_seconds", f"{time.perf_counter() - start:.1f}")
    for kind, workers, ids in plan:
        run_round(settings, engine, connection, kind, ids, workers, now)


# --- 3. scheduled revisits -----------------------------------------------------------------------


def bench_scheduled(engine: Engine, connection: redis.Redis, count: int) -> None:
    empty_outbox(engine, connection)
    factory = outbox.session_factory_for(engine)
    before = used_memory(connection)
    calendar, policy = ticket_service.calendar, ticket_service.policy.revisit
    base = datetime.now(UTC)
    from tickets.revisit import first_call_at

    start = time.perf_counter()
    written = 0
    while written < count:
        with factory() as session:
            for n in range(written, min(count, written + 5_000)):
                # Resolutions spread over the past day: calls due over the next working days.
                resolved = base - timedelta(seconds=(n * 86_400) // count)
                outbox.add(
                    session,
                    "revisit_call",
                    {"revisit_id": n + 1, "attempt": 1},
                    run_at=first_call_at(calendar, policy, resolved),
                )
            written = min(count, written + 5_000)
    write_seconds = time.perf_counter() - start
    start = time.perf_counter()
    relayed = 0
    while True:
        step = outbox.relay_outbox(factory, connection)
        if not step:
            break
        relayed += step
    relay_seconds = time.perf_counter() - start
    assert relayed == count, (relayed, count)
    after = used_memory(connection)
    scheduled = sum(connection.zcard(f"rq:scheduled:{q}") for q in QUEUE_NAMES)
    with Session(engine) as session:
        first = session.exec(select(func.min(col(OutboxMessage.id)))).one() or 0
    job_bytes = connection.memory_usage(f"rq:job:{outbox.job_id(first)}")
    say("scheduled_revisits", count)
    say("scheduled_in_rq_scheduler", scheduled)
    say("scheduled_outbox_write_seconds", f"{write_seconds:.2f}")
    say("scheduled_relay_seconds", f"{relay_seconds:.2f}")
    say("scheduled_total_seconds", f"{write_seconds + relay_seconds:.2f}")
    say("scheduled_per_s", f"{count / (write_seconds + relay_seconds):.0f}")
    say("scheduled_redis_used_memory_before_bytes", before)
    say("scheduled_redis_used_memory_after_bytes", after)
    say("scheduled_redis_bytes_per_revisit", f"{(after - before) / count:.0f}")
    say("scheduled_redis_job_hash_bytes", job_bytes)
    # With all of them waiting in the scheduler: what the periodic relay + rescue pass costs.
    with factory() as session:
        outbox.add(session, "notify_institution", {"institution_id": 1, "text": "x"}, queue="low")
    start = time.perf_counter()
    assert outbox.relay_outbox(factory, connection) == 1
    say("scheduled_relay_one_more_row_ms", f"{(time.perf_counter() - start) * 1000:.1f}")
    start = time.perf_counter()
    outbox.rescue_stranded(factory, connection, now=base + timedelta(minutes=10))
    say("scheduled_rescue_pass_ms", f"{(time.perf_counter() - start) * 1000:.1f}")
    empty_outbox(engine, connection)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (the default)")
    size.add_argument("--full", action="store_true", help="10,000 / 2,000 / 1,000 / 100,000")
    parser.add_argument("--sqlite", action="store_true", help="SQLite file + embedded Redis")
    parser.add_argument(
        "--only", choices=("relay", "workers", "scheduled"), action="append", help="parts to run"
    )
    parser.add_argument(
        "--workers", type=int, action="append", help="worker counts (quick: 1, 2; full: 1, 2, 4)"
    )
    parser.add_argument(
        "--jobs", type=int, help="revisit and SLA jobs per worker round (quick 20, full 2,000)"
    )
    parser.add_argument(
        "--texts", type=int, help="texts per sms_answer worker round (quick 100, full 1,000)"
    )
    args = parser.parse_args()
    sizes = SIZES["full" if args.full else "quick"]
    parts = args.only or ["relay", "workers", "scheduled"]
    with servers(args.sqlite) as settings:
        engine = prepare(settings)
        connection = connect(settings)
        say("jobs_database", engine.dialect.name)
        say("jobs_redis", "embedded" if settings.redis_url.startswith("unix") else "server")  # type: ignore[union-attr]
        try:
            if "relay" in parts:
                bench_relay(engine, connection, sizes["relay"])
            if "workers" in parts:
                bench_workers(
                    settings,
                    engine,
                    connection,
                    args.jobs or sizes["jobs"],
                    args.texts or sizes["texts"],
                    tuple(args.workers or sizes["workers"]),
                )
            if "scheduled" in parts:
                bench_scheduled(engine, connection, sizes["scheduled"])
        finally:
            connection.flushdb()
            engine.dispose()


if __name__ == "__main__":
    main()
