"""The RQ worker process: configures the domain adapters, then works the queues, relaying the
transactional outbox into RQ every few seconds so no committed job is stranded (after a Redis
outage, or a web process that stopped before relaying)."""

from __future__ import annotations

import logging
import os
import threading

from rq import Worker
from rq.serializers import JSONSerializer
from sqlalchemy.pool import NullPool

from hotline.logging_setup import configure_from_settings
from hotline.queue import QUEUE_NAMES, connect, queue, resolve_redis_url
from hotline.settings import Settings
from hotline.wiring import configure_domain
from kb.db import get_engine, make_engine
from tickets.outbox import relay_outbox, rescue_stranded, session_factory_for

log = logging.getLogger(__name__)

RELAY_INTERVAL_SECONDS = 5.0


_fork_hook_installed = False


def protect_database_across_forks() -> None:
    """RQ runs each job in a forked work horse. The child must not reuse the parent's pooled
    database connections (two processes on one socket): it drops them without closing them
    and opens its own, as SQLAlchemy advises for fork."""
    global _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_drop_inherited_connections)
        _fork_hook_installed = True


def _drop_inherited_connections() -> None:
    try:
        get_engine().dispose(close=False)
    except RuntimeError:
        pass  # no engine configured in this process: nothing inherited


def build_worker(settings: Settings, *, name: str | None = None) -> Worker:
    configure_domain(settings)
    protect_database_across_forks()
    connection = connect(resolve_redis_url(settings))
    return Worker(
        [queue(connection, q) for q in QUEUE_NAMES],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        # Registry clean-up finds jobs whose worker died and hands them to RQ's retry; the
        # default (10 minutes) would leave a killed revisit or SLA job waiting that long.
        maintenance_interval=60,
    )


class OutboxRelay(threading.Thread):
    """Relays the outbox periodically in the worker's main process.

    It has its own engine without a pool (NullPool) and its own Redis connection: RQ forks a
    work horse per job, and a forked child must not inherit a live database connection."""

    def __init__(self, settings: Settings, interval: float = RELAY_INTERVAL_SECONDS) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.interval = interval
        self.engine = make_engine(settings.database_url, poolclass=NullPool)
        self.redis = connect(resolve_redis_url(settings))
        self.stopping = threading.Event()

    def relay_once(self) -> int:
        try:
            factory = session_factory_for(self.engine)
            rescue_stranded(factory, self.redis)
            return relay_outbox(factory, self.redis)
        except Exception:  # noqa: BLE001 - keep relaying; the next round retries
            log.exception("periodic outbox relay failed")
            return 0

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.relay_once()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=self.interval + 5)
        self.engine.dispose()
        self.redis.close()


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    configure_from_settings(settings)
    worker = build_worker(settings)
    relay = OutboxRelay(settings)
    relay.relay_once()  # what was committed while no worker ran
    if not burst:
        relay.start()
    try:
        return worker.work(burst=burst, with_scheduler=True)
    finally:
        relay.stop()
