"""The RQ worker process: configures the domain adapters, then works the queues, relaying the
transactional outbox into RQ every few seconds so no committed job is stranded (after a Redis
outage, or a web process that stopped before relaying), and at once when a web process wakes
it (``tickets.outbox.wake_relay``: an inbound text's job, which web processes leave to it).

The same periodic round does the rest of the upkeep every worker shares: it queues again any
notice whose fan-out was interrupted (``hotline.public.notices.resume_stranded``), and once an
hour, by whichever worker claims that hour first, the purge of expired dialogue state."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from rq import SimpleWorker
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer
from sqlalchemy.pool import NullPool

from hotline.logging_setup import configure_from_settings
from hotline.public import notices
from hotline.queue import QUEUE_NAMES, connect, queue, resolve_redis_url
from hotline.settings import Settings
from hotline.wiring import configure_domain, freeze_start_up_objects, warm_up
from kb.db import get_engine, make_engine
from tickets.outbox import (
    RELAY_AFTER_REQUEST_HORIZON,
    RELAY_BATCH,
    relay_outbox,
    rescue_stranded,
    session_factory_for,
    wait_for_wake,
)

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 5.0
WAKE_WAIT_SECONDS = 1.0
PURGE_JOB = "ivr_flows.jobs.purge_dialogue_state"
PURGE_EVERY_SECONDS = 3600


_fork_hook_installed = False

# SQLite keeps what each connection has locked in process memory, and a forked child gets a
# copy of that memory. The worker runs its jobs in its own process, but RQ still forks (its
# scheduler runs in a child process), and so did the work horses of earlier versions. A child
# forked while the relay thread was inside a transaction (its
# commit included: the write lock is held while the WAL is synced) inherits a write lock that no
# thread in the child will ever release, and its first write waits out the whole busy timeout
# ("database is locked") though no process holds the lock. So the relay works the database
# under this lock and a fork waits for its round to end; by then the relay's NullPool
# connections are closed and the child inherits none of them.
_database_round = threading.Lock()


def protect_database_across_forks() -> None:
    """A process forked from the worker (RQ's scheduler) must not reuse the parent's pooled
    database connections (two processes on one socket): it drops them without closing them
    and opens its own, as SQLAlchemy advises for fork. No fork happens during a relay round."""
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(
            before=_database_round.acquire,
            after_in_parent=_database_round.release,
            after_in_child=_after_fork_in_child,
        )
        _fork_hook_installed = True


def _after_fork_in_child() -> None:
    _database_round.release()  # the child's copy, taken by the forking thread
    _drop_inherited_connections()


def _drop_inherited_connections() -> None:
    try:
        get_engine().dispose(close=False)
    except RuntimeError:
        pass  # no engine configured in this process: nothing inherited


def build_worker(settings: Settings, *, name: str | None = None) -> SimpleWorker:
    """An RQ worker that runs each job in its own process (``SimpleWorker``), not in a work horse
    forked per job: with a work horse each job took 70 to 115 ms more than in process (a text's
    answer 16 ms in process, 130 ms a job with one forking worker); one worker answered 7.7
    texts a second that way, 32 this way (``benchmarks/bench_jobs.py``, PostgreSQL). A job
    that hangs is still stopped by RQ's timeout; a worker that dies (SIGKILL) has its job found
    by another worker's registry clean-up and retried, as before; a job's own errors are caught
    by RQ and leave the worker running."""
    configure_domain(settings)
    protect_database_across_forks()
    connection = connect(resolve_redis_url(settings))
    return SimpleWorker(
        [queue(connection, q) for q in QUEUE_NAMES],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        # Registry clean-up finds jobs whose worker died and hands them to RQ's retry; the
        # default (10 minutes) would leave a killed revisit or SLA job waiting that long.
        maintenance_interval=60,
    )


def schedule_purge(connection: redis.Redis, *, now: float | None = None) -> bool:
    """Queue the purge of expired dialogue state once per hour across all workers: the first
    worker to claim the hour (a Redis key set only if absent) queues it, under a job id of that
    hour, and the others see the claim. Returns whether this call queued it."""
    period = int((time.time() if now is None else now) // PURGE_EVERY_SECONDS)
    claim = f"hotline:maintenance:purge-dialogue-state:{period}"
    if not connection.set(claim, "1", nx=True, ex=2 * PURGE_EVERY_SECONDS):
        return False
    try:
        queue(connection, "low").enqueue(
            PURGE_JOB,
            job_id=f"purge-dialogue-state-{period}",
            unique=True,
            description="purge expired dialogue state",
            result_ttl=2 * PURGE_EVERY_SECONDS,
        )
    except DuplicateJobError:
        return False
    except redis.RedisError:
        connection.delete(claim)  # let the next round (or another worker) try this hour again
        raise
    return True


def relay_all(relay_batch: Callable[[], int]) -> int:
    """Relay batch after batch while they come full: a backlog (a flood of texts, or jobs
    committed while Redis was away) goes into RQ in one round, not one batch per round."""
    total = 0
    while True:
        relayed = relay_batch()
        total += relayed
        if relayed < RELAY_BATCH:
            return total


class OutboxRelay(threading.Thread):
    """Relays the outbox periodically in the worker's main process.

    It has its own engine without a pool (NullPool) and its own Redis connection: it runs beside
    the jobs, and a process RQ forks (its scheduler) must not inherit a live connection."""

    def __init__(self, settings: Settings, interval: float = RELAY_INTERVAL_SECONDS) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.interval = interval
        self.engine = make_engine(settings.database_url, poolclass=NullPool)
        self.redis = connect(resolve_redis_url(settings))
        self.stopping = threading.Event()

    def relay_once(self) -> int:
        with _database_round:
            return self._relay_round()

    def _relay_round(self) -> int:
        factory = session_factory_for(self.engine)
        try:
            rescue_stranded(factory, self.redis)
            relayed = relay_all(lambda: relay_outbox(factory, self.redis))
        except Exception:  # noqa: BLE001 - keep relaying; the next round retries
            log.exception("periodic outbox relay failed")
            relayed = 0
        self.maintain()
        return relayed

    def maintain(self) -> None:
        """The upkeep besides the outbox; each part on its own, so one failing (Redis briefly
        away) does not skip the other."""
        factory = session_factory_for(self.engine)
        try:
            notices.resume_stranded(factory, self.redis)
        except Exception:  # noqa: BLE001 - the next round looks again
            log.exception("resuming interrupted notices failed")
        try:
            schedule_purge(self.redis)
        except Exception:  # noqa: BLE001 - the next round claims the hour again
            log.exception("scheduling the dialogue-state purge failed")

    def relay_due_now(self) -> int:
        """A round for a wake-up (an inbound text's job): only what is due, none of the upkeep."""
        factory = session_factory_for(self.engine)
        with _database_round:
            try:
                return relay_all(
                    lambda: relay_outbox(
                        factory, self.redis, due_within=RELAY_AFTER_REQUEST_HORIZON
                    )
                )
            except Exception:  # noqa: BLE001 - the periodic round retries
                log.exception("outbox relay on wake-up failed")
                return 0

    def run(self) -> None:
        next_round = time.monotonic() + self.interval
        while not self.stopping.is_set():
            # Waits of one second at most, so stop() is heard within one.
            woken = self._wait_for_wake(min(WAKE_WAIT_SECONDS, next_round - time.monotonic()))
            if self.stopping.is_set():
                break
            if time.monotonic() >= next_round:
                self.relay_once()
                next_round = time.monotonic() + self.interval
            elif woken:
                self.relay_due_now()

    def _wait_for_wake(self, timeout: float) -> bool:
        if timeout <= 0:
            return False
        try:
            return wait_for_wake(self.redis, timeout)
        except redis.RedisError:
            # Redis away: nothing to relay into; the periodic round keeps trying.
            self.stopping.wait(timeout)
            return False

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=self.interval + 5)
        self.engine.dispose()
        self.redis.close()


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    configure_from_settings(settings)
    worker = build_worker(settings)
    warm_up()  # before the first job, which would otherwise pay for it
    # Also spares each job's forked work horse from copying those pages when it collects.
    freeze_start_up_objects()
    relay = OutboxRelay(settings)
    relay.relay_once()  # what was committed while no worker ran
    if not burst:
        relay.start()
    try:
        return worker.work(burst=burst, with_scheduler=True)
    finally:
        relay.stop()
