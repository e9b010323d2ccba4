"""A work horse forked while the worker's relay thread is in the middle of a round.

SQLite keeps what each connection has locked in process memory; a child forked while the
relay held the write lock got a copy of that lock which nobody in the child would release, and
its first write waited out the 30 s busy timeout (the multi-process test's "database is locked").
The worker makes a fork wait for the relay's round to end. Here the round is held open by real
Redis (CLIENT PAUSE of writes while the relay enqueues inside its transaction), and the main
thread forks as RQ does."""

from __future__ import annotations

import os
import threading
import time

import redis
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from hotline.settings import Settings
from hotline.worker import OutboxRelay, protect_database_across_forks
from kb.db import make_engine
from tickets import outbox
from tickets.models import OutboxMessage

WROTE, LOCKED, FORKED_MID_ROUND, FAILED = 0, 1, 2, 3
PAUSE_MS = 1500


def _child(url: str, row_id: int) -> int:
    """What a work horse does first: read its row and write, with a short busy timeout."""
    engine = make_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda conn, _r: conn.execute("PRAGMA busy_timeout=2000"))
    try:
        with Session(engine) as session:
            row = session.get_one(OutboxMessage, row_id)
            if row.relayed_at is None:
                return FORKED_MID_ROUND
            row.result = "written by the forked child"
            session.add(row)
            session.commit()
        return WROTE
    except OperationalError:
        return LOCKED
    finally:
        engine.dispose()


def _relay_is_waiting_on_redis(connection: redis.Redis) -> bool:
    # A client whose write is held by CLIENT PAUSE is listed as blocked.
    return any("b" in str(c.get("flags", "")) for c in connection.client_list())


def test_a_fork_during_a_relay_round_waits_for_it_and_the_child_can_write(
    settings: Settings, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    protect_database_across_forks()
    with Session(clean_db) as session:
        row = outbox.add(session, "sla_check", {"ticket_id": 0, "clock": "accept", "due": "x"})
        session.commit()
        row_id = row.id
    assert row_id is not None
    relay = OutboxRelay(settings)
    redis_conn.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")
    round_ = threading.Thread(target=relay.relay_once)
    round_.start()
    try:
        deadline = time.monotonic() + PAUSE_MS / 1000
        while not _relay_is_waiting_on_redis(redis_conn):
            assert time.monotonic() < deadline, "the relay never reached its enqueue"
            time.sleep(0.02)
        # The relay is inside its transaction, enqueuing: fork now, as RQ forks a work horse.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = FAILED
            try:
                code = _child(settings.database_url, row_id)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        round_.join(timeout=30)
        relay.engine.dispose()
        relay.redis.close()
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == WROTE, {
        LOCKED: "the child inherited the relay's lock and waited out the busy timeout",
        FORKED_MID_ROUND: "the fork did not wait for the relay's round",
    }.get(os.WEXITSTATUS(status), status)
    with Session(clean_db) as session:
        assert session.get_one(OutboxMessage, row_id).result == "written by the forked child"
