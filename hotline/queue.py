"""Redis and RQ plumbing: one connection per process, the JSON serializer everywhere."""

from __future__ import annotations

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from hotline.redis_server import EmbeddedRedis
from hotline.settings import Settings

QUEUE_NAMES = ("high", "default", "low")


def resolve_redis_url(settings: Settings) -> str:
    """The configured server, or the embedded one under var/ (started if it is not running)."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.var_dir / "redis").start()


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def queue(connection: redis.Redis, name: str = "default") -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)
