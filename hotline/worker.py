"""The RQ worker process: configures the domain adapters, then works the queues."""

from __future__ import annotations

from rq import Worker
from rq.serializers import JSONSerializer

from hotline.queue import QUEUE_NAMES, connect, queue, resolve_redis_url
from hotline.settings import Settings
from hotline.wiring import configure_domain


def build_worker(settings: Settings, *, name: str | None = None) -> Worker:
    configure_domain(settings)
    connection = connect(resolve_redis_url(settings))
    return Worker(
        [queue(connection, q) for q in QUEUE_NAMES],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
    )


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    return build_worker(settings).work(burst=burst, with_scheduler=True)
