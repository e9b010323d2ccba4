"""Exit 0 when both the PostgreSQL and the Redis server named on the command line answer."""

import sys

import psycopg
import redis
from sqlalchemy.engine import make_url


def main() -> int:
    pg_url, redis_url = sys.argv[1], sys.argv[2]
    url = make_url(pg_url)
    try:
        with psycopg.connect(
            host=url.host, port=url.port, user=url.username, dbname=url.database, connect_timeout=3
        ) as conn:
            conn.execute("SELECT 1")
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not answering"
        print(f"not answering: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
